"""Registered cells end to end: a real ``stratus up`` placing namespaces by the shared policy on a
real Temporal dev server registered as an external cell (plaintext, so on loopback), the
operator-only ``/api/v1/cells`` with its refusals, the health probe and ``stratus_cell_up``."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from identity_support import assert_problem
from support import (
    StratusUp,
    create_active_namespace,
    free_port,
    free_ports,
    http,
    new_tenant,
    run_greeting,
    wait_until,
)

from auth import generate_ca, generate_leaf
from dataplane.cells import CellEndpoint, LocalCellProvider
from infra.cell_frontend import run_cell_frontend

pytestmark = pytest.mark.slow  # a dev server, its mTLS frontend and a `stratus up`

CELL = "shared-one"


@pytest.fixture(scope="module")
def dev_cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCellProvider, str]]:
    """A Temporal dev server on loopback, as an operator would run a cluster (Stratus does not
    run it: it is registered)."""
    provider = LocalCellProvider(
        Path(tmp_path_factory.mktemp("external-cell")), free_ports=free_ports
    )
    endpoint: CellEndpoint = asyncio.run(provider.provision("external-one"))
    asyncio.run(provider.start(endpoint))
    try:
        yield provider, endpoint.grpc_address
    finally:
        asyncio.run(provider.stop(endpoint.cell_id))


@pytest.fixture(scope="module")
def shared_stratus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    up = StratusUp(
        tmp_path_factory.mktemp("shared-stratus"),
        free_port(),
        free_port(),
        extra_env={
            "STRATUS_CELL_PLACEMENT": "shared",
            "STRATUS_CELL_PROBE_INTERVAL_SECONDS": "0.5",
            "STRATUS_CELL_PROBE_TIMEOUT_SECONDS": "2",
            "STRATUS_METERING_INTERVAL_SECONDS": "1",
        },
    )
    try:
        up.start()
        yield up
    finally:
        up.cleanup()


def _register(address: str, **fields: object) -> dict[str, object]:
    return {"name": "bad", "frontend": address, "max_namespaces": 2, **fields}


def test_registration_refusals(shared_stratus: StratusUp, dev_cell: tuple[object, str]) -> None:
    """Every wrong registration is a 422 naming the field or the reason; nothing is stored."""
    _, address = dev_cell
    ca = generate_ca("cell CA")
    leaf = generate_leaf(ca, "stratus")
    other = generate_leaf(ca, "someone else")
    tls = {
        "tls_ca": ca.cert_pem.decode(),
        "tls_cert": leaf.cert_pem.decode(),
        "tls_key": leaf.key_pem.decode(),
    }
    tenant = new_tenant(shared_stratus, "CellsNosy")
    with http(shared_stratus, shared_stratus.operator_key) as operator:
        refused_port = free_port()
        unreachable = operator.post("/cells", json=_register(f"127.0.0.1:{refused_port}"))
        assert_problem(unreachable, 422, "cell-unreachable")
        assert unreachable.json()["reason"] == "unreachable: connection refused"
        # A TLS cell whose frontend speaks plaintext: the handshake fails.
        handshake = operator.post("/cells", json=_register(address, **tls))
        assert_problem(handshake, 422, "cell-unreachable")
        assert handshake.json()["reason"].startswith("tls: "), handshake.json()
        cases: list[tuple[dict[str, object], str, str]] = [
            (_register("10.0.0.1:7233"), "frontend", "must be on loopback"),
            (_register("no-port"), "frontend", "host:port"),
            (_register("127.0.0.1:99999"), "frontend", "host:port"),
            (_register(address, name="Has_Caps"), "name", "lowercase"),
            (_register(address, name="cell-abc"), "name", "local cells"),
            (_register(address, metrics_url="ftp://x/metrics"), "metrics_url", "http"),
            (_register(address, tls_ca=tls["tls_ca"]), "tls_cert", "missing tls_cert"),
            (_register(address, **{**tls, "tls_ca": "not a pem"}), "tls_ca", "tls_ca"),
            (_register(address, **{**tls, "tls_cert": "junk"}), "tls_cert", "PEM certificate"),
            (
                _register(address, **{**tls, "tls_key": other.key_pem.decode()}),
                "tls_key",
                "does not belong",
            ),
            (_register(address, server_name="x"), "tls", "needs TLS"),
        ]
        for body, field, words in cases:
            response = operator.post("/cells", json=body)
            assert_problem(response, 422, "invalid-cell")
            assert response.json()["field"] == field, (body, response.json())
            assert words in response.json()["detail"], (body, response.json())
        malformed = operator.post("/cells", json=_register(address, max_namespaces=0))
        assert_problem(malformed, 422, "malformed-request")
        assert operator.get("/cells").json()["cells"] == []
    with http(shared_stratus, tenant.api_key) as nosy:
        for method, path in [
            ("GET", "/cells"),
            ("POST", "/cells"),
            ("GET", f"/cells/{CELL}"),
            ("POST", f"/cells/{CELL}/drain"),
            ("DELETE", f"/cells/{CELL}"),
        ]:
            body = _register(address, name="sneaky") if method == "POST" else None
            assert_problem(nosy.request(method, path, json=body), 403, "forbidden")


def test_tls_cell_registration_and_provisioning(
    shared_stratus: StratusUp, dev_cell: tuple[object, str]
) -> None:
    """Through an nginx frontend demanding a client certificate: the right CA, server name and
    client certificate register (the key is never shown again) and provision a namespace over
    TLS; a wrong CA, server name or client certificate is a 422 naming the reason."""
    provider, address = dev_cell
    assert isinstance(provider, LocalCellProvider)
    stranger_ca = generate_ca("not the frontend's CA")
    stranger = generate_leaf(stranger_ca, "stranger")
    metrics = provider.metrics_url("external-one").removeprefix("http://").removesuffix("/metrics")
    with run_cell_frontend(address, metrics_upstream=metrics) as frontend:
        good = {
            "name": "tls-one",
            "frontend": frontend.address,
            "metrics_url": frontend.metrics_url,
            "tls_ca": frontend.server_ca.cert_pem.decode(),
            "tls_cert": frontend.client.cert_pem.decode(),
            "tls_key": frontend.client.key_pem.decode(),
            "server_name": frontend.server_name,
            "max_namespaces": 1,
            "placement": "shared",
        }
        wrong = [
            ({"tls_ca": stranger_ca.cert_pem.decode()}, "tls: unknown certificate authority"),
            ({"server_name": "elsewhere.stratus.test"}, "tls: server name mismatch"),
            (
                {"tls_cert": stranger.cert_pem.decode(), "tls_key": stranger.key_pem.decode()},
                "tls: closed by the frontend, client certificate refused?",
            ),
        ]
        with http(shared_stratus, shared_stratus.operator_key) as operator:
            for change, reason in wrong:
                refused = operator.post("/cells", json={**good, **change})
                assert_problem(refused, 422, "cell-unreachable")
                assert refused.json()["reason"].startswith(reason), (change, refused.json())
            assert operator.get("/cells").json()["cells"] == []
            registered = operator.post("/cells", json=good)
            assert registered.status_code == 201, registered.text
            shown = operator.get("/cells/tls-one")
            assert shown.json()["tls"] is True
            assert shown.json()["server_version"]
            key_body = frontend.client.key_pem.decode().splitlines()[1]
            assert key_body not in registered.text + shown.text + operator.get("/cells").text
        with sqlite3.connect(shared_stratus.data_dir / "stratus.db") as db:
            audited = db.execute(
                "SELECT details FROM audit_events WHERE action = 'cell.register'"
                " AND target = 'cell/tls-one'"
            ).fetchall()
        (details,) = [json.loads(row[0]) for row in audited]
        assert details["tls"] is True
        assert details["tls_ca_sha256"] == [
            frontend.server_ca.certificate.fingerprint(hashes.SHA256()).hex()
        ]
        assert key_body not in json.dumps(details)
        tenant = new_tenant(shared_stratus, "CellsTls")
        # Registered on the cell over TLS by the worker's provisioning activities.
        namespace_id = create_active_namespace(shared_stratus, tenant, "secure")
        # Workers through the gateway, which reaches the cell through the frontend with the
        # cell's client certificate; the meter scrapes it over https with the same.
        workflow = run_greeting(shared_stratus, namespace_id, tenant.client_cert, "over-tls")
        assert asyncio.run(workflow) == "Hello, Stratus!"
        wait_until(
            lambda: (
                _usage(shared_stratus, namespace_id)
                == {"actions.workflow": 1, "actions.activity": 1}
            ),
            60,
        )
        with http(shared_stratus, shared_stratus.operator_key) as operator:
            assert operator.get("/cells/tls-one").json()["namespaces"] == [
                {"namespace_id": namespace_id, "account_id": tenant.account_id}
            ]
            document = operator.get("/internal/gateway-routes").json()
            assert operator.post("/cells/tls-one/drain").status_code == 200
    (entry,) = [c for c in document["cells"] if c["cell_id"] == "tls-one"]
    assert entry["address"] == frontend.address
    assert entry["tls"] == {
        "ca_pem": frontend.server_ca.cert_pem.decode(),
        "cert_pem": frontend.client.cert_pem.decode(),
        "key_pem": entry["tls"]["key_pem"],
        "server_name": frontend.server_name,
    }
    assert key_body in entry["tls"]["key_pem"]
    (route,) = [r for r in document["routes"] if r["namespace_id"] == namespace_id]
    assert route["cell_id"] == "tls-one"


def _usage(stratus: StratusUp, namespace_id: str) -> dict[str, int]:
    with sqlite3.connect(stratus.data_dir / "stratus.db") as db:
        rows = db.execute(
            "SELECT kind, SUM(quantity) FROM usage_records WHERE namespace_id = ? GROUP BY kind",
            (namespace_id,),
        ).fetchall()
    return {kind: int(total) for kind, total in rows}


def _cell(stratus: StratusUp) -> dict[str, object]:
    with http(stratus, stratus.operator_key) as operator:
        response = operator.get(f"/cells/{CELL}")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


def _cell_up(stratus: StratusUp) -> str | None:
    metrics = http(stratus, None).get(stratus.api_url + "/metrics").text
    match = re.search(rf'^stratus_cell_up\{{cell="{CELL}"\}} (\S+)$', metrics, re.MULTILINE)
    return str(int(float(match.group(1)))) if match else None


def test_shared_cell_packs_accounts_up_to_capacity_and_turns_unhealthy(
    shared_stratus: StratusUp, dev_cell: tuple[LocalCellProvider, str]
) -> None:
    provider, address = dev_cell
    registered = shared_stratus.cli(
        "cell",
        "register",
        "--name",
        CELL,
        "--frontend",
        address,
        "--max-namespaces",
        "2",
        "--placement",
        "shared",
        "--output",
        "json",
        api_key=shared_stratus.operator_key,
    )
    assert registered.returncode == 0, registered.stderr
    cell = json.loads(registered.stdout)
    assert cell["server_version"], cell
    assert cell["provider"] == "external"
    assert cell["tls"] is False
    assert "tls_key" not in registered.stdout
    with http(shared_stratus, shared_stratus.operator_key) as operator:
        assert_problem(
            operator.post("/cells", json=_register(address, name=CELL)), 409, "already-exists"
        )

    alpha, beta = new_tenant(shared_stratus, "CellsAlpha"), new_tenant(shared_stratus, "CellsBeta")
    first = create_active_namespace(shared_stratus, alpha, "orders")
    second = create_active_namespace(shared_stratus, beta, "orders")
    on_cell = _cell(shared_stratus)
    assert on_cell["namespace_count"] == 2
    assert on_cell["namespaces"] == sorted(
        [
            {"namespace_id": first, "account_id": alpha.account_id},
            {"namespace_id": second, "account_id": beta.account_id},
        ],
        key=lambda row: row["namespace_id"],
    )
    # Workflows run on the shared cell through the gateway.
    result = asyncio.run(run_greeting(shared_stratus, first, alpha.client_cert, "on-shared"))
    assert result == "Hello, Stratus!"
    # Tenants never see where their namespace lives.
    with http(shared_stratus, alpha.api_key) as tenant:
        shown = tenant.get(f"/namespaces/{first}").json()
        assert not {key for key in shown if "cell" in key}, shown
        # Full: the next namespace is refused at create, nothing left behind.
        full = tenant.post(
            "/namespaces",
            json={
                "name": "more",
                "retention_days": 1,
                "accepted_client_ca": alpha.ca.cert_pem.decode(),
            },
        )
        assert_problem(full, 503, "no-cell-capacity")
        assert tenant.get(f"/namespaces/more.{alpha.account_id}").status_code == 404

    with http(shared_stratus, shared_stratus.operator_key) as operator:
        in_use = operator.delete(f"/cells/{CELL}")
        assert_problem(in_use, 409, "conflict")
        assert "2 namespace(s)" in in_use.json()["detail"]
        assert operator.post(f"/cells/{CELL}/drain").json()["state"] == "draining"
        undrained = shared_stratus.cli(
            "cell", "drain", CELL, "--undo", api_key=shared_stratus.operator_key
        )
        assert undrained.returncode == 0, undrained.stderr
        assert "is active" in undrained.stdout

    wait_until(lambda: _cell_up(shared_stratus) == "1", timeout=30)
    # The cluster goes away: the probe marks it unhealthy with the reason, the metric drops
    # and the route document tells gateways.
    asyncio.run(provider.stop("external-one"))
    wait_until(lambda: _cell(shared_stratus)["health"]["state"] == "unhealthy", timeout=30)  # type: ignore[index]
    health = _cell(shared_stratus)["health"]
    assert health["reason"].startswith("unreachable: connection refused"), health  # type: ignore[index]
    assert _cell_up(shared_stratus) == "0"
    with http(shared_stratus, shared_stratus.operator_key) as operator:
        document = operator.get("/internal/gateway-routes").json()
    assert [c for c in document["cells"] if c["cell_id"] == CELL] == [
        {"cell_id": CELL, "address": address, "tls": None, "healthy": False}
    ]
    assert {first, second} <= {
        r["namespace_id"] for r in document["routes"] if r["cell_id"] == CELL
    }
