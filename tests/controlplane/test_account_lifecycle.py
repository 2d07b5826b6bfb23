"""Account lifecycle (issue 15, items 1 and 6) through the API, the CLI and a real temporalio
client: the operator lists, reads, suspends, resumes and deletes accounts; a suspended account's
namespaces are refused at the gateway with PERMISSION_DENIED naming the suspension and its API is
read-only; a deleted account's namespaces go through their delete operations and the account
stays as a tombstone with its audit trail. Account-wide service accounts hold per-namespace
grants; invitations expire and are resent."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest
from identity_support import assert_problem, invite, service_account_with_key
from sqlalchemy import select
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    http,
    new_tenant,
    run_greeting,
    tls_for,
    wait_until,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from controlplane.cells.keeper import TenantCellKeeper
from controlplane.config import ApiSettings
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow
from controlplane.models import AuditEvent, User
from controlplane.sign_in import service as sign_in
from controlplane.sign_in.errors import InvitationExpired
from dataplane.cells import LocalCellProvider


def _name() -> str:
    # One word: the owner's email is made of it.
    return f"Life{uuid.uuid4().hex[:8]}"


def _account(stratus: StratusUp, account_id: str) -> dict[str, Any]:
    with http(stratus, stratus.operator_key) as operator:
        response = operator.get(f"/accounts/{account_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _audit_actions(stratus: StratusUp, account_id: str) -> list[str]:
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(AuditEvent.action)
                .where(AuditEvent.account_id == account_id)
                .order_by(AuditEvent.id)
            )
            return [action for (action,) in rows]
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only  # HTTP behaviour: the same on both databases
def test_operator_lists_filters_and_pages_accounts(stratus: StratusUp) -> None:
    """Filtered by name and state, paged in a stable order whatever the page size; each
    account shows its state, owner, namespace count and usage this month."""
    marker = uuid.uuid4().hex[:8]
    tenants = [new_tenant(stratus, f"Paged{marker}n{n}") for n in range(3)]
    with http(stratus, stratus.operator_key) as operator:
        whole = operator.get("/accounts", params={"name": f"PAGED{marker}"}).json()
        assert [a["id"] for a in whole["accounts"]] == [t.account_id for t in tenants]
        assert whole["next_page_token"] == ""
        first = whole["accounts"][0]
        assert first["state"] == "active"
        assert first["owner_email"] == f"owner@paged{marker}n0.example"
        assert first["namespace_count"] == 0
        assert first["usage_this_month"]["actions"] == 0
        assert first["usage_this_month"]["amount_so_far"] == "0.00"
        seen, token = [], ""
        while True:
            params = {"name": marker, "page_size": 2}
            if token:
                params["page_token"] = token
            page = operator.get("/accounts", params=params).json()
            seen += [a["id"] for a in page["accounts"]]
            token = page["next_page_token"]
            if not token:
                break
        assert seen == [t.account_id for t in tenants]
        suspended = operator.get("/accounts", params={"name": marker, "state": "suspended"})
        assert suspended.json()["accounts"] == []
        for params, detail in (
            ({"page_size": 0}, "page_size must be 1-1000, got 0"),
            ({"page_size": 1001}, "page_size must be 1-1000, got 1001"),
            (
                {"page_token": "not-a-token"},
                "page_token is not one this API returned for this list, account and filters",
            ),
        ):
            response = operator.get("/accounts", params=params)
            assert_problem(response, 400, "invalid-field")
            assert response.json()["detail"] == detail
        # A value outside the enum is malformed, as in a body.
        unknown_state = operator.get("/accounts", params={"state": "gone"})
        assert_problem(unknown_state, 422, "malformed-request")
        assert unknown_state.json()["field"] == "state"
        missing = operator.get("/accounts/zz-unknown")
        assert_problem(missing, 404, "not-found")
        assert missing.json()["detail"] == "account zz-unknown not found"
    with http(stratus, tenants[0].api_key) as owner:
        refused = owner.get("/accounts")
        assert_problem(refused, 403, "forbidden")
        assert refused.json()["detail"] == "this credential may not perform account.read"
        own = owner.get("/account").json()
        assert (own["id"], own["state"], own["plan"]) == (
            tenants[0].account_id,
            "active",
            ApiSettings().default_plan,
        )
    with http(stratus, stratus.operator_key) as operator:
        assert_problem(operator.get("/account"), 403, "forbidden")
    # The CLI follows the pages (one account per page here).
    listed = stratus.cli(
        "account",
        "list",
        "--name",
        marker,
        "--page-size",
        "1",
        "--output",
        "json",
        api_key=stratus.operator_key,
    )
    assert listed.returncode == 0, listed.stderr
    assert [a["id"] for a in json.loads(listed.stdout)["accounts"]] == [
        t.account_id for t in tenants
    ]
    one = _cli(stratus, "account", "get", tenants[1].account_id)
    assert (one["id"], one["state"]) == (tenants[1].account_id, "active")
    own = stratus.cli("account", "get", "--output", "json", api_key=tenants[2].api_key)
    assert json.loads(own.stdout)["id"] == tenants[2].account_id


def _cli(stratus: StratusUp, *args: str) -> Any:
    """``stratus <args> --output json`` as the operator."""
    result = stratus.cli(*args, "--output", "json", api_key=stratus.operator_key)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def _refusal(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> tuple[str, str] | None:
    """The status and message refusing a real client of the namespace (at connect, whose
    GetSystemInfo the mTLS connection of the namespace already carries, or when starting a
    workflow); None while the gateway still serves it."""
    try:
        client = await Client.connect(
            stratus.gateway_address,
            namespace=namespace_id,
            tls=tls_for(stratus, tenant.client_cert, namespace_id),
        )
    except RuntimeError as error:
        # The SDK's core reports a refused connect as text: `Status { code: ..., message: ".." }`.
        text = str(error)
        code = text.split("code: ", 1)[1].split(",", 1)[0]
        return code, text.split('message: "', 1)[1].split('", metadata', 1)[0]
    try:
        # A new id each try: a try admitted before the suspension reached the gateway must not
        # make the next one fail as "already started".
        await client.start_workflow(
            "GreetingWorkflow", "x", id=f"refused-{uuid.uuid4().hex}", task_queue="nowhere"
        )
    except RPCError as error:
        return error.status.name, error.message
    return None


@pytest.mark.sqlite_only  # the gateway and the API's dependency: the same on both databases
def test_suspension_refuses_workers_and_writes_until_resumed(stratus: StratusUp) -> None:
    """A real temporalio client gets PERMISSION_DENIED naming the suspension within a route
    propagation; the tenant's API answers reads and refuses writes with 403
    account-suspended; resume restores both. Through the CLI, audited."""
    tenant = new_tenant(stratus, _name())
    namespace_id = create_active_namespace(stratus, tenant, "suspendable")
    suspended = _cli(stratus, "account", "suspend", tenant.account_id, "--reason", "unpaid")
    assert (suspended["state"], suspended["suspension_reason"]) == ("suspended", "unpaid")

    refusals: list[tuple[str, str]] = []

    def refused() -> bool:
        refusal = asyncio.run(_refusal(stratus, tenant, namespace_id))
        refusals.extend([refusal] if refusal else [])
        return refusal is not None

    # Within a route propagation (gateways poll the table twice a second).
    wait_until(refused, timeout=30)
    code, message = refusals[-1]
    # The core SDK spells the gRPC status PermissionDenied, temporalio's RPCError
    # PERMISSION_DENIED.
    assert code in ("PermissionDenied", RPCStatusCode.PERMISSION_DENIED.name)
    assert message == (
        f"namespace {namespace_id} refused: account {tenant.account_id} is suspended (unpaid); "
        "its namespaces serve no traffic until the operator resumes it"
    )

    with http(stratus, tenant.api_key) as owner:
        assert owner.get(f"/namespaces/{namespace_id}").status_code == 200
        assert owner.get("/account").json()["state"] == "suspended"
        write = owner.post("/users", json={"email": "late@x.example", "account_role": "read"})
        assert_problem(write, 403, "account-suspended")
        assert write.json()["detail"] == (
            f"account {tenant.account_id} is suspended (unpaid): its API is read-only until "
            "the operator resumes it"
        )
    with http(stratus, stratus.operator_key) as operator:
        again = operator.post(f"/accounts/{tenant.account_id}/suspend", json={"reason": "x"})
        assert_problem(again, 409, "conflict")
        assert again.json()["detail"] == f"account {tenant.account_id} is suspended"

    resumed = _cli(stratus, "account", "resume", tenant.account_id)
    assert (resumed["state"], resumed["suspension_reason"]) == ("active", "")
    # Served again within a route propagation.
    wait_until(lambda: asyncio.run(_refusal(stratus, tenant, namespace_id)) is None, timeout=30)
    result = asyncio.run(run_greeting(stratus, namespace_id, tenant.client_cert, "after-resume"))
    assert result == "Hello, Stratus!"
    with http(stratus, tenant.api_key) as owner:
        invited = owner.post("/users", json={"email": "late@x.example", "account_role": "read"})
        assert invited.status_code == 201, invited.text
    with http(stratus, stratus.operator_key) as operator:
        twice = operator.post(f"/accounts/{tenant.account_id}/resume")
        assert_problem(twice, 409, "conflict")
        assert twice.json()["detail"] == f"account {tenant.account_id} is active, not suspended"
        empty = operator.post(f"/accounts/{tenant.account_id}/suspend", json={"reason": "  "})
        assert_problem(empty, 400, "invalid-field")
        assert empty.json()["detail"] == "give the reason of the suspension"
    actions = asyncio.run(_audit_actions(stratus, tenant.account_id))
    assert actions.index("account.suspend") < actions.index("account.resume")


def test_deleted_account_is_a_tombstone_with_its_audit_trail(stratus: StratusUp) -> None:
    """DELETE: deleting (namespaces deleted through their operations, delete protection
    overridden, writes refused), then
    deleted once none is left: keys stop working, the audit trail stays, the data's removal
    is scheduled a retention later."""
    tenant = new_tenant(stratus, _name())
    namespace_id = create_active_namespace(stratus, tenant, "doomed")
    # Delete protection guards a namespace against its tenants, not the operator's deletion of
    # the whole account: the account must not stay stuck on it.
    with http(stratus, tenant.api_key) as owner:
        current = owner.get(f"/namespaces/{namespace_id}").json()
        protect = owner.post(
            f"/namespaces/{namespace_id}",
            json={
                "resource_version": current["resource_version"],
                "lifecycle": {"enable_delete_protection": True},
            },
        )
        assert protect.status_code == 202, protect.text
        wait_until(
            lambda: owner.get(f"/namespaces/{namespace_id}").json()["state"] == "ACTIVE",
            timeout=60,
        )
        assert owner.get(f"/namespaces/{namespace_id}").json()["lifecycle"] == {
            "enable_delete_protection": True
        }
    with http(stratus, stratus.operator_key) as operator:
        response = operator.delete(f"/accounts/{tenant.account_id}")
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "deleting"
    with http(stratus, tenant.api_key) as owner:
        write = owner.post("/users", json={"email": "no@x.example", "account_role": "read"})
        assert_problem(write, 403, "account-suspended")
        assert write.json()["detail"] == (
            f"account {tenant.account_id} is deleting: its API is read-only"
        )
    # The reconcile job (every 10 s) finishes the deletion once the namespace is gone.
    wait_until(lambda: _account(stratus, tenant.account_id)["state"] == "deleted", timeout=120)
    account = _account(stratus, tenant.account_id)
    assert account["namespace_count"] == 0
    removal = dt.datetime.fromisoformat(account["data_removal_after"])
    changed = dt.datetime.fromisoformat(account["state_changed_at"])
    assert removal - changed == dt.timedelta(days=7)
    with http(stratus, tenant.api_key) as owner:
        assert_problem(owner.get("/account"), 401, "unauthenticated")
    with http(stratus, stratus.operator_key) as operator:
        again = operator.delete(f"/accounts/{tenant.account_id}")
        assert_problem(again, 409, "conflict")
        assert again.json()["detail"] == f"account {tenant.account_id} is already deleted"
        assert_problem(operator.delete("/accounts/zz-unknown"), 404, "not-found")

    # The retention ends (the keeper's clock, injected): the cell is stopped and its data
    # removed, once.
    cell_dir = stratus.data_dir / "cells" / f"cell-{tenant.account_id}"
    assert cell_dir.exists()
    removed = asyncio.run(_remove_data_at(stratus, removal - dt.timedelta(seconds=1)))
    assert removed == []
    removed = asyncio.run(_remove_data_at(stratus, removal + dt.timedelta(seconds=1)))
    assert removed == [f"cell-{tenant.account_id}"]
    assert not cell_dir.exists()
    assert asyncio.run(_remove_data_at(stratus, removal + dt.timedelta(days=1))) == []
    assert _account(stratus, tenant.account_id)["data_removed_at"] is not None

    actions = asyncio.run(_audit_actions(stratus, tenant.account_id))
    assert actions[0] == "account.create"
    assert actions.index("account.delete") < actions.index("namespace.delete")
    assert actions[-2:] == ["account.deleted", "account.data_removed"]
    assert namespace_id.endswith(tenant.account_id)


async def _remove_data_at(stratus: StratusUp, at: dt.datetime) -> list[str]:
    """One pass of the worker's cell keeper over the running Stratus's cells, at ``at``."""
    engine = create_engine(stratus.database_url)
    try:
        keeper = TenantCellKeeper(
            create_sessionmaker(engine),
            LocalCellProvider(stratus.data_dir / "cells"),
            idle_stop_after=None,
            now=lambda: at,
        )
        return await keeper.remove_deleted_accounts_data()
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only  # HTTP behaviour: the same on both databases
def test_account_wide_service_account_holds_namespace_grants(stratus: StratusUp) -> None:
    """A `read`-less developer service account sees a namespace only once granted on it; the
    grant shows on the service account, is audited, and removing it takes access away."""
    tenant = new_tenant(stratus, _name())
    namespace_id = create_active_namespace(stratus, tenant, "granted")
    sa, sa_key = service_account_with_key(
        stratus, tenant.api_key, {"name": "deployer", "account_role": "developer"}
    )
    scoped, _ = service_account_with_key(
        stratus,
        tenant.api_key,
        {"name": "scoped", "namespace_scope": {"namespace_id": namespace_id, "permission": "read"}},
    )
    path = f"/namespaces/{namespace_id}/service-accounts/{sa['id']}/access"
    with http(stratus, sa_key) as deployer:
        assert_problem(deployer.get(f"/namespaces/{namespace_id}"), 404, "not-found")
    with http(stratus, tenant.api_key) as owner:
        granted = owner.post(path, json={"permission": "admin"})
        assert granted.status_code == 200, granted.text
        assert granted.json()["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "admin"}
        ]
        listed = owner.get(f"/service-accounts/{sa['id']}").json()
        assert listed["namespace_permissions"] == granted.json()["namespace_permissions"]
    with http(stratus, sa_key) as deployer:
        # The credential cache keeps a principal for at most a second.
        wait_until(lambda: deployer.get(f"/namespaces/{namespace_id}").status_code == 200)
        assert deployer.get("/namespaces").json()["namespaces"][0]["id"] == namespace_id
    with http(stratus, tenant.api_key) as owner:
        refused = owner.post(
            f"/namespaces/{namespace_id}/service-accounts/{scoped['id']}/access",
            json={"permission": "write"},
        )
        assert_problem(refused, 409, "conflict")
        assert refused.json()["detail"] == (
            f"service account scoped is scoped to namespace {namespace_id}; change its "
            "permission with POST /service-accounts/{id} (namespace_permission)"
        )
        unknown = owner.post(
            f"/namespaces/{namespace_id}/service-accounts/zz-unknown/access",
            json={"permission": "read"},
        )
        assert_problem(unknown, 404, "not-found")
        assert unknown.json()["detail"] == "service account zz-unknown not found"
        removed = owner.post(path, json={"permission": None})
        assert removed.json()["namespace_permissions"] == []
    with http(stratus, sa_key) as deployer:
        wait_until(lambda: deployer.get(f"/namespaces/{namespace_id}").status_code == 404)
    actions = asyncio.run(_audit_actions(stratus, tenant.account_id))
    assert actions.count("namespace.access.update") >= 3  # scoped create, grant, removal


async def _sign_in_at(stratus: StratusUp, user_id: str, at: dt.datetime) -> None:
    """The user's sign-in (every method ends in create_web_session) at instant ``at``."""
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            user = await session.get(User, user_id)
            assert user is not None
            await sign_in.create_web_session(
                session, ApiSettings(), user, method="oidc", provider="test", now=lambda: at
            )
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only  # HTTP behaviour and one service call: the same on both databases
def test_invitations_expire_and_are_resent(stratus: StratusUp) -> None:
    """An invitation expires after 7 days unless the user signs in; an expired one cannot be
    accepted (403 invitation-expired); resending gives a new expiry (audited); once accepted
    there is nothing to resend (409)."""
    tenant = new_tenant(stratus, _name())
    before = utcnow()
    user = invite(stratus, tenant.api_key, "new@invited.example", "developer")
    expires = dt.datetime.fromisoformat(user["invitation_expires_at"])
    assert before + dt.timedelta(days=7) <= expires <= utcnow() + dt.timedelta(days=7)
    assert user["accepted_at"] is None

    with pytest.raises(InvitationExpired) as expired:
        asyncio.run(_sign_in_at(stratus, user["id"], expires + dt.timedelta(seconds=1)))
    assert (expired.value.status, expired.value.type) == (
        403,
        "https://stratus.dev/problems/invitation-expired",
    )
    assert expired.value.message == (
        f"the invitation of new@invited.example expired at {expires.isoformat()}; ask an "
        "account admin to resend it"
    )

    with http(stratus, tenant.api_key) as owner:
        resent = owner.post(f"/users/{user['id']}/invitation")
        assert resent.status_code == 200, resent.text
        new_expiry = dt.datetime.fromisoformat(resent.json()["invitation_expires_at"])
        assert new_expiry > expires - dt.timedelta(seconds=5)
        assert_problem(owner.post("/users/zz-unknown/invitation"), 404, "not-found")
    asyncio.run(_sign_in_at(stratus, user["id"], new_expiry - dt.timedelta(seconds=1)))
    with http(stratus, tenant.api_key) as owner:
        accepted = owner.get(f"/users/{user['id']}").json()
        assert accepted["accepted_at"] is not None
        refused = owner.post(f"/users/{user['id']}/invitation")
        assert_problem(refused, 409, "conflict")
        assert refused.json()["detail"].startswith("new@invited.example accepted the invitation")
    actions = asyncio.run(_audit_actions(stratus, tenant.account_id))
    assert actions.count("user.invitation.resend") == 1


