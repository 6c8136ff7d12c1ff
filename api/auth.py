"""Who is calling: Bearer tokens, either OpenID Connect JWTs or static tokens from a TOML file.

The user name recorded in events always comes from here, never from a request body.

Token file (KOA_TOKENS_FILE), one table per token; `token_sha256` (hex of the token's SHA-256)
keeps the secret itself out of the file:

    [[tokens]]
    token = "…at least 32 characters outside development…"
    user = "mueller"
    roles = ["clerk"]

    [[tokens]]
    token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    user = "schmidt"
    roles = ["approver"]
"""

from __future__ import annotations

import hashlib
import json
import stat
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem
from api.settings import EXAMPLE_TOKENS, STATIC_TOKEN_LEN_MIN, ApiSettings, Environment
from domain.booking import USER_RE

REALM = "koa-ledger"
# Asymmetric algorithms only: a shared-secret (HS*) or unsigned ("none") token is never accepted.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Role(StrEnum):
    CLERK = "clerk"  # records bookings, payment runs, reversals, funds drawn
    APPROVER = "approver"  # approves bookings (never their own: the domain refuses)
    AUDITOR = "auditor"  # reads everything; records nothing but its own IKS sample draws
    ADMIN = "admin"  # parameters, closing periods


READERS = tuple(Role)  # every role may read the books


@dataclass(frozen=True)
class Caller:
    user: str
    roles: frozenset[Role]
    via: str  # "token-file" or "oidc"


class AuthConfigError(Exception):
    """The authentication setup is unusable or insecure; the server does not start."""


def _unauthorized(description: str, *, invalid: bool) -> ApiProblem:
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += f', error="invalid_token", error_description="{description}"'
    return ApiProblem(
        401, "unauthorized", "Authentication required", description, headers={"WWW-Authenticate": challenge}
    )


def _roles(values: Any) -> frozenset[Role]:
    if isinstance(values, str):
        values = values.split()
    if not isinstance(values, list | tuple):
        return frozenset()
    known = {r.value for r in Role}
    return frozenset(Role(v) for v in values if isinstance(v, str) and v in known)


# ---- static tokens ----------------------------------------------------------------------------


def load_token_file(path: Path, env: Environment) -> dict[str, Caller]:
    """SHA-256 hex of each token -> caller. Lookups compare digests, never the tokens themselves."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuthConfigError(f"KOA_TOKENS_FILE: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuthConfigError(f"KOA_TOKENS_FILE: {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise AuthConfigError(f"KOA_TOKENS_FILE: {path}: not TOML: {e}") from None
    production = env is not Environment.DEVELOPMENT
    if production and mode & stat.S_IROTH:
        raise AuthConfigError(f"KOA_TOKENS_FILE: {path} is readable by everyone (chmod o-r)")
    entries = data.get("tokens")
    if not isinstance(entries, list) or not entries:
        raise AuthConfigError(f"KOA_TOKENS_FILE: {path}: no [[tokens]] entries")
    out: dict[str, Caller] = {}
    for n, entry in enumerate(entries, 1):
        where = f"KOA_TOKENS_FILE: {path}: token {n}"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{where}: not a table")
        user, roles = entry.get("user"), entry.get("roles")
        if not isinstance(user, str) or not USER_RE.fullmatch(user):
            raise AuthConfigError(f"{where}: user must be a name of letters, digits or ._@-")
        if not isinstance(roles, list) or not roles or {str(r) for r in roles} - {r.value for r in Role}:
            raise AuthConfigError(f"{where}: roles must be a non-empty list of {', '.join(Role)}")
        token, digest = entry.get("token"), entry.get("token_sha256")
        if (token is None) == (digest is None):
            raise AuthConfigError(f"{where}: give exactly one of token and token_sha256")
        if token is not None:
            if not isinstance(token, str) or not token.strip() or token != token.strip():
                raise AuthConfigError(f"{where}: token must be a string without surrounding blanks")
            if production and (len(token) < STATIC_TOKEN_LEN_MIN or token in EXAMPLE_TOKENS):
                raise AuthConfigError(
                    f"{where}: a token of at least {STATIC_TOKEN_LEN_MIN} random characters is required "
                    "outside development (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
            digest = _sha256(token)
        elif not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise AuthConfigError(f"{where}: token_sha256 must be 64 lower-case hex digits")
        if digest in out:
            raise AuthConfigError(f"{where}: the same token is listed twice")
        out[digest] = Caller(user, _roles(roles), "token-file")
    return out


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---- OpenID Connect -------------------------------------------------------------------------


class _KeySource:
    """The identity provider's public keys: a JWKS file read at startup, or a URL fetched and cached."""

    def __init__(self, settings: ApiSettings) -> None:
        self._client: jwt.PyJWKClient | None = None
        self._keys: list[jwt.PyJWK] = []
        if settings.oidc_jwks_url:
            # Keys are cached for 5 minutes; an unknown key id triggers one refresh (key rotation).
            self._client = jwt.PyJWKClient(
                settings.oidc_jwks_url, cache_jwk_set=True, lifespan=300, timeout=10
            )
        else:
            assert settings.oidc_jwks_file is not None
            try:
                keyset = jwt.PyJWKSet.from_json(settings.oidc_jwks_file.read_text(encoding="utf-8"))
            except OSError as e:
                raise AuthConfigError(f"KOA_OIDC_JWKS_FILE: {e}") from None
            except (jwt.PyJWKSetError, jwt.PyJWKError, ValueError, json.JSONDecodeError) as e:
                raise AuthConfigError(f"KOA_OIDC_JWKS_FILE: not a usable JWK set: {e}") from None
            self._keys = list(keyset.keys)

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        if self._client is not None:
            try:
                if kid is None:
                    keys = self._client.get_signing_keys()
                    if len(keys) != 1:
                        raise _unauthorized("the token names no key (kid)", invalid=True)
                    return keys[0]
                return self._client.get_signing_key(kid)
            except jwt.PyJWKClientConnectionError:
                raise ApiProblem(
                    503, "unavailable", "Identity provider unreachable", "the key set could not be fetched"
                ) from None
            except jwt.PyJWKClientError:
                raise _unauthorized("the token was signed by an unknown key", invalid=True) from None
        if kid is None:
            if len(self._keys) == 1:
                return self._keys[0]
            raise _unauthorized("the token names no key (kid)", invalid=True)
        for k in self._keys:
            if k.key_id == kid:
                return k
        raise _unauthorized("the token was signed by an unknown key", invalid=True)


