"""Every setting reaches the process that uses it. ``stratus up`` runs with every setting of
every role set to a value that is not its default; each child prints its effective settings
when it starts, and they are exactly what the operator set (or what the supervisor assigns:
the system cell's address, the gateway's certificates and key). The values come from iterating
over the settings models' fields, so a new setting is covered (or the test names it)."""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from support import StratusUp, free_port

from controlplane.config import (
    EFFECTIVE_SETTINGS_PREFIX,
    ApiSettings,
    StratusSettings,
    SupervisorSettings,
    WorkerSettings,
    settings_environment,
)
from controlplane.supervisor import SYSTEM_CELL_PLAINTEXT
from dataplane.gateway import GatewaySettings

pytestmark = pytest.mark.slow  # it runs a whole `stratus up`

REPO_ROOT = Path(__file__).resolve().parents[2]
OIDC_CLIENT_SECRET = "oidc-client-secret-never-logged"
# Gateway settings `stratus up` assigns itself (from its own settings or its bootstrap).
GATEWAY_ASSIGNED = {"host", "port", "domain", "api_key_port", "cert", "key", "ca", "ca_key"}
GATEWAY_ASSIGNED |= {"api_url", "api_key"}
# Telemetry settings every role reads alike; the supervisor hands the gateway its own.
TELEMETRY = {"otel_exporter", "otel_exporter_otlp_endpoint", "otel_exporter_otlp_headers"}
TELEMETRY |= {"otel_exporter_otlp_protocol", "log_format"}
GATEWAY_ASSIGNED |= TELEMETRY
OTLP_HEADERS = "x-collector-token=otlp-header-never-logged"


