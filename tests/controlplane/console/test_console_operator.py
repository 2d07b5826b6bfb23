"""The operator in the console: the one-time link `stratus up` prints (and `stratus console`
with the operator key) signs the operator in once; no tenant credential can produce an
operator session; the operator pages (accounts, an account's plan and credits, plans, a
namespace's rate limits) render and mutate through the API's services, audited; a tenant gets
the one "not found" page for every /operator/ page; CSRF on every POST."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from console_support import LINK_PATH, console_link, csrf_token, html_page, signed_in
from sqlalchemy import select
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import AuditEvent, WebSession

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."
BANNER_LINK = re.compile(r"Operator link:\s+(\S+)\s")


def _main(page: str) -> str:
    """The page's content, without the header (whose nav marks the current section)."""
    found = re.search(r"<main.*</main>", page, re.S)
    assert found, page
    return found.group(0)


def operator_signed_in(stratus: StratusUp) -> httpx.Client:
    """A console client holding an operator session, as `stratus console` with the operator
    key gives."""
    return signed_in(stratus, stratus.operator_key, lands_on="/operator/accounts")


async def _audit(stratus: StratusUp, action: str) -> list[AuditEvent]:
    """The installation-wide audit events (no account: the operator's own sign-ins)."""
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            statement = select(AuditEvent).where(AuditEvent.action == action)
            return list((await session.execute(statement)).scalars())
    finally:
        await engine.dispose()


async def _sessions(stratus: StratusUp) -> list[WebSession]:
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return list((await session.execute(select(WebSession))).scalars())
    finally:
        await engine.dispose()


def _banner_link(stratus: StratusUp, start: int) -> str:
    found = BANNER_LINK.findall(stratus.log_path.read_text()[start:])
    assert len(found) == 1, stratus.log_path.read_text()[start:]
    match = LINK_PATH.match(found[0])
    assert match, found[0]
    return match.group(1)


@pytest.mark.parametrize("fresh_stratus", ["sqlite"], indirect=True)
def test_stratus_up_prints_a_link_that_signs_the_operator_in_once(
    fresh_stratus: StratusUp,
) -> None:
    fresh_stratus.start()
    path = _banner_link(fresh_stratus, 0)
    with httpx.Client(base_url=fresh_stratus.api_url, timeout=30) as browser:
        html_page(browser.get(path), 200)  # the landing page spends nothing
        spent = browser.post(path)
        assert spent.status_code == 303, spent.text
        assert spent.headers["location"] == "/operator/accounts"
        page = html_page(browser.get("/operator/accounts"), 200)
        assert "operator of this installation" in page
        assert 'href="/namespaces"' not in page
        session = browser.get("/api/v1/auth/session").json()
        assert session["principal_kind"] == "operator"
        assert session["user_id"] is None
        assert session["account_id"] is None
    with httpx.Client(base_url=fresh_stratus.api_url, timeout=30) as browser:
        again = browser.post(path)
        assert "this sign-in link is unknown, expired or already used" in html_page(again, 400)
        assert "stratus_session" not in again.cookies
        assert browser.get("/operator/accounts").headers["location"] == "/sign-in"
    created = asyncio.run(_audit(fresh_stratus, "console.sign_in_link.create"))
    used = asyncio.run(_audit(fresh_stratus, "console.sign_in_link.use"))
    assert [(e.actor, e.target, e.account_id) for e in created] == [("operator", "operator", None)]
    # The use, then the refused reuse.
    assert [(e.actor, e.outcome) for e in sorted(used, key=lambda e: e.id)] == [
        ("operator", "success"),
        ("anonymous", "refused"),
    ]
    sessions = asyncio.run(_sessions(fresh_stratus))
    assert [(s.principal_kind, s.user_id, s.account_id) for s in sessions] == [
        ("operator", None, None)
    ]


@dataclass
class Operated:
    tenant: Tenant
    namespace_id: str
    operator: httpx.Client
    owner: httpx.Client


@pytest.fixture(scope="module")
def operated(stratus: StratusUp) -> Iterator[Operated]:
    tenant = new_tenant(stratus, "Operated")
    namespace_id = create_active_namespace(stratus, tenant, "limited")
    operator, owner = operator_signed_in(stratus), signed_in(stratus, tenant.api_key)
    try:
        yield Operated(tenant, namespace_id, operator, owner)
    finally:
        operator.close()
        owner.close()


def _tenant_audit(stratus: StratusUp, tenant: Tenant, action: str) -> list[dict[str, object]]:
    """The account's audit log, read through the API by its owner."""
    with http(stratus, tenant.api_key) as api:
        events = api.get("/audit-logs", params={"page_size": 100}).json()["audit_logs"]
    return [event for event in events if event["action"] == action]


