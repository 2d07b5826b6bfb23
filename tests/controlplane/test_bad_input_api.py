"""Bad input is refused with problem+json naming the field, and nothing is persisted or
started. Unknown, malformed or revoked credentials get 401."""

from __future__ import annotations

import datetime as dt
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from product_constants import API_MAX_BODY_BYTES, MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTS, PROBLEM
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from auth import generate_ca, generate_leaf

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
TOO_MANY_CAS = ONE_CA * (MAX_BUNDLE_CERTS + 1)


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
        ({"accepted_client_ca": TOO_MANY_CAS}, 400, "invalid-field", "accepted_client_ca"),
        (
            {"accepted_client_ca": ONE_CA + "\n" + "#" * (MAX_BUNDLE_BYTES + 1024)},
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
        # Not one of the AuthMethod values the schema lists: refused like an unknown role.
        ({"auth_method": "password"}, 422, "malformed-request", "auth_method"),
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
        "unknown-auth-method",
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


# --- Inputs that once answered 500: each now gets the exact refusal. -------------------------


def _problem(response: httpx.Response, status: int, problem: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    payload = response.json()
    assert payload["type"] == PROBLEM + problem
    assert payload["status"] == status
    assert payload.get("field") == field


@pytest.mark.parametrize(
    "token",
    ["\N{SUPERSCRIPT TWO}", "9" * 20, "9" * 5000, "zzz", "-1", "AAAAAAAAAAA", "AAAAAAAAAAB"],
    ids=["superscript-2", "20-nines", "5000-digits", "letters", "negative", "zero", "noncanonical"],
)
def test_page_token_not_returned_by_the_api_is_refused(
    stratus: StratusUp, tenant: Tenant, token: str
) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.get("/audit-logs", params={"page_token": token})
    _problem(response, 400, "invalid-field", "page_token")


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2024-01-01", "9999-12-31", "end"),
        ("9999-12-01", "9999-12-31", "start"),
        ("0001-01-01", "0001-01-31", "start"),
    ],
    ids=["end-9999", "both-9999", "year-1"],
)
def test_usage_days_out_of_range_are_refused(
    stratus: StratusUp, tenant: Tenant, start: str, end: str, field: str
) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.get("/usage", params={"start": start, "end": end})
    _problem(response, 400, "invalid-field", field)


def test_export_sink_url_with_unclosed_ipv6_bracket_is_refused(
    stratus: StratusUp, tenant: Tenant
) -> None:
    sink = {
        "bucket": "usage",
        "endpoint_url": "http://[::1",
        "access_key_id": "a",
        "secret_access_key": "b",
    }
    with http(stratus, tenant.api_key) as client:
        response = client.put("/billing/export-sink", json=sink)
    _problem(response, 400, "invalid-field", "endpoint_url")


@pytest.mark.parametrize(
    ("path", "raw_body"),
    [
        ("/users", '{"email": "\\ud800@b.example", "account_role": "read"}'),
        ("/service-accounts", '{"name": "robot\\udfff", "account_role": "read"}'),
        ("/users", '{"email": "a\\u0000@b.example", "account_role": "read"}'),
        ("/service-accounts", '{"name": "ro\\u0000bot", "account_role": "read"}'),
    ],
    ids=["email-lone-surrogate", "name-lone-surrogate", "email-nul", "name-nul"],
)
def test_unstorable_json_strings_are_malformed(
    stratus: StratusUp, tenant: Tenant, path: str, raw_body: str
) -> None:
    """A lone surrogate or NUL anywhere in a JSON body (valid JSON, not I-JSON) is a 422
    before any route sees it."""
    with http(stratus, tenant.api_key) as client:
        response = client.post(
            path, content=raw_body.encode(), headers={"Content-Type": "application/json"}
        )
    _problem(response, 422, "malformed-request", None)
    assert "lone surrogate" in response.json()["detail"] or "NUL" in response.json()["detail"]


