"""Settings, one pydantic-settings model per process role (environment prefix ``STRATUS_``).

``ApiSettings`` and ``WorkerSettings`` share ``StratusSettings``; ``SupervisorSettings``
(``stratus up``) holds both and hands each child its whole model through the environment
(:func:`settings_environment`). The gateway's own model is ``dataplane.gateway.GatewaySettings``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    HttpUrl,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from billing import EgressPolicy
from controlplane.states import CellPlacement
from dataplane.cells import CellProviderKind, CellTls
from dataplane.telemetry import LogFormat, OtelExporter, OtlpProtocol, TelemetryOptions

SYSTEM_TASK_QUEUE = "stratus-control-plane"
SYSTEM_NAMESPACE = "default"
# The system cell dispatches queued tasks fairly across fairness keys (operations use their
# account's id): one account's backlog of operations does not hold up another's.
SYSTEM_CELL_DYNAMIC_CONFIG = {"matching.useNewMatcher": "true", "matching.enableFairness": "true"}
# Each process prints one line starting with this, then its role and its effective settings as
# JSON (secrets redacted), when it starts.
EFFECTIVE_SETTINGS_PREFIX = "effective settings: "


class OidcProvider(BaseModel):
    """An OpenID Connect IdP the operator trusts for sign-in (``STRATUS_OIDC_PROVIDERS``)."""

    # Used in URLs: /api/v1/auth/oidc/<name>/login
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    issuer: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(min_length=1)
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


class StratusSettings(BaseSettings):
    """What every control-plane process reads (environment prefix ``STRATUS_``): the base of
    the API's, the worker's and the supervisor's settings."""

    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    data_dir: Path = Path(".stratus")
    database_url: str | None = None
    # Address of the control plane's own Temporal cluster; set by the supervisor.
    system_cell_address: str = "127.0.0.1:7243"
    # TLS to the system cluster: its frontend's CA, the client certificate and key to present
    # (all three, or none: plaintext, for a system cluster on loopback as under `stratus up`),
    # and the server name its certificate carries (empty: the host of system_cell_address).
    system_cell_tls_ca: Path | None = None
    system_cell_tls_cert: Path | None = None
    system_cell_tls_key: Path | None = None
    system_cell_server_name: str = ""
    # Billing: the price book file (unset: the one shipped in billing/price_book.yaml), the plan
    # of accounts the operator has not put on another, and how long a month's invoice stays a
    # draft for late usage (the API and the worker both load the price book at start).
    price_book: Path | None = None
    default_plan: str = "essentials"
    invoice_grace_hours: float = Field(default=72.0, ge=0)
    # Networks export sinks may reach although they are not public (JSON list of CIDRs, e.g.
    # '["10.20.0.0/16"]' for an S3-compatible store on the private network). Empty: sinks must
    # resolve to public addresses that are not this host's own.
    export_sink_allowed_networks: list[IPvAnyNetwork] = []
    # Traces and metrics: none, console (spans printed) or otlp (to the collector at
    # otel_exporter_otlp_endpoint over grpc or http/protobuf, with these "key=value,..." headers).
    otel_exporter: OtelExporter = "none"
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_headers: SecretStr = SecretStr("")
    otel_exporter_otlp_protocol: OtlpProtocol = "grpc"
    log_level: str = "INFO"
    # text lines, or one JSON object per line (with request_id and account_id when known).
    log_format: LogFormat = "text"
    # Where new namespaces go: dedicated (the account's own cell: a local one made on first
    # use, or a free registered dedicated cell) or shared (the registered shared cell with the
    # fewest namespaces and room left).
    cell_placement: CellPlacement = CellPlacement.DEDICATED
    # Which provider runs account cells (one factory turns it into one:
    # controlplane.cells.provider): local (`temporal server start-dev` processes made on first
    # use) or external (only registered cells; a dedicated create finding no free registered
    # cell is refused 503 no-cell-capacity). `stratus up` runs its system cell locally either way.
    cell_provider: CellProviderKind = CellProviderKind.LOCAL

    @model_validator(mode="after")
    def _system_cell_tls_complete(self) -> StratusSettings:
        given = [
            name
            for name in ("system_cell_tls_ca", "system_cell_tls_cert", "system_cell_tls_key")
            if getattr(self, name) is not None
        ]
        if given and len(given) != 3:
            raise ValueError(
                "system_cell_tls_ca, system_cell_tls_cert and system_cell_tls_key go together "
                f"(only {', '.join(given)} set)"
            )
        return self

    @cached_property
    def system_cell_tls(self) -> CellTls | None:
        """TLS to the system cluster as every component connects with it (None: plaintext)."""
        if self.system_cell_tls_ca is None:
            return None
        assert self.system_cell_tls_cert is not None
        assert self.system_cell_tls_key is not None
        return CellTls(
            ca_pem=self.system_cell_tls_ca.read_text(),
            cert_pem=self.system_cell_tls_cert.read_text(),
            key_pem=self.system_cell_tls_key.read_text(),
            server_name=self.system_cell_server_name,
        )

    def effective(self) -> dict[str, Any]:
        """Every setting as this process uses it, secrets redacted (SecretStr fields and the
        database URL's password)."""
        values: dict[str, Any] = self.model_dump(mode="json")
        if self.database_url:
            values["database_url"] = make_url(self.database_url).render_as_string(
                hide_password=True
            )
        return values

    def announce(self, role: str) -> None:
        """Print this process's effective settings (one line, secrets redacted) to its log."""
        print(f"{EFFECTIVE_SETTINGS_PREFIX}{role} {json.dumps(self.effective())}", flush=True)

    @property
    def telemetry(self) -> TelemetryOptions:
        return TelemetryOptions(
            exporter=self.otel_exporter,
            endpoint=self.otel_exporter_otlp_endpoint,
            headers=self.otel_exporter_otlp_headers,
            protocol=self.otel_exporter_otlp_protocol,
        )

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