def test_a_tenant_gets_the_not_found_page_for_every_operator_page(
    stratus: StratusUp, operated: Operated
) -> None:
    account = operated.tenant.account_id
    # What an unknown id of the tenant's own answers.
    unknown = _main(html_page(operated.owner.get(f"/namespaces/nothing.{account}"), 404))
    for path in (
        "/operator/accounts",
        f"/operator/accounts/{account}",
        "/operator/plans",
        f"/operator/namespaces/{operated.namespace_id}",
    ):
        assert _main(html_page(operated.owner.get(path), 404)) == unknown
    token = csrf_token(operated.owner)
    for path, form in (
        ("/operator/accounts", {"name": "Sneaky", "owner_email": "x@sneaky.example"}),
        (f"/operator/accounts/{account}/credits", {"amount": "1000", "description": "free"}),
        (f"/operator/accounts/{account}/plan", {"plan": "business"}),
        (f"/operator/namespaces/{operated.namespace_id}/limits", {"requests_per_second": "9"}),
    ):
        refused = operated.owner.post(path, data={**form, "csrf_token": token})
        assert NOT_FOUND_TEXT in html_page(refused, 404)
    assert _tenant_audit(stratus, operated.tenant, "credit.grant") == []
    assert _tenant_audit(stratus, operated.tenant, "account.plan.set") == []
    # The owner's page keeps the tenant's header and nav.
    listing = html_page(operated.owner.get("/namespaces"), 200)
    assert "/operator/" not in listing
    assert f"account <code>{account}</code>" in listing


def test_no_tenant_credential_gets_an_operator_session(
    stratus: StratusUp, operated: Operated
) -> None:
    """A tenant's link signs its user in, as a user: the session is the user's, bound to the
    account, whatever the tenant sends."""
    with httpx.Client(base_url=stratus.api_url, timeout=30) as browser:
        spent = browser.post(console_link(stratus, operated.tenant.api_key))
        assert spent.headers["location"] == "/namespaces"
        session = browser.get("/api/v1/auth/session").json()
        assert session["principal_kind"] == "user"
        assert session["account_id"] == operated.tenant.account_id
        assert browser.get("/operator/accounts").status_code == 404
    sessions = asyncio.run(_sessions(stratus))
    for web_session in sessions:
        if web_session.principal_kind == "operator":
            assert web_session.user_id is None
            assert web_session.account_id is None
            assert web_session.operator_key_id is not None
        else:
            assert web_session.account_id is not None


def test_the_accounts_page_lists_and_creates_accounts(
    stratus: StratusUp, operated: Operated
) -> None:
    listing = html_page(operated.operator.get("/operator/accounts"), 200)
    row = re.search(
        rf"<tr>\s*<td><a href=\"/operator/accounts/{operated.tenant.account_id}\">.*?</tr>",
        listing,
        re.S,
    )
    assert row, listing
    assert "Operated" in row.group(0)
    assert "(default)" in row.group(0)
    assert "<td>1</td>" in row.group(0)  # its one namespace
    token = csrf_token(operated.operator)
    bad = operated.operator.post(
        "/operator/accounts",
        data={"csrf_token": token, "name": "Newco", "owner_email": "not-an-email"},
    )
    page = html_page(bad, 400)
    assert re.search(r'id="owner_email-error">[^<]*email', page), page
    assert 'value="Newco"' in page
    good = operated.operator.post(
        "/operator/accounts",
        data={"csrf_token": token, "name": "Newco", "owner_email": "boss@newco.example"},
    )
    page = html_page(good, 200)
    created = re.search(r'<code id="owner-key">([^<]+)</code>', page)
    assert created, page
    # The owner's key, shown once, works: the account exists with its owner.
    with http(stratus, created.group(1)) as api:
        identity = api.get("/current-identity")
    assert identity.status_code == 200, identity.text
    assert "boss@newco.example" in identity.text
    assert created.group(1) not in html_page(operated.operator.get("/operator/accounts"), 200)


