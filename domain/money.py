"""Money as integer cents. Decimal only at the edges (parsing, display, rates).

Rounding is commercial (ROUND_HALF_UP, symmetric for negatives), as German public
accounting does it. Shares of a group are distributed by the largest-remainder method,
so the per-booking shares always add up to the share computed on the group total. A booking
and its Storno in the same group get exactly opposite shares (the *_paired functions): ranked
independently, +a and -a can fall on different sides of a cent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from fractions import Fraction

# One booking may not exceed 100 million euro: a limit, so a typo of extra digits is caught.
AMOUNT_CENTS_MAX = 10_000_000_000

# Amounts are parsed exactly: a context wide enough for any amount we accept.
DIGITS_MAX = 18
_EXACT = Context(prec=60)

_AMOUNT_RE = re.compile(r"^[+-]?[0-9][0-9.,' ]*$")
# The spellings of nearly every row of a payment run: 1.234,56 / 1234,56 / 1234.56 / 1234.
_PLAIN_AMOUNT_RE = re.compile(
    r"([0-9]{1,3}(?:\.[0-9]{3})+|[0-9]{1,13}),([0-9]{2})|([0-9]{1,13})(?:\.([0-9]{2}))?"
)


def parse_amount_cents(text: str) -> int:
    """Parse '1.234,56', '1234,56', '1234.56', '1,234.56' or '1234' into cents.

    The last of '.' / ',' is the decimal separator when both occur; a single kind of
    separator is decimal. More than two decimals is refused (it is usually a thousands
    separator in the wrong convention, e.g. '1.234' meant as 1234).
    """
    plain = _PLAIN_AMOUNT_RE.fullmatch(text)
    if plain is not None and len(text) <= 20:  # the general path below gives the same cents
        euros, cents = (plain[1], plain[2]) if plain[1] is not None else (plain[3], plain[4] or "0")
        return int(euros.replace(".", "")) * 100 + int(cents)
    s = text.strip().replace("\u00a0", "").replace(" ", "").replace("'", "")
    s = s.removesuffix("€").removesuffix("EUR").strip()
    if not s or not _AMOUNT_RE.match(s):
        raise ValueError(f"not an amount: {text!r}")
    last_dot, last_comma = s.rfind("."), s.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_sep = "." if last_dot > last_comma else ","
        thousands_sep = "," if decimal_sep == "." else "."
        s = s.replace(thousands_sep, "")
    elif last_comma >= 0:
        decimal_sep = ","
    else:
        decimal_sep = "."
    if s.count(decimal_sep) > 1:
        raise ValueError(f"not an amount: {text!r}")
    s = s.replace(decimal_sep, ".")
    if "." in s and len(s.split(".")[1]) > 2:
        raise ValueError(f"more than two decimals: {text!r}")
    try:
        value = Decimal(s)
    except InvalidOperation as e:
        raise ValueError(f"not an amount: {text!r}") from e
    return decimal_to_cents(value)


def decimal_to_cents(value: Decimal) -> int:
    """Exact conversion; refuses fractions of a cent and numbers too long to be an amount."""
    if not value.is_finite() or value.adjusted() > DIGITS_MAX:
        raise ValueError(f"not an amount: {value}")
    cents = value.scaleb(2, _EXACT)
    if cents != cents.to_integral_value():
        raise ValueError(f"more than two decimals: {value}")
    return int(cents)


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def format_eur(cents: int) -> str:
    """German display: 1.234.567,89 (no currency sign)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros:,}".replace(",", ".") + f",{rest:02d}"


def share_cents(amount_cents: int, rate: Decimal) -> int:
    """The share of an amount at a rate, rounded half up to the cent."""
    assert Decimal(0) <= rate <= Decimal(1), rate
    return int((Decimal(amount_cents) * rate).to_integral_value(rounding=ROUND_HALF_UP))