class ApiSettings(StratusSettings):
    """The admin API's settings (``python -m controlplane.app``)."""

    host: str = "127.0.0.1"
    api_port: int = 8080
    # Where browsers and IdPs reach the API (OIDC redirect URIs and SAML entity ids / ACS URLs
    # are built from it); unset: the API's own address (``api_url``). Never the request's Host
    # header, which the client chooses.
    public_url: str | None = None
    # JSON list of OidcProvider objects.
    oidc_providers: list[OidcProvider] = []
    session_lifetime_seconds: int = Field(default=12 * 3600, ge=60)
    # An invited user who has not signed in within this long can no longer accept (an admin
    # resends the invitation: a new expiry).
    invitation_lifetime_days: float = Field(default=7.0, gt=0, le=365)
    # Apply the database's migrations when the API starts. Several replicas: set false and run
    # `stratus migrate` once before rolling them out.
    migrate_on_start: bool = True
    # Request bodies larger than this get 413 before they are read (CA bundles, at most 32 KiB,
    # and SAML metadata fit well within the default 1 MiB).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    # How long this process keeps a verified API key's principal: a key disabled, deleted or
    # narrowed through another API replica still works here for at most this long (through
    # this one, never). 0 reads the key on every request.
    credential_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # Where workers reach the gateway (the console's connection details; `stratus up` also
    # listens there).
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 7233
    # Workers name their namespace in the TLS server name: <namespace id>.<gateway_domain>.
    gateway_domain: str = "stratus.localhost"
    # TLS endpoint for API-key workers (no client certificate); 0 disables it.
    gateway_api_key_port: int = 7234

    @field_validator("oidc_providers")
    @classmethod
    def _unique_provider_names(cls, providers: list[OidcProvider]) -> list[OidcProvider]:
        names = [provider.name for provider in providers]
        if len(names) != len(set(names)):
            raise ValueError("OIDC provider names must be unique")
        return providers

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def public_base_url(self) -> str:
        """The API's URL as browsers and identity providers know it."""
        return (self.public_url or self.api_url).rstrip("/")


