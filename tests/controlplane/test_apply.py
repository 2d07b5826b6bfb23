"""``stratus apply -f`` / ``stratus export`` and the client's ``apply(spec)`` against a real
Stratus: the docs example file (one namespace per team and environment) planned, applied,
re-applied with no changes, exported and round-tripped; prune; a concurrent edit between plan
and apply; invalid files refused whole, by YAML path, before any write."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import STRATUS, StratusUp, Tenant, new_tenant

from controlplane import declarative
from controlplane.client import StratusAPIError, StratusClient

# HTTP and CLI only: one database is enough (the services are tested on both elsewhere).
pytestmark = pytest.mark.sqlite_only

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "stratus-teams.yaml"


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Applied")


@pytest.fixture(scope="module")
def example() -> tuple[Path, dict[str, Any]]:
    """The docs example file itself, and its content."""
    return EXAMPLE, yaml.safe_load(EXAMPLE.read_text())


def _audit_count(client: StratusClient) -> int:
    return sum(1 for _ in client.iter_audit_logs())


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def test_the_example_file_plans_applies_and_then_has_no_changes(
    stratus: StratusUp, tenant: Tenant, example: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Dry run prints the plan and writes nothing; apply creates every object in dependency
    order (grants on namespaces it just created); a second apply plans no changes and writes
    nothing; export then apply of the export is "no changes" too."""
    path, document = example
    with tenant.client(stratus) as client:
        before = _audit_count(client)
        planned = _ok(stratus.cli("apply", "-f", str(path), "--dry-run", api_key=tenant.api_key))
        assert "+ create namespace payments-dev\n    retention_days: 7\n" in planned
        assert "+ create user lead@payments.example" in planned
        assert "namespace_permissions.payments-prod: (none) -> admin" in planned
        assert "+ create service account payments-deployer" in planned
        objects = len(document["namespaces"]) + len(document["users"])
        objects += len(document["service_accounts"]) + len(document["groups"])
        assert f"Plan: {objects} to create, 0 to update, 0 to delete." in planned
        assert _audit_count(client) == before
        assert list(client.iter_namespaces()) == []

        applied = _ok(stratus.cli("apply", "-f", str(path), "--yes", api_key=tenant.api_key))
        assert f"Applied: {objects} object(s) changed." in applied
        namespaces = {n.name: n for n in client.iter_namespaces()}
        assert sorted(namespaces) == ["payments-dev", "payments-prod", "search-dev", "search-prod"]
        assert {n.state for n in namespaces.values()} == {"ACTIVE"}
        assert namespaces["payments-dev"].retention_days == 7
        assert namespaces["payments-dev"].tags == {"team": "payments", "env": "dev"}
        assert namespaces["payments-dev"].search_attributes == {"OrderId": "Keyword"}
        assert namespaces["payments-dev"].certificate_filters == [{"common_name": "payments-*"}]
        assert namespaces["payments-prod"].lifecycle.enable_delete_protection
        assert namespaces["search-dev"].auth_method == "mtls_or_api_key"
        lead = next(client.iter_users(email="lead@payments.example"))
        assert lead.account_role == "developer"
        assert {(p.namespace_id, p.permission) for p in lead.namespace_permissions} == {
            (namespaces["payments-dev"].id, "admin"),
            (namespaces["payments-prod"].id, "admin"),
        }
        accounts = {sa.name: sa for sa in client.iter_service_accounts()}
        scope = accounts["payments-deployer"].namespace_scope
        assert scope is not None
        assert (scope.namespace_id, scope.permission) == (namespaces["payments-prod"].id, "write")
        assert {p.namespace_id for p in accounts["ci"].namespace_permissions} == {
            namespaces["payments-dev"].id,
            namespaces["search-dev"].id,
        }

        written = _audit_count(client)
        again = _ok(stratus.cli("apply", "-f", str(path), "--yes", api_key=tenant.api_key))
        assert again.strip() == "No changes: the account matches the file."
        assert _audit_count(client) == written
        as_json = _ok(
            stratus.cli("apply", "-f", str(path), "--dry-run", "-o", "json", api_key=tenant.api_key)
        )
        assert json.loads(as_json) == {
            "account_id": tenant.account_id,
            "changes": [],
            "notices": [],
            "create": 0,
            "update": 0,
            "delete": 0,
            "applied": False,
        }

        exported = tmp_path / "exported.yaml"
        _ok(stratus.cli("export", "-f", str(exported), api_key=tenant.api_key))
        text = exported.read_text()
        assert "payments-prod" in text
        assert "owner@applied.example" in text
        round_trip = _ok(
            stratus.cli("apply", "-f", str(exported), "--dry-run", api_key=tenant.api_key)
        )
        assert round_trip.strip() == "No changes: the account matches the file."


