"""Authentication: OIDC JWTs checked against issuer, audience and the key set (a file or a URL),
static tokens from the token file, and the refusal of insecure setups outside development.
The keys are generated here; nothing leaves the machine (the JWKS URL is served on loopback)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.app import create_app
from api.auth import AuthConfigError
from api.settings import ApiSettings
from ledger.settings import Settings
from tests.api_fixtures import booking_body

ISSUER, AUDIENCE = "https://idp.example.test/realms/koa", "koa-ledger"


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def _jwks(keys) -> dict:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(keys["rsa"].public_key())) | {"kid": "rsa-1", "use": "sig"}
    ec_jwk = json.loads(ECAlgorithm.to_jwk(keys["ec"].public_key())) | {"kid": "ec-1", "use": "sig"}
    return {"keys": [rsa_jwk, ec_jwk]}


def _token(keys, *, key="rsa", kid="rsa-1", alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now, "sub": "u-1"}
    body |= {"preferred_username": "mueller", "roles": ["clerk"]} | claims
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, keys[key], algorithm=alg, headers={"kid": kid} if kid else None)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", _env_file=None)


@pytest.fixture
def jwks_file(tmp_path, keys) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(_jwks(keys)))
    return path


@pytest.fixture
def oidc_client(tmp_path, jwks_file) -> Iterator[TestClient]:
    api = ApiSettings(
        env="production", oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_file=jwks_file, _env_file=None
    )
    with TestClient(create_app(_settings(tmp_path), api)) as c:
        yield c


def _post(client, token: str, key: str = "O-1"):
    return client.post("/bookings", json=booking_body(key), headers={"Authorization": f"Bearer {token}"})


def test_a_valid_jwt_records_under_the_token_user(oidc_client, keys):
    r = _post(oidc_client, _token(keys))
    assert r.status_code == 201, r.text
    assert r.json()["booking"]["recorded_by"] == "mueller"
    ec_token = _token(keys, key="ec", kid="ec-1", alg="ES256", preferred_username="weber")
    assert _post(oidc_client, ec_token, "O-2").json()["booking"]["recorded_by"] == "weber"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "Audience"),
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"kid": "unknown"}, "unknown key"),
        ({"key": "other"}, "not valid"),  # right kid, wrong key: the signature fails
        ({"exp": None}, "exp"),
        ({"preferred_username": "Max Mustermann"}, "user name"),
    ],
)
def test_invalid_jwts_are_401(oidc_client, keys, change, words):
    kwargs = {k: v for k, v in change.items() if k in ("key", "kid")}
    claims = {k: v for k, v in change.items() if k not in ("key", "kid")}
    r = _post(oidc_client, _token(keys, **kwargs, **claims))
    assert r.status_code == 401, r.text
    assert words in r.json()["detail"] and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_shared_secret_and_unsigned_tokens_are_refused(oidc_client):
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 60,
        "preferred_username": "x",
        "roles": ["admin"],
    }
    hs = jwt.encode(claims, "a-secret-that-is-long-enough-for-hmac-sha256", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (hs, unsigned):
        assert _post(oidc_client, token).status_code == 401


def test_roles_come_from_the_claim(oidc_client, keys):
    assert _post(oidc_client, _token(keys, roles=["auditor"])).status_code == 403
    assert _post(oidc_client, _token(keys, roles=None)).status_code == 403
    assert _post(oidc_client, _token(keys, roles=["clerk", "unknown-role"])).status_code == 201


def test_nested_roles_claim_and_a_jwks_url(tmp_path, keys):
    body = json.dumps(_jwks(keys)).encode()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/certs"
        api = ApiSettings(
            env="development",
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=url,
            oidc_roles_claim="realm_access.roles",
            _env_file=None,
        )
        with TestClient(create_app(_settings(tmp_path), api)) as c:
            token = _token(
                keys, key="ec", kid="ec-1", alg="ES256", realm_access={"roles": ["approver", "clerk"]}
            )
            assert _post(c, token).status_code == 201
            assert _post(c, _token(keys, kid="rsa-9")).status_code == 401
            with pytest.raises(AuthConfigError, match="https"):
                create_app(_settings(tmp_path), api.model_copy(update={"env": "production"}))
    finally:
        server.shutdown()


def _token_file(tmp_path: Path, entries: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(entries)
    path.chmod(mode)
    return path


GOOD = 'token = "{t}"\nuser = "mueller"\nroles = ["clerk"]\n'


@pytest.mark.parametrize(
    "entries, mode, env, words",
    [
        ("[[tokens]]\n" + GOOD.format(t="short"), 0o600, "production", "at least 32"),
        ("[[tokens]]\n" + GOOD.format(t="dev-clerk-token"), 0o600, "production", "at least 32"),
        ("[[tokens]]\n" + GOOD.format(t="x" * 40), 0o644, "production", "readable by everyone"),
        (
            "[[tokens]]\n" + GOOD.format(t="x" * 40).replace('"clerk"', '"boss"'),
            0o600,
            "development",
            "roles",
        ),
        ("[[tokens]]\n" + GOOD.format(t="x" * 40).replace("mueller", "Max M"), 0o600, "development", "user"),
        (
            "[[tokens]]\n" + GOOD.format(t="x" * 40) * 1 + "[[tokens]]\n" + GOOD.format(t="x" * 40),
            0o600,
            "development",
            "twice",
        ),
        ("tokens = 1", 0o600, "development", "no [[tokens]]"),
        ("[[tokens", 0o600, "development", "not TOML"),
    ],
)
def test_insecure_or_broken_token_files_refuse_to_start(tmp_path, entries, mode, env, words):
    path = _token_file(tmp_path, entries, mode)
    with pytest.raises(AuthConfigError, match=words.replace("[", r"\[")):
        create_app(_settings(tmp_path), ApiSettings(env=env, tokens_file=path, _env_file=None))


def test_short_tokens_and_digests_work_in_development(tmp_path):
    import hashlib

    digest = hashlib.sha256(b"dev-approver-token").hexdigest()
    entries = "[[tokens]]\n" + GOOD.format(t="dev-clerk-token")
    entries += f'[[tokens]]\ntoken_sha256 = "{digest}"\nuser = "schmidt"\nroles = ["approver"]\n'
    path = _token_file(tmp_path, entries, 0o644)
    with TestClient(
        create_app(_settings(tmp_path), ApiSettings(env="development", tokens_file=path, _env_file=None))
    ) as c:
        big = booking_body("D-1", amount="20.000,00", category="egt.aktivierung", case_ref="")
        assert (
            c.post("/bookings", json=big, headers={"Authorization": "Bearer dev-clerk-token"}).status_code
            == 201
        )
        r = c.post("/bookings/D-1/approve", headers={"Authorization": "Bearer dev-approver-token"})
        assert r.status_code == 200 and r.json()["approved_by"] == "schmidt"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "no way to authenticate"),
        ({"oidc_issuer": ISSUER}, "KOA_OIDC_AUDIENCE"),
        ({"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}, "exactly one of"),
        (
            {"oidc_issuer": "http://idp", "oidc_audience": AUDIENCE, "oidc_jwks_url": "https://idp/certs"},
            "https",
        ),
    ],
)
def test_incomplete_or_insecure_oidc_refuses_to_start(tmp_path, kwargs, words):
    with pytest.raises(AuthConfigError, match=words):
        create_app(_settings(tmp_path), ApiSettings(env="production", _env_file=None, **kwargs))