BIDI_OVERRIDE = "\N{RIGHT-TO-LEFT OVERRIDE}"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users", {"email": "a@b..c", "account_role": "read"}, "email"),
        ("/users", {"email": "a@b.example.", "account_role": "read"}, "email"),
        ("/users", {"email": f"evil{BIDI_OVERRIDE}moc@b.example", "account_role": "read"}, "email"),
        ("/users", {"email": "a\x01b@c.example", "account_role": "read"}, "email"),
        ("/service-accounts", {"name": f"robot{BIDI_OVERRIDE}", "account_role": "read"}, "name"),
        ("/service-accounts", {"name": "ro\nbot", "account_role": "read"}, "name"),
        ("/service-accounts", {"name": "r\u200bobot", "account_role": "read"}, "name"),
        (
            "/api-keys",
            {"display_name": f"ci{BIDI_OVERRIDE}", "expiry": "2030-01-01T00:00:00Z"},
            "display_name",
        ),
    ],
    ids=[
        "email-double-dot",
        "email-trailing-dot",
        "email-bidi",
        "email-control",
        "name-bidi",
        "name-newline",
        "name-zero-width-space",
        "key-name-bidi",
    ],
)
def test_unsafe_text_is_refused(
    stratus: StratusUp, tenant: Tenant, path: str, body: dict[str, str], field: str
) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.post(path, json=body)
    _problem(response, 400, "invalid-field", field)


@pytest.mark.parametrize(
    "value", [f"worker{BIDI_OVERRIDE}", "worker\x07", "work\u2028er"], ids=["bidi", "bel", "lsep"]
)
def test_certificate_filter_values_refuse_unsafe_characters(
    stratus: StratusUp, tenant: Tenant, value: str
) -> None:
    request = {
        "name": "filtered",
        "accepted_client_ca": VALID_CA,
        "certificate_filters": [{"common_name": value}],
    }
    with http(stratus, tenant.api_key) as client:
        response = client.post("/namespaces", json=request)
    _problem(response, 400, "invalid-field", "certificate_filters")


def test_routing_errors_are_problems(stratus: StratusUp, tenant: Tenant) -> None:
    with http(stratus, tenant.api_key) as client:
        _problem(client.get("/no-such-route"), 404, "not-found", None)
        _problem(client.put("/namespaces"), 405, "method-not-allowed", None)
        _problem(
            client.post(
                "/namespaces", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            422,
            "malformed-request",
            None,
        )


# --- Body size limit: 413 before the body is read. -------------------------------------------


def _raw_request(stratus: StratusUp, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send only ``head`` (request line and headers) and read the answer: the body is never
    sent, so an answer proves the API did not wait for it."""
    with socket.create_connection(("127.0.0.1", stratus.api_port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {answer!r}"
            answer += data
        header_block, _, body = answer.partition(b"\r\n\r\n")
        lines = header_block.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                break
            body += data
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


def test_declared_body_over_the_limit_gets_413_before_it_is_sent(stratus: StratusUp) -> None:
    """Unauthenticated, 200 MB declared, nothing sent: the 413 comes at once."""
    status, headers, body = _raw_request(
        stratus,
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: stratus\r\nContent-Type: application/json\r\n"
        "Content-Length: 200000000\r\n\r\n",
    )
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == PROBLEM + "body-too-large"


def test_chunked_body_over_the_limit_gets_413(stratus: StratusUp) -> None:
    """No Content-Length: counted while it streams, refused once it crosses 1 MiB."""
    chunk = b"x" * 65536

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB, never all needed
            yield chunk

    with httpx.Client(base_url=stratus.api_url, timeout=30) as client:
        try:
            response = client.post(
                "/api/v1/namespaces",
                content=chunks(),
                headers={"Content-Type": "application/json"},
            )
        except httpx.WriteError:
            pytest.skip("the connection closed before httpx read the 413")  # never seen
    _problem(response, 413, "body-too-large", None)


def test_body_within_the_limit_is_read(stratus: StratusUp, tenant: Tenant) -> None:
    """A body just under 1 MiB reaches the route (a CA bundle fits many times over)."""
    padding = " " * (API_MAX_BODY_BYTES - 200)
    raw = '{"name": "x", "accepted_client_ca": "nope"' + padding + "}"
    with http(stratus, tenant.api_key) as client:
        response = client.post(
            "/namespaces", content=raw.encode(), headers={"Content-Type": "application/json"}
        )
    _problem(response, 400, "invalid-field", "name")


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
