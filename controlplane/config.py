"""The one settings object (environment prefix ``STRATUS_``)."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, IPvAnyNetwork, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing import EgressPolicy

SYSTEM_TASK_QUEUE = "stratus-control-plane"
SYSTEM_NAMESPACE = "default"
# The system cell dispatches queued tasks fairly across fairness keys (operations use their
# account's id): one account's backlog of operations does not hold up another's.
SYSTEM_CELL_DYNAMIC_CONFIG = {"matching.useNewMatcher": "true", "matching.enableFairness": "true"}


class OidcProvider(BaseModel):
    """An OpenID Connect IdP the operator trusts for sign-in (``STRATUS_OIDC_PROVIDERS``)."""

    # Used in URLs: /api/v1/auth/oidc/<name>/login
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    issuer: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    # The one algorithm ID tokens must be signed with (never "none" or HMAC).
    id_token_signing_alg: Literal["RS256", "ES256"] = "RS256"  # noqa: S105
    scope: str = "openid email"
    # Set: the account's own IdP. It signs users into this account only, and the account's
    # users can sign in only through an IdP bound to it.
    account_id: str | None = None

    @property
    def issuer_url(self) -> str:
        # HttpUrl adds a trailing "/" to a bare host; the iss claim is compared exactly.
        return str(self.issuer).rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    data_dir: Path = Path(".stratus")
    database_url: str | None = None
    host: str = "127.0.0.1"
    api_port: int = 8080
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 7233
    # Workers name their namespace in the TLS server name: <namespace id>.<gateway_domain>.
    gateway_domain: str = "stratus.localhost"
    # TLS endpoint for API-key workers (no client certificate); 0 disables it.
    gateway_api_key_port: int = 7234
    # Address of the control plane's own Temporal cluster; set by the supervisor.
    system_cell_address: str = "127.0.0.1:7243"
    cell_provider: Literal["local"] = "local"
    # Cell watching: how often every cell's status is checked (a crashed cell is started again
    # after a backoff of 0.5 s doubling to 30 s), how many restarts within the window make a
    # cell "failing" (/readyz answers 503 naming it), and after how long without a namespace
    # an account's cell is stopped (0: never); its next namespace starts it again.
    cell_watch_interval_seconds: float = Field(default=0.5, gt=0)
    cell_restart_failure_threshold: int = Field(default=5, ge=1)
    cell_restart_failure_window_seconds: float = Field(default=300.0, gt=0)
    cell_idle_stop_seconds: float = Field(default=3600.0, ge=0)
    # How operations' workflow starts are retried when the system cell was unreachable.
    reconcile_interval_seconds: float = 10.0
    # How often the action meter scrapes every cell's `action` counter into usage rows.
    metering_interval_seconds: float = 60.0
    # How often storage (history bytes of open and closed workflows) is measured per namespace;
    # the last measurement of each UTC hour is that hour's byte-hours.
    storage_metering_interval_seconds: float = Field(default=600.0, gt=0)
    # Billing: the price book file (unset: the one shipped in billing/price_book.yaml), the plan
    # of accounts the operator has not put on another, how long a month's invoice stays a draft
    # for late usage, and how often drafts are re-rated and usage/invoices exported.
    price_book: Path | None = None
    default_plan: str = "essentials"
    invoice_grace_hours: float = Field(default=72.0, ge=0)
    billing_interval_seconds: float = Field(default=300.0, gt=0)
    # Networks export sinks may reach although they are not public (JSON list of CIDRs, e.g.
    # '["10.20.0.0/16"]' for an S3-compatible store on the private network). Empty: sinks must
    # resolve to public addresses that are not this host's own.
    export_sink_allowed_networks: list[IPvAnyNetwork] = []
    otel_exporter: Literal["none", "console"] = "none"
    log_level: str = "INFO"
    # Where browsers and IdPs reach the API (OIDC redirect URIs and SAML entity ids / ACS URLs
    # are built from it); unset: the API's own address (``api_url``). Never the request's Host
    # header, which the client chooses.
    public_url: str | None = None
    # JSON list of OidcProvider objects.
    oidc_providers: list[OidcProvider] = []
    session_lifetime_seconds: int = Field(default=12 * 3600, ge=60)
    # Request bodies larger than this get 413 before they are read (CA bundles, at most 32 KiB,
    # and SAML metadata fit well within the default 1 MiB).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)

    @field_validator("oidc_providers")
    @classmethod
    def _unique_provider_names(cls, providers: list[OidcProvider]) -> list[OidcProvider]:
        names = [provider.name for provider in providers]
        if len(names) != len(set(names)):
            raise ValueError("OIDC provider names must be unique")
        return providers

    @property
    def cell_idle_stop_after(self) -> dt.timedelta | None:
        if self.cell_idle_stop_seconds == 0:
            return None
        return dt.timedelta(seconds=self.cell_idle_stop_seconds)

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @cached_property
    def export_egress(self) -> EgressPolicy:
        """Where export sinks may connect (checked when a sink is set and on every connection)."""
        return EgressPolicy(allowed_networks=tuple(self.export_sink_allowed_networks))

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'stratus.db'}"

    @property
    def cells_dir(self) -> Path:
        return self.resolved_data_dir / "cells"

    @property
    def pki_dir(self) -> Path:
        return self.resolved_data_dir / "pki"

    @property
    def price_book_path(self) -> Path:
        if self.price_book is not None:
            return self.price_book.expanduser().resolve()
        return Path(__file__).resolve().parent.parent / "billing" / "price_book.yaml"

    @property
    def secrets_key_path(self) -> Path:
        """The key that encrypts secrets stored in the database (export sinks' S3 keys)."""
        return self.resolved_data_dir / "secrets.key"

    @property
    def operator_key_path(self) -> Path:
        return self.resolved_data_dir / "operator.key"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def public_base_url(self) -> str:
        """The API's URL as browsers and identity providers know it."""
        return (self.public_url or self.api_url).rstrip("/")
