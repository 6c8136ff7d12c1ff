"""Dated rates: the administrative-cost share, the KdU quota per Land and year, the approval
threshold and the run-off period. Loaded from domain/data/rates.toml; every figure that uses a
rate states which one it applied."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path

from domain.catalogue import Category, Funding
from domain.errors import RateMissing
from domain.interest import BaseInterestRates

LANDS = (
    "BW",
    "BY",
    "BE",
    "BB",
    "HB",
    "HH",
    "HE",
    "MV",
    "NI",
    "NW",
    "RP",
    "SL",
    "SN",
    "ST",
    "SH",
    "TH",
)


@dataclass(frozen=True, slots=True)
class KduQuota:
    land: str
    year: int
    provisional: Decimal | None
    final: Decimal | None

    @property
    def in_force(self) -> Decimal:
        value = self.final if self.final is not None else self.provisional
        assert value is not None
        return value


@dataclass(frozen=True, slots=True)
class AppliedRate:
    """The federal rate a figure used, and where it came from (for the report)."""

    rate: Decimal
    label: str


# Parameters in force from a fiscal year until changed, besides the two above: kind "rate" (0..1),
# "amount" (euros, per full-time equivalent and year) or "years" (a whole number of years, the
# retention periods). Defaults in rates.toml [[parameter]].
DATED_PARAMETERS = {
    "versorgungszuschlag_cap": "rate",
    "personalgemeinkosten_rate": "rate",
    "personalnebenkosten_per_vzae": "amount",
    "sachkosten_per_vzae": "amount",
    "deckungsfaehigkeit_limit": "rate",
    "repayment_interest_points": "rate",
    "retention_years_books": "years",
    "retention_years_vouchers": "years",
}
YEARS_MIN, YEARS_MAX = 1, 30  # a retention period beyond thirty years is a typo


def _no_budget(year: int) -> None:
    return None


def _rate(text: str) -> Decimal:
    r = Decimal(text)
    assert Decimal(0) <= r <= Decimal(1), f"rate out of range: {text}"
    return r


class RateTable:
    def __init__(
        self,
        vwk_shares: list[tuple[int, Decimal]],
        kdu_quotas: list[KduQuota],
        approval_threshold_cents: int,
        runoff_default_last_day: tuple[int, int],
        runoff_by_year: dict[int, date],
        dated: dict[str, list[tuple[int, Decimal]]] | None = None,
        basiszinssatz: BaseInterestRates | None = None,
    ) -> None:
        self._vwk = sorted(vwk_shares)
        self.basiszinssatz = basiszinssatz or BaseInterestRates([])
        self._dated = {name: sorted(values) for name, values in (dated or {}).items()}
        self._egt_funds: Callable[[int], int | None] = _no_budget
        assert set(self._dated) <= set(DATED_PARAMETERS), self._dated
        self._kdu = {(q.land, q.year): q for q in kdu_quotas}
        assert approval_threshold_cents > 0
        self.approval_threshold_cents = approval_threshold_cents
        self._runoff_default = runoff_default_last_day
        self._runoff_by_year = runoff_by_year

    @classmethod
    def load(cls, path: Path | None = None) -> RateTable:
        if path is None:
            text = resources.files("domain.data").joinpath("rates.toml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        raw = tomllib.loads(text)
        vwk = [(int(r["from_year"]), _rate(r["rate"])) for r in raw["vwk_federal_share"]]
        quotas = []
        for q in raw.get("kdu_quota", []):
            assert q["land"] in LANDS, q
            prov, fin = q.get("provisional"), q.get("final")
            assert prov or fin, q
            quotas.append(
                KduQuota(
                    q["land"],
                    int(q["year"]),
                    _rate(prov) if prov else None,
                    _rate(fin) if fin else None,
                )
            )
        month, day = (int(x) for x in raw["runoff"]["default_last_day"].split("-"))
        by_year = {int(y): date.fromisoformat(d) for y, d in raw["runoff"].get("by_year", {}).items()}
        dated: dict[str, list[tuple[int, Decimal]]] = {}
        for p in raw.get("parameter", []):
            kind = DATED_PARAMETERS[p["name"]]
            value = _rate(p["value"]) if kind == "rate" else Decimal(p["value"])
            assert kind == "rate" or value >= 0, p
            assert kind != "years" or (value == int(value) and YEARS_MIN <= value <= YEARS_MAX), p
            dated.setdefault(p["name"], []).append((int(p["from_year"]), value))
        basiszinssatz = BaseInterestRates(
            (date.fromisoformat(r["from"]), Decimal(r["rate"]))
            for r in raw.get("basiszinssatz", {}).get("half_years", [])
        )
        return cls(
            vwk, quotas, int(raw["approval"]["threshold_cents"]), (month, day), by_year, dated, basiszinssatz
        )

    def with_settings(self, settings: list[tuple[str, int, str, Decimal]]) -> RateTable:
        """A copy with (name, year, land, value) settings applied in order (later ones win)."""
        vwk = dict(self._vwk)
        kdu = dict(self._kdu)
        dated = {name: dict(values) for name, values in self._dated.items()}
        for name, year, land, value in settings:
            if name in DATED_PARAMETERS:
                dated.setdefault(name, {})[year] = value
            elif name == "vwk_federal_share":
                vwk[year] = value
            elif name in ("kdu_quota_provisional", "kdu_quota_final"):
                old = kdu.get((land, year)) or KduQuota(land, year, None, None)
                if name == "kdu_quota_provisional":
                    kdu[(land, year)] = KduQuota(land, year, value, old.final)
                else:
                    kdu[(land, year)] = KduQuota(land, year, old.provisional, value)
            else:
                raise ValueError(f"unknown parameter {name!r}")
        month_day = self._runoff_default
        table = RateTable(
            sorted(vwk.items()),
            list(kdu.values()),
            self.approval_threshold_cents,
            month_day,
            dict(self._runoff_by_year),
            {name: sorted(values.items()) for name, values in dated.items()},
            self.basiszinssatz,
        )
        table._egt_funds = self._egt_funds
        return table

    def with_basiszinssatz(self, changes: list[tuple[date, Decimal]]) -> RateTable:
        """A copy with Basiszinssätze set since the shipped table (later ones win)."""
        copy = self.with_settings([])
        copy.basiszinssatz = self.basiszinssatz.with_changes(changes)
        return copy

    def with_egt_funds(self, funds_cents: Callable[[int], int | None]) -> RateTable:
        """A copy that knows each year's Eingliederungsbudget (allocation plus shifts; None: none on
        file), so the split gives EGT spending beyond it to the municipality."""
        copy = self.with_settings([])
        copy._egt_funds = funds_cents
        return copy

    def egt_funds_cents(self, year: int) -> int | None:
        return self._egt_funds(year)

    def kdu_years(self, land: str) -> list[int]:
        return sorted(y for (l_, y) in self._kdu if l_ == land)

    def vwk_share(self, year: int) -> Decimal:
        in_force = [rate for from_year, rate in self._vwk if from_year <= year]
        if not in_force:
            raise RateMissing(f"no administrative-cost share on file for fiscal year {year}")
        return in_force[-1]

    def dated(self, name: str, year: int) -> Decimal:
        """A parameter of DATED_PARAMETERS in force for a fiscal year (set for it or an earlier one)."""
        assert name in DATED_PARAMETERS, name
        in_force = [value for from_year, value in self._dated.get(name, []) if from_year <= year]
        if not in_force:
            raise RateMissing(f"no value of {name} on file for fiscal year {year}")
        return in_force[-1]

    def dated_amount_cents(self, name: str, year: int) -> int:
        assert DATED_PARAMETERS[name] == "amount", name
        return int(self.dated(name, year) * 100)

    def dated_years(self, name: str, year: int) -> int:
        assert DATED_PARAMETERS[name] == "years", name
        return int(self.dated(name, year))

    def kdu_quota(self, land: str, year: int) -> KduQuota:
        try:
            return self._kdu[(land, year)]
        except KeyError:
            raise RateMissing(f"no KdU quota on file for Land {land}, fiscal year {year}") from None

    def runoff_last_day(self, old_year: int) -> date:
        """Last payment date in January of old_year+1 that may still be booked to old_year."""
        if old_year in self._runoff_by_year:
            return self._runoff_by_year[old_year]
        month, day = self._runoff_default
        return date(old_year + 1, month, day)

    def federal_rate(self, category: Category, year: int, land: str) -> AppliedRate:
        """The federal share in force for a category's bookings of a fiscal year."""
        match category.funding:
            case Funding.BUND:
                return AppliedRate(Decimal(1), "Bund 100 %")
            case Funding.KOMMUNE:
                return AppliedRate(Decimal(0), "Kommune 100 %")
            case Funding.VWK_SHARE:
                r = self.vwk_share(year)
                return AppliedRate(r, f"Verwaltungskostenanteil {pct(r)}")
            case Funding.KDU_QUOTA:
                q = self.kdu_quota(land, year)
                kind = "endgültig" if q.final is not None else "vorläufig"
                return AppliedRate(q.in_force, f"KdU-Quote {land} {year} {kind} {pct(q.in_force)}")
            case Funding.EGT_BUDGET:
                # Within the Eingliederungsbudget the Bund pays all; spending beyond the budget is
                # the municipality's and needs the budgets of a later release to be applied.
                return AppliedRate(Decimal(1), "Bund 100 % (Eingliederungsbudget)")
        raise AssertionError(category.funding)


def pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f} %".replace(".", ",")
