"""The whole path a new tenant takes, through the CLI and a real worker over mTLS."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography import x509
from product_constants import PROBLEM
from support import StratusUp, run_greeting

from auth import KeyPair


def test_first_start_creates_operator_key_and_gateway_pki(stratus: StratusUp) -> None:
    """`stratus up` mints a 0600 operator key and a gateway certificate for localhost and
    127.0.0.1 issued by its own CA, and prints where they are."""
    key_path = stratus.data_dir / "operator.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text().startswith("stratus_")
    ca = x509.load_pem_x509_certificate(stratus.gateway_ca)
    server = x509.load_pem_x509_certificate((stratus.data_dir / "pki" / "gateway.pem").read_bytes())
    assert server.issuer == ca.subject
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    printed = stratus.log_path.read_text()
    assert str(key_path) in printed
    assert str(stratus.data_dir / "pki" / "gateway-ca.pem") in printed
    assert f"{stratus.api_url}/api/v1" in printed
    assert f"127.0.0.1:{stratus.gateway_port}" in printed


async def test_account_to_workflow_over_mtls_through_the_cli(
    stratus: StratusUp, tmp_path: Path
) -> None:
    """Operator creates an account; the owner makes a CA and a client certificate, creates a
    namespace and waits for it; a temporalio worker then runs a workflow with an activity
    through the gateway and the client gets its result."""
    created = stratus.cli(
        "-o",
        "json",
        "account",
        "create",
        "--name",
        "Acme",
        "--owner-email",
        "ops@acme.example",
        api_key=stratus.operator_key,
    )
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)
    account_id = account["account"]["id"]
    owner_key = account["owner_api_key"]["token"]

    ca_dir, cert_dir = tmp_path / "ca", tmp_path / "worker"
    made_ca = stratus.cli(
        "certs", "generate-ca", "--common-name", "Acme CA", "--out-dir", str(ca_dir)
    )
    assert made_ca.returncode == 0, made_ca.stderr
    made_leaf = stratus.cli(
        "certs",
        "generate-leaf",
        "--ca-dir",
        str(ca_dir),
        "--common-name",
        "acme-worker",
        "--out-dir",
        str(cert_dir),
    )
    assert made_leaf.returncode == 0, made_leaf.stderr
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cert_dir / "client.key").stat().st_mode) == 0o600

    namespace = stratus.cli(
        "-o",
        "json",
        "namespace",
        "create",
        "--name",
        "orders",
        "--retention-days",
        "14",
        "--ca-cert",
        str(ca_dir / "ca.pem"),
        "--wait",
        api_key=owner_key,
    )
    assert namespace.returncode == 0, namespace.stderr
    assert "IN_PROGRESS" in namespace.stderr or "FULFILLED" in namespace.stderr
    body = json.loads(namespace.stdout)
    assert body["namespace"]["id"] == f"orders.{account_id}"
    assert body["namespace"]["state"] == "ACTIVE"
    assert body["namespace"]["retention_days"] == 14
    assert body["async_operation"]["state"] == "FULFILLED"

    client_cert = KeyPair(
        (cert_dir / "client.pem").read_bytes(), (cert_dir / "client.key").read_bytes()
    )
    result = await run_greeting(stratus, f"orders.{account_id}", client_cert, "first-workflow")
    assert result == "Hello, Stratus!"

    listed = stratus.cli("namespace", "list", api_key=owner_key)
    assert listed.returncode == 0
    assert f"orders.{account_id}\tACTIVE\tretention=14d" in listed.stdout
    got = stratus.cli("-o", "json", "namespace", "get", f"orders.{account_id}", api_key=owner_key)
    assert json.loads(got.stdout)["state"] == "ACTIVE"


def test_namespace_delete_through_the_cli_stops_routing(stratus: StratusUp, tmp_path: Path) -> None:
    """Deleting a namespace ends its operation FULFILLED and removes it from the account."""
    account = json.loads(
        stratus.cli(
            "-o",
            "json",
            "account",
            "create",
            "--name",
            "Gone",
            "--owner-email",
            "o@gone.example",
            api_key=stratus.operator_key,
        ).stdout
    )
    key = account["owner_api_key"]["token"]
    stratus.cli("certs", "generate-ca", "--common-name", "Gone CA", "--out-dir", str(tmp_path))
    created = stratus.cli(
        "-o",
        "json",
        "namespace",
        "create",
        "--name",
        "tmp",
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--wait",
        api_key=key,
    )
    namespace_id = json.loads(created.stdout)["namespace"]["id"]
    deleted = stratus.cli("-o", "json", "namespace", "delete", namespace_id, "--wait", api_key=key)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["state"] == "FULFILLED"
    missing = stratus.cli("namespace", "get", namespace_id, api_key=key)
    assert missing.returncode == 1
    assert f"[404 {PROBLEM}not-found]" in missing.stderr