class OidcVerifier:
    def __init__(self, settings: ApiSettings) -> None:
        assert settings.oidc_issuer and settings.oidc_audience
        self.issuer, self.audience = settings.oidc_issuer, settings.oidc_audience
        self.roles_claim, self.user_claim = settings.oidc_roles_claim, settings.oidc_user_claim
        self.leeway = settings.oidc_leeway_seconds
        self.keys = _KeySource(settings)

    def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("the token is neither known nor a JWT", invalid=True) from None
        if header.get("alg") not in ALGORITHMS:
            raise _unauthorized("the token's algorithm is not accepted", invalid=True)
        key = self.keys.key_for(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired", invalid=True) from None
        except jwt.PyJWTError as e:
            raise _unauthorized(f"the token is not valid: {e}", invalid=True) from None
        user = _claim(claims, self.user_claim)
        if not isinstance(user, str) or not USER_RE.fullmatch(user):
            raise _unauthorized(
                f"the token's {self.user_claim} claim is not a usable user name", invalid=True
            )
        return Caller(user, _roles(_claim(claims, self.roles_claim)), "oidc")


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path, e.g. realm_access.roles (Keycloak)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# ---- the authenticator and the FastAPI dependencies -----------------------------------------


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        problems = settings.config_errors() + settings.insecure_reasons()
        if problems:
            raise AuthConfigError("; ".join(problems))
        self.static = load_token_file(settings.tokens_file, settings.env) if settings.tokens_file else {}
        self.oidc = OidcVerifier(settings) if settings.oidc_configured else None

    async def authenticate(self, token: str) -> Caller:
        caller = self.static.get(_sha256(token))
        if caller is not None:
            return caller
        if self.oidc is not None and token.count(".") == 2:
            # May fetch the key set over the network: in a worker thread, not on the event loop.
            return await run_in_threadpool(self.oidc.verify, token)
        raise _unauthorized("unknown token", invalid=True)


bearer = HTTPBearer(
    auto_error=False, description="a static token from KOA_TOKENS_FILE or an OIDC access token"
)


# The dependencies are coroutines: a plain `def` dependency costs a trip to the thread pool per
# request (measured under the 50-client load: several per POST, each a GIL hand-over between threads).
async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    if credentials is None:
        raise _unauthorized("a Bearer token is required", invalid=False)
    token = credentials.credentials.strip()
    if not token or len(token) > 16 * 1024:
        raise _unauthorized("the token is empty or too long", invalid=True)
    return await request.app.state.authenticator.authenticate(token)


def require(*roles: Role) -> Callable[..., Caller]:
    """A dependency that lets through callers holding any of `roles`, and answers 403 otherwise."""
    allowed = frozenset(roles)

    async def dependency(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        return _holding(caller, allowed)

    return dependency


async def caller_holding(request: Request, *roles: Role) -> Caller:
    """What `require(*roles)` resolves to, for a presolver (api.presolve): the same functions in
    the same order, so the same caller or the same 401/403."""
    return _holding(await authenticated(request, await bearer(request)), frozenset(roles))


def _holding(caller: Caller, allowed: frozenset[Role]) -> Caller:
    if not caller.roles & allowed:
        raise ApiProblem(
            403,
            "forbidden",
            "Role required",
            f"this needs the role {_either(allowed)}; {caller.user} has {_either(caller.roles) or 'none'}",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'},
        )
    return caller


def _either(roles: Iterable[Role]) -> str:
    return " or ".join(sorted(r.value for r in roles))


# What an endpoint declares to get its caller, e.g. `caller: Clerk`.
Clerk = Annotated[Caller, Depends(require(Role.CLERK))]
Approver = Annotated[Caller, Depends(require(Role.APPROVER))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
Reader = Annotated[Caller, Depends(require(*READERS))]
AuditReader = Annotated[Caller, Depends(require(Role.AUDITOR, Role.ADMIN))]
# The audit office's own act (POST /audit/samples records an IKS draw): the same roles as its
# reads; never a clerk or an approver, whose bookings the sample is drawn from.
AuditOffice = Annotated[Caller, Depends(require(Role.AUDITOR, Role.ADMIN))]