def _only_value(field: FieldInfo) -> bool:
    """A setting with one possible value (e.g. the one cell provider there is) cannot differ."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return len(annotation) == 1
    return get_origin(annotation) is Literal and len(get_args(annotation)) == 1


def _is_number(field: FieldInfo) -> bool:
    return field.annotation in (int, float) and not isinstance(field.default, bool)


def _non_default(model: type[BaseModel], explicit: dict[str, Any]) -> dict[str, Any]:
    """A non-default value for every field of ``model``: given in ``explicit``, or twice the
    default of a number."""
    values: dict[str, Any] = {}
    missing = []
    for name, field in model.model_fields.items():
        if name in explicit:
            values[name] = explicit[name]
        elif _is_number(field):
            values[name] = field.default * 2 if field.default else 1
        elif not _only_value(field):
            missing.append(name)
    assert not missing, f"give test values for the new settings {missing} of {model.__name__}"
    return values


def _env_value(value: Any) -> str:
    if isinstance(value, str | Path):
        return str(value)
    return json.dumps(value)


def _effective_lines(log: Path, role: str) -> list[dict[str, Any]]:
    marker = f"{EFFECTIVE_SETTINGS_PREFIX}{role} "
    return [
        json.loads(line.split(marker, 1)[1])
        for line in log.read_text(errors="replace").splitlines()
        if marker in line
    ]


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    return {
        name: json.loads(json.dumps(field.default, default=str))
        for name, field in model.model_fields.items()
        if not field.is_required()
    }


@pytest.fixture
def everything_set(tmp_path: Path) -> Iterator[tuple[StratusUp, dict[str, Any], dict[str, Any]]]:
    data_dir = tmp_path / "data"
    price_book = tmp_path / "prices.yaml"
    shutil.copy(REPO_ROOT / "billing" / "price_book.yaml", price_book)
    stratus = StratusUp(data_dir, api_port=free_port(), gateway_port=free_port())
    supervisor = _non_default(
        SupervisorSettings,
        {
            "data_dir": data_dir,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.db'}",
            # Assigned by the supervisor: the running system cell's address wins.
            "system_cell_address": "127.0.0.1:1",
            # Also assigned: the supervisor's own system cell is plaintext on loopback.
            "system_cell_tls_ca": tmp_path / "ca.pem",
            "system_cell_tls_cert": tmp_path / "client.pem",
            "system_cell_tls_key": tmp_path / "client.key",
            "system_cell_server_name": "system.example.test",
            "cell_placement": "shared",
            "cell_provider": "external",
            "price_book": price_book,
            "default_plan": "business",
            "export_sink_allowed_networks": ["10.20.0.0/16"],
            "otel_exporter": "console",
            # Not contacted: spans go to the console.
            "otel_exporter_otlp_endpoint": "http://127.0.0.1:1",
            "otel_exporter_otlp_headers": OTLP_HEADERS,
            "otel_exporter_otlp_protocol": "http/protobuf",
            "log_format": "json",
            "log_level": "WARNING",
            "host": "127.0.0.2",
            "api_port": stratus.api_port,
            "public_url": "https://stratus.example.test",
            # The data dir is bootstrapped (migrated) before the API starts.
            "migrate_on_start": False,
            "worker_health_host": "127.0.0.5",
            "worker_health_port": free_port(),
            "oidc_providers": [
                {
                    "name": "corp",
                    "issuer": "https://idp.example.test/",
                    "client_id": "stratus",
                    "client_secret": OIDC_CLIENT_SECRET,
                }
            ],
            "gateway_host": "127.0.0.3",
            "gateway_port": stratus.gateway_port,
            "gateway_domain": "workers.example.test",
            "gateway_api_key_port": stratus.gateway_api_key_port,
        },
    )
    gateway = _non_default(
        GatewaySettings,
        {
            **dict.fromkeys(GATEWAY_ASSIGNED),
            "id": "gateway-under-test",
            "metrics_host": "127.0.0.4",
            "metrics_port": free_port(),
        },
    )
    gateway = {name: value for name, value in gateway.items() if name not in GATEWAY_ASSIGNED}
    env = {f"STRATUS_{name.upper()}": _env_value(value) for name, value in supervisor.items()}
    env |= {f"STRATUS_GATEWAY_{name.upper()}": _env_value(v) for name, v in gateway.items()}
    stratus.extra_env = env
    try:
        yield stratus, supervisor, gateway
    finally:
        stratus.cleanup()


def test_every_setting_reaches_every_child_whole(
    everything_set: tuple[StratusUp, dict[str, Any], dict[str, Any]],
) -> None:
    """The API, the worker and the gateway each run with every one of their settings as the
    operator set it; secrets are redacted in what they print and appear in no log."""
    stratus, operator, gateway_operator = everything_set
    # The supervisor can hand each role everything it reads.
    assert ApiSettings.model_fields.keys() <= SupervisorSettings.model_fields.keys()
    assert WorkerSettings.model_fields.keys() <= SupervisorSettings.model_fields.keys()
    stratus.start()
    up_log = stratus.log_path.read_text()
    system_address = up_log.split("System cell:", 1)[1].split()[0]
    logs = stratus.data_dir / "logs"

    assigned: dict[str, Any] = {"system_cell_address": system_address, **SYSTEM_CELL_PLAINTEXT}
    for role, model in (("api", ApiSettings), ("worker", WorkerSettings)):
        printed = _effective_lines(logs / f"{role}.log", role)
        assert printed, f"the {role} printed no effective settings"
        expected = model(**{n: operator[n] for n in model.model_fields if n in operator} | assigned)
        assert printed[0] == expected.effective()
        defaults = _defaults(model)
        for name in model.model_fields.keys() - assigned.keys():
            if not _only_value(model.model_fields[name]):
                assert printed[0][name] != defaults.get(name), f"{role}: {name} is the default"

    (printed_gateway,) = _effective_lines(logs / "gateway.log", "gateway")
    pki = stratus.data_dir / "pki"
    expected_gateway = GatewaySettings(
        **gateway_operator,
        host=operator["gateway_host"],
        port=operator["gateway_port"],
        domain=operator["gateway_domain"],
        api_key_port=operator["gateway_api_key_port"],
        cert=pki / "gateway.pem",
        key=pki / "gateway.key",
        ca=pki / "gateway-ca.pem",
        ca_key=pki / "gateway-ca.key",
        api_url=f"http://{operator['host']}:{operator['api_port']}",
        api_key=stratus.operator_key,
        **{name: operator[name] for name in TELEMETRY},
    )
    assert printed_gateway == expected_gateway.effective()
    gateway_defaults = _defaults(GatewaySettings)
    for name in gateway_operator:
        assert printed_gateway[name] != gateway_defaults.get(name), f"gateway: {name} is default"
    assert f"metrics: http://127.0.0.4:{gateway_operator['metrics_port']}/metrics" in up_log

    assert printed_gateway["api_key"] == "**********"
    (api_printed,) = _effective_lines(logs / "api.log", "api")[:1]
    assert api_printed["oidc_providers"][0]["client_secret"] == "**********"
    for log in [*logs.iterdir(), stratus.log_path]:
        text = log.read_text(errors="replace")
        assert stratus.operator_key not in text, f"the operator key is in {log.name}"
        assert OIDC_CLIENT_SECRET not in text, f"the OIDC client secret is in {log.name}"
        assert OTLP_HEADERS not in text, f"the OTLP headers are in {log.name}"
    assert stratus.stop() == 0


def test_a_child_reads_back_what_the_supervisor_serialises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the processes: every role's settings, serialised to the environment and read
    again by the same model, are equal (nested models, lists, secrets and paths included)."""
    pem = tmp_path / "any.pem"
    pem.write_text("not read here")
    operator = _non_default(
        SupervisorSettings,
        {
            "data_dir": Path("/srv/stratus"),
            "database_url": "postgresql+asyncpg://stratus:pw@db/stratus",
            "system_cell_address": "10.0.0.5:7233",
            "system_cell_tls_ca": Path("/etc/stratus/system/ca.pem"),
            "system_cell_tls_cert": Path("/etc/stratus/system/client.pem"),
            "system_cell_tls_key": Path("/etc/stratus/system/client.key"),
            "system_cell_server_name": "system.example.test",
            "cell_placement": "shared",
            "cell_provider": "external",
            "price_book": Path("/etc/stratus/prices.yaml"),
            "default_plan": "business",
            "export_sink_allowed_networks": ["10.20.0.0/16", "fd00::/8"],
            "otel_exporter": "console",
            "otel_exporter_otlp_endpoint": "https://collector.example.test:4318",
            "otel_exporter_otlp_headers": OTLP_HEADERS,
            "otel_exporter_otlp_protocol": "http/protobuf",
            "log_format": "json",
            "log_level": "DEBUG",
            "host": "0.0.0.0",
            "api_port": 9000,
            "public_url": "https://stratus.example.test",
            # The data dir is bootstrapped (migrated) before the API starts.
            "migrate_on_start": False,
            "worker_health_host": "127.0.0.5",
            "worker_health_port": free_port(),
            "oidc_providers": [
                {
                    "name": "corp",
                    "issuer": "https://idp.example.test/",
                    "client_id": "stratus",
                    "client_secret": OIDC_CLIENT_SECRET,
                    "account_id": "acme1",
                }
            ],
            "gateway_host": "0.0.0.0",
            "gateway_port": 17233,
            "gateway_domain": "workers.example.test",
            "gateway_api_key_port": 17234,
        },
    )
    gateway = _non_default(
        GatewaySettings,
        {
            "host": "0.0.0.0",
            "port": 17233,
            "domain": "workers.example.test",
            "api_key_port": 17234,
            **dict.fromkeys(("cert", "key", "ca", "ca_key"), pem),
            "api_url": "https://api.example.test",
            "api_key": "operator-key",
            "id": "gateway-0",
            "metrics_host": "0.0.0.0",
            "metrics_port": 19090,
            **{name: operator[name] for name in TELEMETRY},
        },
    )
    roles: list[BaseSettings] = [
        ApiSettings(**{n: v for n, v in operator.items() if n in ApiSettings.model_fields}),
        WorkerSettings(**{n: v for n, v in operator.items() if n in WorkerSettings.model_fields}),
        SupervisorSettings(**operator),
        GatewaySettings(**gateway),
    ]
    for settings in roles:
        for name in [name for name in os.environ if name.startswith("STRATUS_")]:
            monkeypatch.delenv(name)
        for name, value in settings_environment(settings).items():
            monkeypatch.setenv(name, value)
        assert type(settings)() == settings
    supervisor = roles[2]
    assert isinstance(supervisor, StratusSettings)
    assert supervisor.effective()["database_url"] == "postgresql+asyncpg://stratus:***@db/stratus"
