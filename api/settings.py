"""Settings of the HTTP API (environment and .env, like ledger.settings): who may call it, and limits.

The store, the Land and the data directory stay in ledger.settings.Settings; these are only what the
server adds. `insecure_reasons` lists what must not run outside development.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Static tokens this short can be guessed or were typed by hand: refused outside development.
STATIC_TOKEN_LEN_MIN = 32
# Tokens that appear in the README's examples: whoever copies them must not get a production server.
EXAMPLE_TOKENS = frozenset(
    {"dev-clerk-token", "dev-approver-token", "dev-auditor-token", "dev-admin-token", "changeme"}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOA_", env_file=".env", extra="ignore")

    env: Environment = Field(Environment.PRODUCTION, description="development relaxes the security checks")
    # TOML file of static tokens (see api/auth.py and the README); for a first run without an IdP.
    tokens_file: Path | None = None
    # OpenID Connect: tokens signed by the identity provider's keys (a JWKS file or URL).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_roles_claim: str = Field("roles", description="claim holding the role list; dots walk into objects")
    oidc_user_claim: str = Field("preferred_username", description="claim holding the user name")
    oidc_leeway_seconds: int = Field(30, ge=0, le=300)

    # Limits: a JSON body, an uploaded payment run, a page of a list.
    body_bytes_max: int = Field(1024 * 1024, ge=1024)
    upload_bytes_max: int = Field(64 * 1024 * 1024, ge=1024)
    idempotency_hours: int = Field(24, ge=1, le=24 * 30, description="how long a key is remembered")
    # FastAPI's own OpenTelemetry spans, metrics and logs, sent to the providers configured globally
    # (opentelemetry-instrument). Off, FastAPI does not look for providers on every request.
    opentelemetry: bool = False

    @field_validator("oidc_issuer", "oidc_audience", "oidc_jwks_url")
    @classmethod
    def _blank_is_unset(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer or self.oidc_audience or self.oidc_jwks_url or self.oidc_jwks_file)

    def config_errors(self) -> list[str]:
        """What is wrong in any environment (an incomplete OIDC setup cannot validate anything)."""
        errors = []
        if self.oidc_configured:
            if not self.oidc_issuer:
                errors.append("KOA_OIDC_ISSUER is required with OpenID Connect")
            if not self.oidc_audience:
                errors.append("KOA_OIDC_AUDIENCE is required with OpenID Connect")
            if bool(self.oidc_jwks_url) == bool(self.oidc_jwks_file):
                errors.append("exactly one of KOA_OIDC_JWKS_URL and KOA_OIDC_JWKS_FILE is required")
        if not self.oidc_configured and self.tokens_file is None:
            errors.append("no way to authenticate: set KOA_TOKENS_FILE or KOA_OIDC_* (see the README)")
        return errors

    def insecure_reasons(self) -> list[str]:
        """What a production server refuses (the token file's contents are checked when loaded)."""
        if self.env is Environment.DEVELOPMENT:
            return []
        reasons = []
        for name in ("oidc_issuer", "oidc_jwks_url"):
            url = getattr(self, name)
            if url and not url.startswith("https://"):
                reasons.append(f"KOA_{name.upper()} must be an https:// URL outside development")
        return reasons
