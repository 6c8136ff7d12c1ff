"""Settings from the environment (and a .env file): where the store lives, the city's Land, the user."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.rates import LANDS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOA_", env_file=".env", extra="ignore")

    # postgresql://user:password@host:port/dbname[?schema=name]; unset means the embedded SQLite store.
    database_url: str | None = None
    data_dir: Path = Path("var")
    land: str = Field("BW", description="Land of the city: which KdU quota applies")
    user: str = Field(default_factory=lambda: getpass.getuser() or "unknown")

    @field_validator("land")
    @classmethod
    def _known_land(cls, v: str) -> str:
        v = v.upper()
        if v not in LANDS:
            raise ValueError(f"unknown Land {v!r}; one of {', '.join(LANDS)}")
        return v

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v and not re.match(r"^postgres(ql)?://", v):
            raise ValueError("must start with postgresql://")
        return v or None
