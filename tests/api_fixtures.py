"""Fixtures for the HTTP API tests: a token file with one user per role, and a TestClient over the
`store` fixture's store (SQLite and PostgreSQL), with the app's lifespan running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger.settings import Settings

# token -> (user, roles). Long enough for production rules, so the same file serves both.
TOKENS = {
    "clerk": ("mueller", ["clerk"]),
    "clerk2": ("weber", ["clerk"]),
    "approver": ("schmidt", ["approver"]),
    "auditor": ("pruefer", ["auditor"]),
    "admin": ("leitung", ["admin"]),
    "clerk_approver": ("meier", ["clerk", "approver"]),
    "approver2": ("fischer", ["approver"]),
    "all": ("pruefstand", ["clerk", "approver", "auditor", "admin"]),
}


def token_of(name: str) -> str:
    return f"test-token-{name}-0123456789abcdefghijklmnop"


def auth(name: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(name)}", **more}


def write_token_file(path: Path) -> Path:
    lines = []
    for name, (user, roles) in TOKENS.items():
        lines += ["[[tokens]]", f'token = "{token_of(name)}"', f'user = "{user}"', f"roles = {roles!r}", ""]
    path.write_text("\n".join(lines).replace("'", '"'), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_token_file(tmp_path / "tokens.toml")


@pytest.fixture
def api_settings(token_file: Path) -> ApiSettings:
    return ApiSettings(env="production", tokens_file=token_file, _env_file=None)


@pytest.fixture
def client(settings: Settings, api_settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, api_settings)) as c:
        yield c


def booking_body(key: str = "API-1", **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "key": key,
        "kind": "payment",
        "amount": "500,00",
        "category": "kdu",
        "payment_date": "2025-02-27",
        "service_from": "2025-03-01",
        "service_to": "2025-03-31",
        "document_ref": "ZA-202503",
        "case_ref": "08221BG0000001",
        "cost_centre": "JC-NORD",
        "text": "Miete März",
    }
    return body | changes