@pytest.mark.sqlite_only  # the console's dependency: the same on both databases
def test_suspended_accounts_console_is_read_only(stratus: StratusUp) -> None:
    """A console session of a suspended account reads pages but its forms are refused with
    the suspension (403); signing out still works."""
    tenant = new_tenant(stratus, _name())
    with http(stratus, tenant.api_key) as api:
        link = api.post("/auth/console-link")
        assert link.status_code == 201, link.text
    with httpx.Client(base_url=stratus.api_url, timeout=30) as console:
        spent = console.post("/" + link.json()["url"].split("/", 3)[3])
        assert spent.status_code == 303, spent.text
        token = console.get("/api/v1/auth/session").json()["csrf_token"]
        with http(stratus, stratus.operator_key) as operator:
            suspended = operator.post(
                f"/accounts/{tenant.account_id}/suspend", json={"reason": "audit"}
            )
            assert suspended.status_code == 200, suspended.text
        assert console.get("/users").status_code == 200
        refused = console.post(
            "/users",
            data={"csrf_token": token, "email": "x@y.example", "account_role": "read"},
        )
        assert refused.status_code == 403, refused.text
        assert (
            f"account {tenant.account_id} is suspended (audit): its API is read-only until the "
            "operator resumes it"
        ) in refused.text
        assert console.post("/sign-out", data={"csrf_token": token}).status_code in (303, 200)