def test_an_accounts_plan_and_credits_change_through_the_services(
    stratus: StratusUp, operated: Operated
) -> None:
    account = operated.tenant.account_id
    page = html_page(operated.operator.get(f"/operator/accounts/{account}"), 200)
    assert "No credit granted." in page
    assert operated.namespace_id in page
    token = csrf_token(operated.operator)
    bad_plan = operated.operator.post(
        f"/operator/accounts/{account}/plan", data={"csrf_token": token, "plan": "platinum"}
    )
    assert re.search(r'id="plan-error">plan &#39;platinum&#39; is not in', html_page(bad_plan, 400))
    changed = operated.operator.post(
        f"/operator/accounts/{account}/plan", data={"csrf_token": token, "plan": "business"}
    )
    assert changed.status_code == 303, changed.text
    assert "<dd>business</dd>" in html_page(
        operated.operator.get(f"/operator/accounts/{account}"), 200
    )
    [plan_set] = _tenant_audit(stratus, operated.tenant, "account.plan.set")
    assert plan_set["actor"] == "operator"
    assert plan_set["details"]["plan"] == "business"  # type: ignore[index]

    bad_credit = operated.operator.post(
        f"/operator/accounts/{account}/credits",
        data={"csrf_token": token, "amount": "lots", "description": "welcome"},
    )
    page = html_page(bad_credit, 400)
    assert 'id="amount-error"' in page
    assert 'value="welcome"' in page
    granted = operated.operator.post(
        f"/operator/accounts/{account}/credits",
        data={"csrf_token": token, "amount": "250.00", "description": "welcome credit"},
    )
    assert granted.status_code == 303, granted.text
    page = html_page(operated.operator.get(f"/operator/accounts/{account}"), 200)
    assert re.search(r"<td>welcome credit</td><td>250\.00</td><td>250\.00</td>", page), page
    [grant] = _tenant_audit(stratus, operated.tenant, "credit.grant")
    assert grant["actor"] == "operator"
    assert grant["details"]["amount"] == "250.00"  # type: ignore[index]
    # What the API shows the account's owner.
    with http(stratus, operated.tenant.api_key) as api:
        credits = api.get("/billing/credits").json()["credits"]
    assert [c["description"] for c in credits] == ["welcome credit"]
    unknown = operated.operator.get("/operator/accounts/zzzzzz")
    assert NOT_FOUND_TEXT in html_page(unknown, 404)


def test_plans_and_a_namespaces_rate_limits(stratus: StratusUp, operated: Operated) -> None:
    plans = html_page(operated.operator.get("/operator/plans"), 200)
    for text in ("essentials", "business", "Price book <code>", "Price per million"):
        assert text in plans
    path = f"/operator/namespaces/{operated.namespace_id}"
    page = html_page(operated.operator.get(path), 200)
    assert 'name="requests_per_second"' in page
    token = csrf_token(operated.operator)
    too_many = operated.operator.post(
        f"{path}/limits",
        data={"csrf_token": token, "requests_per_second": "0", "actions_per_second": "10"},
    )
    assert 'id="requests_per_second-error">requests_per_second must be between' in html_page(
        too_many, 400
    )
    changed = operated.operator.post(
        f"{path}/limits",
        data={"csrf_token": token, "requests_per_second": "77", "actions_per_second": "33"},
    )
    assert changed.status_code == 303, changed.text
    [limits_set] = _tenant_audit(stratus, operated.tenant, "namespace.limits.set")
    assert limits_set["actor"] == "operator"
    assert limits_set["details"]["requests_per_second"] == 77  # type: ignore[index]
    with http(stratus, operated.tenant.api_key) as api:
        namespace = api.get(f"/namespaces/{operated.namespace_id}").json()
    assert namespace["requests_per_second"] == 77
    unknown = operated.operator.get("/operator/namespaces/nothing.zzzzzz")
    assert NOT_FOUND_TEXT in html_page(unknown, 404)


def test_every_operator_post_needs_the_csrf_token(stratus: StratusUp, operated: Operated) -> None:
    account = operated.tenant.account_id
    for path, form in (
        ("/operator/accounts", {"name": "Csrfless", "owner_email": "a@csrfless.example"}),
        (f"/operator/accounts/{account}/credits", {"amount": "5", "description": "csrfless"}),
        (f"/operator/namespaces/{operated.namespace_id}/limits", {"requests_per_second": "5"}),
    ):
        for token in (None, "wrong"):
            data = form if token is None else {**form, "csrf_token": token}
            refused = operated.operator.post(path, data=data)
            assert "Missing or wrong CSRF token" in html_page(refused, 403)
    assert "Csrfless" not in html_page(operated.operator.get("/operator/accounts"), 200)


def test_stratus_console_with_the_operator_key_and_signing_out(stratus: StratusUp) -> None:
    """`stratus console` with the operator key prints an operator link; signing out deletes
    the session's row."""
    printed = stratus.cli("console", api_key=stratus.operator_key)
    assert printed.returncode == 0, printed.stderr
    match = LINK_PATH.match(printed.stdout.strip().splitlines()[-1])
    assert match, printed.stdout
    operator = httpx.Client(base_url=stratus.api_url, timeout=30)
    try:
        spent = operator.post(match.group(1))
        assert spent.headers["location"] == "/operator/accounts"
        assert operator.get("/").headers["location"] == "/operator/accounts"
        cookie = operator.cookies["stratus_session"]
        out = operator.post("/sign-out", data={"csrf_token": csrf_token(operator)})
        assert out.status_code == 303
    finally:
        operator.close()
    # The row is gone: the old cookie, replayed, signs nobody in.
    with httpx.Client(
        base_url=stratus.api_url, timeout=30, cookies={"stratus_session": cookie}
    ) as replay:
        assert replay.get("/operator/accounts").headers["location"] == "/sign-in"
    [logout] = [e for e in asyncio.run(_audit(stratus, "auth.logout")) if e.actor == "operator"][
        -1:
    ]
    assert logout.account_id is None
