"""``stratus group``, run as a user would (subprocess, env key), and the typed client's group
methods it rests on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from identity_support import invite
from support import StratusUp, create_active_namespace, new_tenant

pytestmark = pytest.mark.sqlite_only


def _json(stratus: StratusUp, key: str, *args: str) -> Any:
    result = stratus.cli("--output", "json", *args, api_key=key)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_group_commands(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Cligroups")
    namespace_id = create_active_namespace(stratus, tenant, "cli-groups")
    key = tenant.api_key
    ada = invite(stratus, key, "ada@cligroups.example", "read")
    invite(stratus, key, "bob@cligroups.example", "read")
    created = _json(
        stratus, key, "group", "create", "--name", "sre", "--description", "on call",
        "--account-role", "developer",
    )  # fmt: skip
    assert (created["name"], created["account_role"]) == ("sre", "developer")
    listed = stratus.cli("group", "list", "--name", "s", api_key=key)
    assert f"{created['id']}\tsre\tdeveloper\t0 members\t-" in listed.stdout

    added = _json(stratus, key, "group", "add-member", "sre", ada["id"], "bob@cligroups.example")
    assert added["member_count"] == 2
    members = _json(stratus, key, "group", "members", "sre", "--page-size", "1")
    assert [(m["email"], m["source"]) for m in members["members"]] == [
        ("ada@cligroups.example", "manual"),
        ("bob@cligroups.example", "manual"),
    ]
    removed = _json(stratus, key, "group", "remove-member", "sre", "bob@cligroups.example")
    assert removed["member_count"] == 1
    granted = _json(
        stratus, key, "group", "set-namespace-permission", created["id"],
        "--namespace", namespace_id, "--permission", "write",
    )  # fmt: skip
    assert granted["namespace_permissions"] == [
        {"namespace_id": namespace_id, "permission": "write"}
    ]
    updated = _json(
        stratus, key, "group", "update", "sre", "--name", "sre-team", "--account-role", "none"
    )
    assert (updated["name"], updated["account_role"]) == ("sre-team", None)
    assert updated["description"] == "on call"
    assert _json(stratus, key, "group", "get", "sre-team")["id"] == created["id"]

    unknown = stratus.cli(
        "group", "add-member", "sre-team", "nobody@cligroups.example", api_key=key
    )
    assert unknown.returncode == 1
    assert "no user with email nobody@cligroups.example" in unknown.stderr
    owner_role = stratus.cli(
        "group", "create", "--name", "owners", "--account-role", "owner", api_key=key
    )
    assert owner_role.returncode != 0

    with tenant.client(stratus) as client:
        # The client keeps the role unless given one; None removes it.
        kept = client.update_group(created["id"], description="paged")
        assert (kept.account_role, kept.description) == (None, "paged")
        readers = client.update_group(created["id"], account_role="read")
        assert readers.account_role == "read"
        assert [g.name for g in client.iter_groups(page_size=1)] == ["sre-team"]
        assert [m.email for m in client.iter_group_members(created["id"])] == [ada["email"]]

    deleted = stratus.cli("group", "delete", "sre-team", api_key=key)
    assert deleted.returncode == 0, deleted.stderr
    assert stratus.cli("group", "list", api_key=key).stdout.strip() == "no groups"