def test_groups_of_the_example_have_their_members_and_permissions(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """After the example's apply, each team's group holds its members and grants."""
    with tenant.client(stratus) as client:
        groups = {g["name"]: g for g in client._checked("GET", "/groups").json()["groups"]}
        payments = groups["payments"]
        assert payments["member_count"] == 2
        grants = payments["namespace_permissions"]
        assert {(p["namespace_id"], p["permission"]) for p in grants} == {
            (f"payments-dev.{tenant.account_id}", "write"),
            (f"payments-prod.{tenant.account_id}", "read"),
        }


def test_a_changed_field_updates_that_namespace_only(
    stratus: StratusUp, tenant: Tenant, example: tuple[Path, dict[str, Any]]
) -> None:
    """A namespace's changed fields are one update (with its resource_version) and one tags
    write; apply waits until the namespace is ACTIVE again. Applying the file back restores it."""
    path, document = example
    changed = copy.deepcopy(document)
    changed["namespaces"][0]["retention_days"] = 14
    changed["namespaces"][0]["tags"]["tier"] = "gold"
    with tenant.client(stratus) as client:
        result = client.apply(declarative.parse(changed, base_dir=path.parent))
        assert [(c.action, c.kind, c.name, c.fields) for c in result.applied] == [
            (
                "update",
                "namespace",
                "payments-dev",
                [
                    "retention_days: 7 -> 14",
                    "tags: {'env': 'dev', 'team': 'payments'} -> "
                    "{'env': 'dev', 'team': 'payments', 'tier': 'gold'}",
                ],
            )
        ]
        namespace = client.get_namespace(f"payments-dev.{tenant.account_id}")
        assert (namespace.retention_days, namespace.state) == (14, "ACTIVE")
        assert namespace.tags == {"team": "payments", "env": "dev", "tier": "gold"}
        client.apply(declarative.parse(document, base_dir=path.parent))
        assert client.plan(declarative.parse(document, base_dir=path.parent)).empty


def test_a_concurrent_edit_between_plan_and_apply_stops_apply(
    stratus: StratusUp, tenant: Tenant, example: tuple[Path, dict[str, Any]]
) -> None:
    """Every update carries the resource_version read while planning: a change made in
    between is the API's 409, and apply stops naming the object instead of overwriting it."""
    path, document = example
    changed = copy.deepcopy(document)
    changed["users"][0]["account_role"] = "admin"
    with tenant.client(stratus) as client:
        spec = declarative.parse(changed, base_dir=path.parent)
        planned = client.plan(spec)
        assert [(c.action, c.kind, c.name) for c in planned.changes] == [
            ("update", "user", "lead@payments.example")
        ]
        lead = next(client.iter_users(email="lead@payments.example"))
        client.update_user(lead.id, resource_version=lead.resource_version, account_role="read")
        with pytest.raises(declarative.ApplyConflict) as conflict:
            declarative.execute(planned)
        assert str(conflict.value).startswith(
            "user lead@payments.example changed since the plan was read"
        )
        assert client.get_user(lead.id).account_role == "read"
        # Planned again from today's state, the same file applies.
        client.apply(declarative.parse(document, base_dir=path.parent))
        assert client.get_user(lead.id).account_role == "developer"

        # The same for a group (its update route takes the resource_version too).
        renamed = copy.deepcopy(document)
        renamed["groups"][0]["description"] = "Payments, planned"
        planned = client.plan(declarative.parse(renamed, base_dir=path.parent))
        group = next(
            g for g in client._checked("GET", "/groups").json()["groups"] if g["name"] == "payments"
        )
        edit = {"description": "Payments, edited", "resource_version": group["resource_version"]}
        client._checked("POST", f"/groups/{group['id']}", json=edit)
        with pytest.raises(declarative.ApplyConflict) as conflict:
            declarative.execute(planned)
        assert str(conflict.value).startswith("group payments changed since the plan was read")
        assert client._checked("GET", f"/groups/{group['id']}").json()["description"] == (
            "Payments, edited"
        )
        client.apply(declarative.parse(document, base_dir=path.parent))


def test_an_invalid_file_is_refused_whole_by_yaml_path_and_nothing_is_applied(
    stratus: StratusUp, tenant: Tenant, tmp_path: Path
) -> None:
    """Every problem of the file is reported with its path before anything is written,
    including references the account cannot satisfy (found while planning, still before
    any write)."""
    ca = (EXAMPLE.parent / "ca" / "payments.pem").read_text()
    bad = {
        "apiVersion": "stratus/v1",
        "kind": "Account",
        "namespaces": [
            {"name": "fine-one", "ca_certificates": ca},
            {"name": "fine-two", "ca_certificates": ca},
            {"name": "too-long-kept", "retention_days": 91, "ca_certificates": ca},
        ],
        "users": [{"email": "nobody", "account_role": "boss"}],
        "sinks": {"audit_log": {"bucket": "b", "access_key_id": "a", "secret_access_key": "s"}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with tenant.client(stratus) as client:
        before = _audit_count(client)
        result = stratus.cli("apply", "-f", str(path), "--yes", api_key=tenant.api_key)
        assert result.returncode == 1
        assert result.stderr.splitlines()[1:] == [
            "namespaces[2].retention_days: must be 1..90",
            "users[0].email: must be an email address",
            "users[0].account_role: Input should be 'owner', 'admin', 'developer', "
            "'finance_admin', 'read' or 'metrics_read'",
            "sinks.audit_log.secret_access_key: must be ${ENV_VAR}: secrets are read from the "
            "environment only",
        ]
        dangling = {
            "apiVersion": "stratus/v1",
            "kind": "Account",
            "namespaces": [{"name": "would-be-new", "ca_certificates": ca}],
            "users": [
                {
                    "email": "lead@payments.example",
                    "account_role": "developer",
                    "namespace_permissions": {"no-such-namespace": "read"},
                }
            ],
        }
        path.write_text(yaml.safe_dump(dangling))
        result = stratus.cli("apply", "-f", str(path), "--yes", api_key=tenant.api_key)
        assert result.returncode == 1
        assert (
            "users[0].namespace_permissions.no-such-namespace: no such namespace in the file "
            "or the account"
        ) in result.stderr
        assert _audit_count(client) == before
        assert "would-be-new" not in {n.name for n in client.iter_namespaces()}


def test_plan_refusals_name_the_object(
    stratus: StratusUp,
    tenant: Tenant,
    example: tuple[Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    """What the API could not do as the file says is refused while planning, with the path
    of the object: a service account changing scope, a group member who is no user; and a
    plan with changes is not applied without --yes when no terminal can confirm it."""
    _, document = example
    moved = {
        "apiVersion": "stratus/v1",
        "kind": "Account",
        "service_accounts": [
            {"name": "ci", "namespace_scope": {"namespace": "payments-dev", "permission": "read"}}
        ],
    }
    with tenant.client(stratus) as client:
        with pytest.raises(declarative.SpecError) as scope:
            client.plan(declarative.parse(moved))
        assert scope.value.problems == [
            "service_accounts[0]: service account ci cannot change between account-wide and "
            "namespace scopes or to another namespace; delete it first (its API keys go with it)"
        ]
        stranger = {
            "apiVersion": "stratus/v1",
            "kind": "Account",
            "groups": [{"name": "payments", "members": ["stranger@nowhere.example"]}],
        }
        with pytest.raises(declarative.SpecError) as member:
            client.plan(declarative.parse(stranger))
        assert member.value.problems == [
            "groups[0].members[0]: stranger@nowhere.example is no user of the file or the account"
        ]
        before = _audit_count(client)
    invite = {
        "apiVersion": "stratus/v1",
        "kind": "Account",
        "users": [*document["users"], {"email": "new@payments.example", "account_role": "read"}],
    }
    path = tmp_path / "invite.yaml"
    path.write_text(yaml.safe_dump(invite))
    result = subprocess.run(
        [STRATUS, "apply", "-f", str(path)],
        env=stratus.env(tenant.api_key),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "+ create user new@payments.example" in result.stdout
    assert result.stderr == (
        "error: give --yes to apply without a terminal (or --dry-run to only plan)\n"
    )
    with tenant.client(stratus) as client:
        assert _audit_count(client) == before


def test_sink_secrets_come_from_the_environment_when_written(
    stratus: StratusUp, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink's secret is ``${VAR}``: unset, planning the sink fails before any write; set,
    the plan creates it; export names a variable, never the secret; prune deletes it."""
    variable = f"STRATUS_TEST_SECRET_{uuid.uuid4().hex[:8].upper()}"
    document = {
        "apiVersion": "stratus/v1",
        "kind": "Account",
        "sinks": {
            "usage_export": {
                "bucket": "acme-usage",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "${" + variable + "}",
            }
        },
    }
    spec = declarative.parse(document)
    with tenant.client(stratus) as client:
        with pytest.raises(declarative.SpecError) as missing:
            client.plan(spec)
        assert missing.value.problems == [
            f"sinks.usage_export.secret_access_key: environment variable {variable} is not set"
        ]
        monkeypatch.setenv(variable, "a-secret")
        result = client.apply(spec, dry_run=True)
        assert [(c.action, c.kind) for c in result.plan.changes] == [
            ("create", "usage export sink")
        ]
        assert "a-secret" not in result.plan.text()
        assert result.applied == []

        # Written (an audit log sink on AWS: setting one makes no connection), exported as a
        # ${VAR} reference, round-tripped with the variable unset, then pruned.
        audit = {
            "apiVersion": "stratus/v1",
            "kind": "Account",
            "sinks": {"audit_log": {**document["sinks"]["usage_export"], "bucket": "acme-audit"}},
        }
        written = client.apply(declarative.parse(audit))
        assert [(c.action, c.kind) for c in written.applied] == [("create", "audit log sink")]
        assert client.get_audit_log_sink().bucket == "acme-audit"
        exported = client.export()
        assert exported["sinks"] == {
            "audit_log": {
                "bucket": "acme-audit",
                "prefix": "",
                "region": "us-east-1",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "${STRATUS_AUDIT_LOG_SECRET_ACCESS_KEY}",
            }
        }
        monkeypatch.delenv(variable)
        assert client.plan(declarative.parse(exported)).empty
        pruned = client.apply(
            declarative.parse({"apiVersion": "stratus/v1", "kind": "Account", "sinks": {}}),
            prune=True,
        )
        assert [(c.action, c.kind) for c in pruned.applied] == [("delete", "audit log sink")]
        with pytest.raises(StratusAPIError) as gone:
            client.get_audit_log_sink()
        assert gone.value.status == 404


def test_prune_deletes_what_the_file_no_longer_names(
    stratus: StratusUp, tenant: Tenant, example: tuple[Path, dict[str, Any]]
) -> None:
    """With --prune, a namespace, user and service account left out of the file are deleted;
    a namespace with delete protection and the caller itself are reported, not deleted."""
    path, document = example
    pruned = copy.deepcopy(document)
    pruned["namespaces"] = [
        n for n in pruned["namespaces"] if n["name"] not in ("search-dev", "payments-prod")
    ]
    pruned["users"] = [u for u in pruned["users"] if u["email"] != "dev@search.example"]
    pruned["service_accounts"] = [
        sa for sa in pruned["service_accounts"] if sa["name"] != "search-deployer"
    ]
    pruned["service_accounts"][-1]["namespace_permissions"] = {"payments-dev": "write"}
    pruned["groups"] = [g for g in pruned["groups"] if g["name"] != "search"]
    with tenant.client(stratus) as client:
        result = client.apply(declarative.parse(pruned, base_dir=path.parent), prune=True)
        deletes = sorted((c.kind, c.name) for c in result.plan.changes if c.action == "delete")
        assert deletes == [
            ("group", "search"),
            ("namespace", "search-dev"),
            ("service account", "search-deployer"),
            ("user", "dev@search.example"),
        ]
        assert (
            "namespace payments-prod is not in the file but has delete protection: not "
            "deleted (turn it off first)"
        ) in result.plan.notices
        names = {n.name for n in client.iter_namespaces()}
        assert "search-dev" not in names
        assert "payments-prod" in names
        assert [u.email for u in client.iter_users(email="dev@search.example")] == []
        assert (
            "user owner@applied.example is not in the file but is you: not deleted"
        ) in result.plan.notices
        owner = next(client.iter_users(email="owner@applied.example"))
        assert owner.account_role == "owner"

        # Applied by an admin service account, an empty list still keeps the last owner and
        # the caller (planned only: nothing here is written).
        admin = client.create_service_account("pruner", account_role="admin")
        key = client.create_api_key(
            "pruner", dt.datetime.now(dt.UTC) + dt.timedelta(days=1), service_account_id=admin.id
        )
    empty = {"apiVersion": "stratus/v1", "kind": "Account", "users": [], "service_accounts": []}
    with StratusClient(stratus.api_url, key.token) as as_admin:
        planned = as_admin.plan(declarative.parse(empty), prune=True)
    assert planned.notices == [
        "user owner@applied.example is not in the file but is the last owner: not deleted",
        "service account pruner is not in the file but is you: not deleted",
    ]
    assert ("delete", "user", "owner@applied.example") not in [
        (c.action, c.kind, c.name) for c in planned.changes
    ]
