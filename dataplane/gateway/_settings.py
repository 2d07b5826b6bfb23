"""The gateway's settings (environment prefix ``STRATUS_GATEWAY_``)."""

from __future__ import annotations

import json
import socket
from typing import Any

from pydantic import AliasChoices, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dataplane.gateway._limits import CallerLimits
from dataplane.gateway._server import DEFAULT_MAX_REQUEST_BYTES
from dataplane.gateway._tls import DEFAULT_DOMAIN
from dataplane.telemetry import LogFormat, OtelExporter, OtlpProtocol, TelemetryOptions

_CALLER_LIMITS = CallerLimits()


def _both(name: str) -> AliasChoices:
    """The gateway's own variable, else the one every Stratus process reads."""
    return AliasChoices(f"STRATUS_GATEWAY_{name.upper()}", f"STRATUS_{name.upper()}")


class GatewaySettings(BaseSettings):
    """Everything ``python -m dataplane.gateway`` reads. ``stratus up`` builds one from its own
    environment plus what it assigns (certificates, the API's URL and key) and hands it whole
    to the gateway it runs."""

    model_config = SettingsConfigDict(
        env_prefix="STRATUS_GATEWAY_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=7233, ge=1, le=65535)
    # PEM files: the server certificate and key of the mTLS listener, and the CA (certificate
    # and key) that signs the server certificates of namespace server names
    # (<namespace id>.<domain>).
    cert: FilePath
    key: FilePath
    ca: FilePath
    ca_key: FilePath
    # The control plane's API (routes, API-key verification) and the operator key to call it.
    api_url: str = Field(
        validation_alias=AliasChoices("STRATUS_GATEWAY_API_URL", "STRATUS_API_URL")
    )
    api_key: SecretStr
    domain: str = DEFAULT_DOMAIN
    # Stable across restarts: the control plane waits for every registered gateway id.
    # Unset: <host name>:<port>.
    id: str = Field(default="", max_length=64)
    # Prometheus metrics on <metrics_host>:<metrics_port>; port 0 disables them.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # The API-key endpoint (TLS without client certificates); 0 disables it.
    api_key_port: int = Field(default=0, ge=0, le=65535)
    max_request_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BYTES, ge=1024)
    # Limits per caller or source address, the same for every tenant (see CallerLimits).
    namespaceless_rps: int = Field(default=_CALLER_LIMITS.namespaceless_requests_per_second, ge=1)
    key_failures_per_second: float = Field(default=_CALLER_LIMITS.key_failures_per_second, gt=0)
    key_failure_burst: int = Field(default=_CALLER_LIMITS.key_failure_burst, ge=1)
    key_verifications_in_flight: int = Field(
        default=_CALLER_LIMITS.key_verifications_in_flight, ge=1
    )
    key_verifications_waiting: int = Field(default=_CALLER_LIMITS.key_verifications_waiting, ge=0)
    valid_key_ttl_seconds: float = Field(default=_CALLER_LIMITS.valid_key_ttl, ge=0)
    invalid_key_ttl_seconds: float = Field(default=_CALLER_LIMITS.invalid_key_ttl, ge=0)

    # Traces and metrics (see dataplane.telemetry); STRATUS_OTEL_* as the control plane's
    # processes read them, or STRATUS_GATEWAY_OTEL_* for the gateway alone.
    otel_exporter: OtelExporter = Field(default="none", validation_alias=_both("otel_exporter"))
    otel_exporter_otlp_endpoint: str = Field(
        default="", validation_alias=_both("otel_exporter_otlp_endpoint")
    )
    otel_exporter_otlp_headers: SecretStr = Field(
        default=SecretStr(""), validation_alias=_both("otel_exporter_otlp_headers")
    )
    otel_exporter_otlp_protocol: OtlpProtocol = Field(
        default="grpc", validation_alias=_both("otel_exporter_otlp_protocol")
    )
    log_format: LogFormat = Field(default="text", validation_alias=_both("log_format"))

    @model_validator(mode="after")
    def _default_id(self) -> GatewaySettings:
        if not self.id:
            self.id = f"{socket.gethostname()}:{self.port}"[:64]
        return self

    @property
    def caller_limits(self) -> CallerLimits:
        return CallerLimits(
            namespaceless_requests_per_second=self.namespaceless_rps,
            key_failures_per_second=self.key_failures_per_second,
            key_failure_burst=self.key_failure_burst,
            key_verifications_in_flight=self.key_verifications_in_flight,
            key_verifications_waiting=self.key_verifications_waiting,
            valid_key_ttl=self.valid_key_ttl_seconds,
            invalid_key_ttl=self.invalid_key_ttl_seconds,
        )

    @property
    def telemetry(self) -> TelemetryOptions:
        return TelemetryOptions(
            exporter=self.otel_exporter,
            endpoint=self.otel_exporter_otlp_endpoint,
            headers=self.otel_exporter_otlp_headers,
            protocol=self.otel_exporter_otlp_protocol,
        )

    def effective(self) -> dict[str, Any]:
        """Every setting as the gateway uses it, the API key redacted."""
        values: dict[str, Any] = self.model_dump(mode="json")
        return values

    def announce(self) -> None:
        """Print the effective settings (one line, the API key redacted) to the gateway's log;
        the same line the control plane's processes print."""
        print(f"effective settings: gateway {json.dumps(self.effective())}", flush=True)
