"""Pieces every resource uses: amounts in and out, pages of a list."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from domain.money import DIGITS_MAX, cents_to_decimal
from ledger.commands import parse_moment

AMOUNT_TEXT_LEN_MAX = 40


def _amount_text(value: Any) -> str:
    """A JSON string as given (parsed like the CLI: '1.234,56', '1234.56', ...) or a JSON number,
    which arrives as Decimal (api.json_body) and must have at most two decimals as written."""
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not true/false")
    if isinstance(value, str):
        if len(value) > AMOUNT_TEXT_LEN_MAX:
            raise ValueError(f"at most {AMOUNT_TEXT_LEN_MAX} characters")
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("not an amount")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < -2:
            raise ValueError(f"more than two decimals: {value}")
        if value.adjusted() > DIGITS_MAX:
            raise ValueError("not an amount: too many digits")
        return format(value, "f")
    raise ValueError(
        'must be a string such as "1234.56" or "1.234,56", or a number with at most two decimals'
    )


# What arrives is handed on as text to the parsers the CLI uses (ledger.commands, domain.money).
AmountIn = Annotated[
    str,
    BeforeValidator(_amount_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": AMOUNT_TEXT_LEN_MAX, "examples": ["1234.56", "1.234,56"]},
                {"type": "number", "multipleOf": 0.01},
            ],
            "description": "euros: a string ('1234.56', '1.234,56') or a number with at most two decimals",
        }
    ),
]

# Out: euros as a string with two decimals (never a float), next to the integer cents.
Euros = Annotated[
    int,
    PlainSerializer(lambda cents: str(cents_to_decimal(cents)), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1234.56"]}),
]

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 500
Limit = Annotated[int, Field(ge=1, le=PAGE_LIMIT_MAX, description=f"page size, at most {PAGE_LIMIT_MAX}")]


MOMENT_TEXT_LEN_MAX = 40


def _iso_moment(value: Any) -> datetime:
    """A moment as ISO 8601 text only, as the CLI's --as-of reads it; without an offset it is UTC.
    (pydantic's own datetime would read a number, '0' or '-5e-217', as seconds since 1970.)"""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or len(value) > MOMENT_TEXT_LEN_MAX:
        raise ValueError("must be an ISO 8601 moment, e.g. 2025-04-15T12:00:00+02:00")
    return parse_moment(value)


# In: a moment (as_of) as ISO 8601 text, never a number of seconds.
IsoMoment = Annotated[datetime, BeforeValidator(_iso_moment)]
