"""Bad input is refused with problem+json naming the field, and nothing is persisted or
started. Unknown, malformed or revoked credentials get 401."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from auth import generate_ca, generate_leaf

PROBLEM = "https://stratus.dev/problems/"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _ca_pem(*, days: int = 365, expired: bool = False) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=400) if expired else now - dt.timedelta(minutes=1)
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    tenant = new_tenant(stratus, "Careful")
    create_active_namespace(stratus, tenant, "existing")
    return tenant


def _snapshot(stratus: StratusUp, tenant: Tenant) -> tuple[list[str], list[str]]:
    with http(stratus, tenant.api_key) as client:
        namespaces = [n["id"] for n in client.get("/namespaces").json()["namespaces"]]
        operations = [o["id"] for o in client.get("/operations").json()["operations"]]
    return namespaces, operations


GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
VALID_CA = generate_ca("valid").cert_pem.decode()
ONE_CA = generate_ca("one").cert_pem.decode()


@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        ({"name": "Orders"}, 400, "invalid-field", "name"),
        ({"name": "1orders"}, 400, "invalid-field", "name"),
        ({"name": "or--ders"}, 400, "invalid-field", "name"),
        ({"name": "a" * 40}, 400, "invalid-field", "name"),
        ({"name": "a"}, 400, "invalid-field", "name"),
        ({"name": "orders-"}, 400, "invalid-field", "name"),
        ({"name": "ord_ers"}, 400, "invalid-field", "name"),
        ({"retention_days": 0}, 400, "invalid-field", "retention_days"),
        ({"retention_days": 91}, 400, "invalid-field", "retention_days"),
        ({"name": "existing"}, 409, "already-exists", "name"),
        ({"accepted_client_ca": "not a pem"}, 400, "invalid-field", "accepted_client_ca"),
        (
            {"accepted_client_ca": GARBAGE_PEM},
            400,
            "invalid-field",
            "accepted_client_ca",
        ),
        (
            {"accepted_client_ca": generate_leaf(generate_ca("x"), "leaf").cert_pem.decode()},
            400,
            "invalid-field",
            "accepted_client_ca",
        ),
        ({"accepted_client_ca": _ca_pem(expired=True)}, 400, "invalid-field", "accepted_client_ca"),
        (
            # Made once with `openssl req -x509 -sha1` (cryptography refuses to sign SHA-1).
            {"accepted_client_ca": (FIXTURES / "sha1-ca.pem").read_text()},
            400,
            "invalid-field",
            "accepted_client_ca",
        ),
        ({"accepted_client_ca": ONE_CA * 17}, 400, "invalid-field", "accepted_client_ca"),
        (
            {"accepted_client_ca": ONE_CA + "\n" + "#" * 33 * 1024},
            400,
            "invalid-field",
            "accepted_client_ca",
        ),
        ({"retention_days": "many"}, 422, "malformed-request", "retention_days"),
        ({"async_operation_id": "bad id!"}, 400, "invalid-field", "async_operation_id"),
        (
            {"certificate_filters": [{"common_name": "*a*"}]},
            400,
            "invalid-field",
            "certificate_filters",
        ),
    ],
    ids=[
        "uppercase",
        "leading-digit",
        "double-dash",
        "too-long",
        "too-short",
        "trailing-dash",
        "underscore",
        "retention-0",
        "retention-91",
        "duplicate",
        "malformed-pem",
        "garbage-pem-body",
        "leaf-as-ca",
        "expired-ca",
        "sha1-ca",
        "17-certs",
        "over-32kb",
        "retention-not-int",
        "bad-operation-id",
        "bad-certificate-filter",
    ],
)
def test_create_namespace_refuses_bad_input(
    stratus: StratusUp,
    tenant: Tenant,
    body: dict[str, Any],
    status: int,
    problem: str,
    field: str,
) -> None:
    before = _snapshot(stratus, tenant)
    request = {"name": "fresh", "retention_days": 30, "accepted_client_ca": VALID_CA, **body}
    with http(stratus, tenant.api_key) as client:
        response = client.post("/namespaces", json=request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    payload = response.json()
    assert payload["type"] == PROBLEM + problem
    assert payload["status"] == status
    assert payload["field"] == field
    assert payload["detail"]
    assert _snapshot(stratus, tenant) == before, "nothing may be persisted or started"


def test_missing_body_field_is_malformed(stratus: StratusUp, tenant: Tenant) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.post("/namespaces", json={"name": "nocert"})
    assert response.status_code == 422
    assert response.json()["type"] == PROBLEM + "malformed-request"
    assert response.json()["field"] == "accepted_client_ca"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-stratus-key",
        "Bearer stratus_aaaaaaaaaaaa_" + "A" * 43,
    ],
    ids=["missing", "empty-bearer", "basic", "malformed", "unknown"],
)
def test_unknown_or_malformed_credentials_get_401(
    stratus: StratusUp, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with http(stratus, None) as client:
        response = client.get("/namespaces", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"] == PROBLEM + "unauthenticated"


def test_revoked_key_gets_401_at_once(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Revoked")
    key_id = tenant.api_key.split("_")[1]
    with http(stratus, tenant.api_key) as client:
        assert client.get("/namespaces").status_code == 200
        assert client.post(f"/api-keys/{key_id}/disable").status_code == 200
        response = client.get("/namespaces")
    assert response.status_code == 401
    assert response.json()["type"] == PROBLEM + "unauthenticated"


def test_owner_cannot_create_accounts_and_operator_has_no_namespaces(
    stratus: StratusUp, tenant: Tenant
) -> None:
    with http(stratus, tenant.api_key) as owner:
        response = owner.post("/accounts", json={"name": "x", "owner_email": "x@y.example"})
    assert response.status_code == 403
    assert response.json()["type"] == PROBLEM + "forbidden"
    with http(stratus, stratus.operator_key) as operator:
        response = operator.get("/namespaces")
    assert response.status_code == 403
    assert response.json()["type"] == PROBLEM + "forbidden"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "owner_email": "a@b.example"}, "name"),
        ({"name": "Acme", "owner_email": "not-an-email"}, "owner_email"),
    ],
)
def test_create_account_refuses_bad_input(
    stratus: StratusUp, body: dict[str, str], field: str
) -> None:
    with http(stratus, stratus.operator_key) as operator:
        response = operator.post("/accounts", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == PROBLEM + "invalid-field"
    assert response.json()["field"] == field


def test_idempotent_create_with_client_operation_id(stratus: StratusUp, tenant: Tenant) -> None:
    """Retrying a create with the same async_operation_id returns the same operation."""
    request = {"name": "idem", "accepted_client_ca": VALID_CA, "async_operation_id": "idem-op-1"}
    with http(stratus, tenant.api_key) as client:
        first = client.post("/namespaces", json=request)
        second = client.post("/namespaces", json=request)
        other = client.post("/namespaces", json={**request, "name": "idem-two"})
    assert first.status_code == second.status_code == 202
    assert first.json()["async_operation"]["id"] == second.json()["async_operation"]["id"]
    assert other.status_code == 409
    assert other.json()["type"] == PROBLEM + "conflict"
    assert other.json()["field"] == "async_operation_id"


def test_operation_ids_are_per_account(stratus: StratusUp, tenant: Tenant) -> None:
    """An async_operation_id is unique within its account only: another account choosing the
    same id gets its own operation (not a 409 that would tell it the id exists elsewhere), both
    run to completion, each account reads its own under that id, and a retry stays
    idempotent. The operator, who sees every account, is told the id is ambiguous."""
    other = new_tenant(stratus, "Squatter")
    operation_id = f"shared-{uuid.uuid4().hex[:8]}"
    request = {"name": "per-op", "accepted_client_ca": VALID_CA, "async_operation_id": operation_id}
    with http(stratus, tenant.api_key) as client:
        mine = client.post("/namespaces", json=request)
    with http(stratus, other.api_key) as client:
        theirs = client.post("/namespaces", json=request)
        retried = client.post("/namespaces", json=request)
    assert mine.status_code == theirs.status_code == retried.status_code == 202, theirs.text
    assert mine.json()["async_operation"]["id"] == operation_id
    assert theirs.json()["async_operation"]["id"] == operation_id
    assert retried.json()["async_operation"] == theirs.json()["async_operation"]
    for owner in (tenant, other):
        with owner.client(stratus) as client:
            done = client.wait_for_operation(operation_id, timeout=240)
        assert done.state == "FULFILLED", done.failure_reason
        assert done.resource_id == f"per-op.{owner.account_id}"
    with http(stratus, stratus.operator_key) as operator:
        ambiguous = operator.get(f"/operations/{operation_id}")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["type"] == PROBLEM + "conflict"