def allocate_share_cents(
    amounts_cents: Sequence[int], rate: Decimal, target_cents: int | None = None
) -> list[int]:
    """Per-amount shares that add up exactly to target_cents, by default share_cents(sum(amounts), rate).

    Each amount first gets the floor of its exact share; the cents still missing to the
    rounded group share go to the largest fractional remainders, ties to the earlier
    position (callers order amounts by a stable key, e.g. the booking key).

    A target may be a quarter's part of a cumulatively rounded year (domain.split): within a cent
    of the exact share either way. Halves round away from zero, so where the year's cumulative
    net changes sign between two exact halves, the quarter's part is a whole cent off its exact
    share, and then, if every exact share is whole, a cent below their sum: that cent comes off
    the last amount. No share is more than a cent off its exact share.
    """
    assert Decimal(0) <= rate <= Decimal(1), rate
    if not amounts_cents:
        assert not target_cents, target_cents
        return []
    target = share_cents(sum(amounts_cents), rate) if target_cents is None else target_cents
    exact = [Decimal(a) * rate for a in amounts_cents]
    floors = [int(x.to_integral_value(rounding=ROUND_FLOOR)) for x in exact]
    missing = target - sum(floors)
    assert -1 <= missing <= len(amounts_cents), (missing, len(amounts_cents))
    if missing < 0:
        assert target_cents is not None and all(x == f for x, f in zip(exact, floors, strict=True))
        floors[-1] -= 1
    elif missing:
        order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in order[:missing]:
            floors[i] += 1
    assert sum(floors) == target
    return floors


def allocate_proportional_cents(amounts_cents: Sequence[int], total_cents: int) -> list[int]:
    """Shares of total_cents in proportion to the amounts, adding up to total_cents exactly.

    Floor of each exact share, then the missing cents to the largest remainders (ties: earlier
    position). With a zero sum of amounts the total can only be zero.
    """
    if not amounts_cents:
        assert total_cents == 0
        return []
    whole = sum(amounts_cents)
    if whole == 0:
        assert total_cents == 0, (amounts_cents, total_cents)
        return [0] * len(amounts_cents)
    exact = [Fraction(a * total_cents, whole) for a in amounts_cents]
    floors = [math.floor(x) for x in exact]
    missing = total_cents - sum(floors)
    assert 0 <= missing <= len(amounts_cents), (missing, len(amounts_cents))
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    assert sum(floors) == total_cents
    return floors


def allocate_share_cents_paired(
    amounts_cents: Sequence[int],
    rate: Decimal,
    pairs: Sequence[tuple[int, int]],
    target_cents: int | None = None,
) -> list[int]:
    """allocate_share_cents, except that each pair (original, Storno) of exactly opposite amounts
    gets exactly opposite shares: the original its own share (share_cents), the Storno its negation.

    A pair adds up to zero, so the group's share (and so its total) is the same as without pairs;
    it is distributed over the other amounts only, by largest remainder as before."""
    return _with_opposite_pairs(
        amounts_cents,
        pairs,
        lambda a: share_cents(a, rate),
        lambda rest: allocate_share_cents(rest, rate, target_cents),
    )


def allocate_proportional_cents_paired(
    amounts_cents: Sequence[int], total_cents: int, pairs: Sequence[tuple[int, int]]
) -> list[int]:
    """allocate_proportional_cents with opposite shares for each (original, Storno) pair: the
    original's exact share rounded half up, the Storno its negation; the total over the others."""
    whole = sum(amounts_cents)

    def own(amount: int) -> int:
        return half_up(Fraction(amount * total_cents, whole)) if whole else 0

    return _with_opposite_pairs(
        amounts_cents, pairs, own, lambda rest: allocate_proportional_cents(rest, total_cents)
    )


def half_up(x: Fraction) -> int:
    """Commercial rounding of an exact fraction (halves away from zero, so half_up(-x) == -half_up(x))."""
    q, r = divmod(abs(x.numerator), x.denominator)
    return (1 if x >= 0 else -1) * (q + (1 if 2 * r >= x.denominator else 0))


def _with_opposite_pairs(
    amounts_cents: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    own: Callable[[int], int],
    distribute: Callable[[list[int]], list[int]],
) -> list[int]:
    shares = [0] * len(amounts_cents)
    paired: set[int] = set()
    for original, storno in pairs:
        assert amounts_cents[original] == -amounts_cents[storno], (original, storno)
        assert original not in paired and storno not in paired and original != storno, (
            "an amount in two pairs"
        )
        paired |= {original, storno}
        shares[original] = own(amounts_cents[original])
        shares[storno] = -shares[original]
    rest = [i for i in range(len(amounts_cents)) if i not in paired]  # position order: ties stay stable
    for i, share in zip(rest, distribute([amounts_cents[i] for i in rest]), strict=True):
        shares[i] = share
    return shares
