"""The identity commands of the ``stratus`` CLI, run as a user would (subprocess, env key)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from product_constants import PROBLEM
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Clifolk")


def _json(stratus: StratusUp, key: str, *args: str) -> Any:
    result = stratus.cli("--output", "json", *args, api_key=key)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_user_commands(stratus: StratusUp, tenant: Tenant) -> None:
    namespace_id = create_active_namespace(stratus, tenant, "cli-ns")
    invited = _json(
        stratus, tenant.api_key, "user", "invite", "--email", "dev@clifolk.example",
        "--account-role", "developer",
    )  # fmt: skip
    assert invited["account_role"] == "developer"
    listed = stratus.cli("user", "list", api_key=tenant.api_key)
    assert "dev@clifolk.example\tdeveloper" in listed.stdout
    updated = _json(
        stratus, tenant.api_key, "user", "set-account-role", "dev@clifolk.example",
        "--account-role", "read",
    )  # fmt: skip
    assert updated["account_role"] == "read"
    granted = _json(
        stratus, tenant.api_key, "user", "set-namespace-permissions", invited["id"],
        "--namespace", namespace_id, "--permission", "write",
    )  # fmt: skip
    assert granted["namespace_permissions"] == [
        {"namespace_id": namespace_id, "permission": "write"}
    ]
    removed = _json(
        stratus, tenant.api_key, "user", "set-namespace-permissions", invited["id"],
        "--namespace", namespace_id, "--permission", "none",
    )  # fmt: skip
    assert removed["namespace_permissions"] == []
    deleted = stratus.cli("user", "delete", "dev@clifolk.example", api_key=tenant.api_key)
    assert deleted.returncode == 0, deleted.stderr
    assert "dev@clifolk.example" not in stratus.cli("user", "list", api_key=tenant.api_key).stdout


def test_last_owner_refusal_is_reported(stratus: StratusUp, tenant: Tenant) -> None:
    result = stratus.cli(
        "user", "set-account-role", "owner@clifolk.example", "--account-role", "admin",
        api_key=tenant.api_key,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"[409 {PROBLEM}last-owner]" in result.stderr


def test_service_account_and_apikey_commands(stratus: StratusUp, tenant: Tenant) -> None:
    namespace_id = create_active_namespace(stratus, tenant, "cli-sa")
    wide = _json(
        stratus, tenant.api_key, "service-account", "create", "--name", "deployer",
        "--account-role", "developer",
    )  # fmt: skip
    scoped = _json(
        stratus, tenant.api_key, "service-account", "create-scoped", "--name", "worker",
        "--namespace", namespace_id, "--permission", "write",
    )  # fmt: skip
    assert scoped["namespace_scope"] == {"namespace_id": namespace_id, "permission": "write"}
    listed = stratus.cli("service-account", "list", api_key=tenant.api_key).stdout
    assert f"{wide['id']}\tdeployer\taccount:developer" in listed
    assert f"{scoped['id']}\tworker\t{namespace_id}=write" in listed

    created = _json(
        stratus, tenant.api_key, "apikey", "create", "--name", "ci", "--duration", "90d",
        "--service-account-id", scoped["id"],
    )  # fmt: skip
    token, key_id = created["token"], created["api_key"]["id"]
    with http(stratus, token) as client:
        assert client.get("/current-identity").json()["namespace_scope"] == namespace_id
    assert key_id in stratus.cli("apikey", "list", api_key=tenant.api_key).stdout
    assert _json(stratus, tenant.api_key, "apikey", "disable", key_id)["disabled"] is True
    with http(stratus, token) as client:
        assert client.get("/current-identity").status_code == 401
    assert _json(stratus, tenant.api_key, "apikey", "enable", key_id)["disabled"] is False
    assert stratus.cli("apikey", "delete", key_id, api_key=tenant.api_key).returncode == 0
    with http(stratus, token) as client:
        assert client.get("/current-identity").status_code == 401

    too_long = stratus.cli(
        "apikey", "create", "--name", "x", "--duration", "3y", api_key=tenant.api_key
    )
    assert too_long.returncode == 1
    assert "invalid-field" in too_long.stderr
    bad = stratus.cli(
        "apikey", "create", "--name", "x", "--duration", "soon", api_key=tenant.api_key
    )
    assert bad.returncode == 1
    assert "--duration" in bad.stderr
    own = _json(stratus, tenant.api_key, "apikey", "create", "--name", "mine", "--duration", "12h")
    assert own["api_key"]["owner_type"] == "user"

    assert (
        stratus.cli("service-account", "delete", wide["id"], api_key=tenant.api_key).returncode == 0
    )
    assert "deployer" not in stratus.cli("service-account", "list", api_key=tenant.api_key).stdout
