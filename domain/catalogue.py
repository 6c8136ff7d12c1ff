"""The category catalogue: who pays which euro. Loaded from a data file (domain/data/categories.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from domain.errors import UnknownCategory


class Funding(StrEnum):
    BUND = "bund"
    KOMMUNE = "kommune"
    VWK_SHARE = "vwk_share"
    KDU_QUOTA = "kdu_quota"
    EGT_BUDGET = "egt_budget"


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    legal_basis: str
    municipal_product: str
    federal_title: str
    funding: Funding
    paid_in_advance: bool = False

    @property
    def title_label(self) -> str:
        return self.federal_title or "kommunal"


class Catalogue:
    CATEGORIES_MAX = 500

    def __init__(self, categories: list[Category]) -> None:
        assert 0 < len(categories) <= self.CATEGORIES_MAX
        self._by_code = {c.code: c for c in categories}
        assert len(self._by_code) == len(categories), "duplicate category code"

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        if path is None:
            text = resources.files("domain.data").joinpath("categories.toml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        raw = tomllib.loads(text)
        cats = [
            Category(
                code=c["code"],
                name=c["name"],
                legal_basis=c["legal_basis"],
                municipal_product=c["municipal_product"],
                federal_title=c["federal_title"],
                funding=Funding(c["funding"]),
                paid_in_advance=bool(c.get("paid_in_advance", False)),
            )
            for c in raw["category"]
        ]
        return cls(cats)

    def get(self, code: str) -> Category:
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownCategory(f"unknown category {code!r}", field="category") from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self):
        return iter(self._by_code.values())

    def codes(self) -> list[str]:
        return list(self._by_code)