class WorkerSettings(StratusSettings):
    """The control plane's worker's settings (``python -m controlplane.worker``): cells,
    reconciling, metering and billing."""

    # Cell watching: how often every cell's status is checked (a crashed cell is started again
    # after a backoff of 0.5 s doubling to 30 s), how many restarts within the window make a
    # cell "failing" (/readyz answers 503 naming it), and after how long without a namespace
    # an account's cell is stopped (0: never); its next namespace starts it again.
    cell_watch_interval_seconds: float = Field(default=0.5, gt=0)
    # How often every registered (external) cell's frontend is probed, and how long a probe
    # may take before it counts as failed ("timeout").
    cell_probe_interval_seconds: float = Field(default=10.0, gt=0)
    cell_probe_timeout_seconds: float = Field(default=5.0, gt=0)
    # How many consecutive failed probes turn a registered cell unhealthy (its namespaces then
    # answer UNAVAILABLE at the gateway); one success turns it healthy again.
    cell_probe_failures_to_unhealthy: int = Field(default=3, ge=1)
    cell_restart_failure_threshold: int = Field(default=5, ge=1)
    cell_restart_failure_window_seconds: float = Field(default=300.0, gt=0)
    cell_idle_stop_seconds: float = Field(default=3600.0, ge=0)
    # How operations' workflow starts are retried when the system cell was unreachable.
    reconcile_interval_seconds: float = Field(default=10.0, gt=0)
    # How often the action meter scrapes every cell's `action` counter into usage rows.
    metering_interval_seconds: float = Field(default=60.0, gt=0)
    # How often storage (history bytes of open and closed workflows) is measured per namespace;
    # the last measurement of each UTC hour is that hour's byte-hours.
    storage_metering_interval_seconds: float = Field(default=600.0, gt=0)
    # How often drafts are re-rated and usage/invoices exported.
    billing_interval_seconds: float = Field(default=300.0, gt=0)
    # How often closed workflow runs' histories are exported to their namespaces' sinks (each
    # UTC hour's runs once the hour has ended and settled).
    history_export_interval_seconds: float = Field(default=300.0, gt=0)
    # How often the workload insights analyse every ACTIVE namespace over the last hour (the
    # 24h window every 6 intervals, the 7d window every 24): docs/insights.md.
    insights_interval_seconds: float = Field(default=300.0, gt=0)
    # How long a deleted account's cells keep their data before they are stopped and it is
    # removed (the account's audit trail and invoices are kept).
    account_data_retention_days: float = Field(default=7.0, ge=0, le=3650)
    # GET /healthz and /readyz (200 once connected to the system cell and polling, else 503)
    # on <worker_health_host>:<worker_health_port>; 0 disables them (`stratus up` does).
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int = Field(default=0, ge=0, le=65535)

    @property
    def cell_idle_stop_after(self) -> dt.timedelta | None:
        if self.cell_idle_stop_seconds == 0:
            return None
        return dt.timedelta(seconds=self.cell_idle_stop_seconds)


class SupervisorSettings(ApiSettings, WorkerSettings):
    """``stratus up``: every setting of the API and the worker (it hands each child its own,
    whole) and where the gateway it runs listens."""

    # The gateway's own settings are the API's (the console shows workers where to connect).


# Every setting: what `stratus up`, tools and tests build.
Settings = SupervisorSettings

_Role = TypeVar("_Role", bound=BaseSettings)


def settings_for(role: type[_Role], source: BaseSettings, **assigned: Any) -> _Role:
    """``role``'s settings taken whole from ``source`` (every field both have), with the values
    the caller assigns (e.g. the supervisor's system-cell address)."""
    shared = type(source).model_fields.keys() & role.model_fields.keys()
    return role(**({name: getattr(source, name) for name in shared} | assigned))


def settings_environment(settings: BaseSettings) -> dict[str, str]:
    """Every field of ``settings`` as the environment variables its class reads them from, so
    a child process validates exactly these settings again. Secrets are in clear: this is a
    child's environment, never a log line."""
    prefix = settings.model_config.get("env_prefix") or ""
    environment: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = _plain(getattr(settings, name))
        if value is None:
            continue
        variable = _variable(prefix, name, field.validation_alias)
        environment[variable] = value if isinstance(value, str) else json.dumps(value)
    return environment


def file_environment(role: type[BaseSettings], values: Mapping[str, Any]) -> dict[str, str]:
    """A settings file's values (keys: ``role``'s field names) as the environment variables
    ``role`` reads them from. Raises ``ValueError`` naming every key ``role`` has no field
    for, so a misspelt setting never goes unnoticed."""
    fields = role.model_fields
    unknown = sorted(set(values) - fields.keys())
    if unknown:
        raise ValueError(
            f"not a setting of {role.__name__}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(fields))})"
        )
    prefix = role.model_config.get("env_prefix") or ""
    environment: dict[str, str] = {}
    for name, value in values.items():
        plain = _plain(value)
        if plain is None:
            continue
        variable = _variable(prefix, name, fields[name].validation_alias)
        environment[variable] = plain if isinstance(plain, str) else json.dumps(plain)
    return environment


def _variable(prefix: str, name: str, alias: object) -> str:
    if isinstance(alias, str):
        return alias.upper()
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0].upper()
    return f"{prefix}{name}".upper()


def _plain(value: object) -> Any:
    """``value`` as JSON-able data, secrets revealed."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
