"""The console's pages over HTTP against a real Stratus: the CSP on every page, one "not found"
for foreign and unknown ids, a `read` user's view and the server's refusal, one-time links
(single use, expiry with an injected clock, users only), CSRF on every POST, and a namespace
created through the form (uploaded CA, errors next to their field)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from console_support import (
    all_signed_in,
    console_link,
    csrf_token,
    html_page,
    namespace_reader,
)
from identity_support import assert_problem, service_account_with_key
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow
from controlplane.models import User
from controlplane.sign_in import console_link as links
from controlplane.sign_in.service import user_principal

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."


@dataclass
class Console:
    tenant: Tenant
    namespace_id: str
    owner: httpx.Client
    reader: httpx.Client
    reader_key: str


@pytest.fixture(scope="module")
def console(stratus: StratusUp) -> Iterator[Console]:
    tenant = new_tenant(stratus, "Consoled")
    namespace_id = create_active_namespace(stratus, tenant, "pages")
    _, reader_key = namespace_reader(stratus, tenant, namespace_id, "reader@consoled.example")
    with all_signed_in(stratus, tenant.api_key, reader_key) as (owner, reader):
        yield Console(tenant, namespace_id, owner, reader, reader_key)


def test_every_page_carries_the_strict_csp(stratus: StratusUp, console: Console) -> None:
    anonymous = httpx.Client(base_url=stratus.api_url, timeout=30)
    with anonymous:
        html_page(anonymous.get("/sign-in"), 200)
        html_page(anonymous.get("/sign-in/link/whatever"), 200)
        assert anonymous.get("/namespaces").headers["location"] == "/sign-in"
    for path in ("/namespaces", "/namespaces/new", f"/namespaces/{console.namespace_id}"):
        page = html_page(console.owner.get(path), 200)
        assert "owner@consoled.example" in page
        assert console.tenant.account_id in page
    html_page(console.owner.get("/namespaces/rows"), 200)
    html_page(console.owner.get("/no/such/page"), 404)
    script = console.owner.get("/console/static/console.js")
    assert script.status_code == 200
    assert "htmx:configRequest" in script.text


def test_htmx_is_served_from_the_pinned_npm_package(console: Console) -> None:
    htmx = console.owner.get("/console/static/htmx.min.js")
    assert htmx.status_code == 200, "run `make install` (npm ci in controlplane/console/static)"
    assert htmx.headers["content-type"].startswith("text/javascript")
    assert "htmx" in htmx.text[:2000]


def test_an_unknown_api_path_still_answers_problem_json(stratus: StratusUp) -> None:
    with http(stratus, None) as client:
        assert_problem(client.get("/no-such-route"), 404, "not-found")


def test_another_accounts_namespace_looks_exactly_like_an_unknown_one(
    stratus: StratusUp, console: Console
) -> None:
    other = new_tenant(stratus, "Elsewhere")
    foreign_id = create_active_namespace(stratus, other, "hidden")
    unknown_id = f"nothing.{console.tenant.account_id}"
    for suffix in ("", "/cas/remove", "/delete"):
        if suffix:
            token = csrf_token(console.owner)
            form = {"csrf_token": token, "resource_version": "x", "fingerprint": "x"}
            foreign = console.owner.post(f"/namespaces/{foreign_id}{suffix}", data=form)
            unknown = console.owner.post(f"/namespaces/{unknown_id}{suffix}", data=form)
        else:
            foreign = console.owner.get(f"/namespaces/{foreign_id}")
            unknown = console.owner.get(f"/namespaces/{unknown_id}")
        assert html_page(foreign, 404) == html_page(unknown, 404)
        assert NOT_FOUND_TEXT in foreign.text
        assert foreign_id not in foreign.text


def test_a_read_user_sees_no_mutating_control_and_is_refused_anyway(
    console: Console,
) -> None:
    listing = html_page(console.reader.get("/namespaces"), 200)
    assert console.namespace_id in listing
    assert "Create namespace" not in listing
    detail = html_page(console.reader.get(f"/namespaces/{console.namespace_id}"), 200)
    for control in ("/cas/remove", '/cas"', "/delete", "Delete namespace", "Add CA"):
        assert control not in detail
    assert "Sign out" in detail  # the only form: sign-out
    token = csrf_token(console.reader)
    created = console.reader.post(
        "/namespaces",
        data={"csrf_token": token, "name": "sneaky", "accepted_client_ca": "x"},
    )
    assert "may not perform namespace.create" in html_page(created, 403)
    deleted = console.reader.post(
        f"/namespaces/{console.namespace_id}/delete",
        data={"csrf_token": token, "resource_version": "x", "confirm_name": "pages"},
    )
    assert "may not perform namespace.delete" in html_page(deleted, 403)
    removed = console.reader.post(
        f"/namespaces/{console.namespace_id}/cas/remove",
        data={"csrf_token": token, "resource_version": "x", "fingerprint": "x"},
    )
    assert "may not perform namespace.update" in html_page(removed, 403)


def test_every_console_post_needs_the_sessions_csrf_token(console: Console) -> None:
    for path, form in (
        ("/namespaces", {"name": "csrfless", "accepted_client_ca": "x"}),
        (f"/namespaces/{console.namespace_id}/delete", {"resource_version": "x"}),
        ("/sign-out", {}),
    ):
        for token in (None, "wrong"):
            data = form if token is None else {**form, "csrf_token": token}
            refused = console.owner.post(path, data=data)
            assert "Missing or wrong CSRF token" in html_page(refused, 403)
    # Still signed in: the refused sign-out did nothing.
    assert console.owner.get("/namespaces").status_code == 200


def test_a_link_signs_in_once(stratus: StratusUp, console: Console) -> None:
    path = console_link(stratus, console.reader_key)
    with httpx.Client(base_url=stratus.api_url, timeout=30) as browser:
        assert browser.post(path).status_code == 303
        assert browser.get("/namespaces").status_code == 200
    with httpx.Client(base_url=stratus.api_url, timeout=30) as browser:
        again = browser.post(path)
        page = html_page(again, 400)
        assert "this sign-in link is unknown, expired or already used" in page
        assert "stratus_session" not in again.cookies
        assert browser.get("/namespaces").headers["location"] == "/sign-in"
    with http(stratus, console.tenant.api_key) as api:
        events = api.get("/audit-logs", params={"page_size": 100}).json()["audit_logs"]
    actions = [event["action"] for event in events]
    assert "console.sign_in_link.create" in actions
    assert "console.sign_in_link.use" in actions


async def _expired_link(stratus: StratusUp, email: str) -> str:
    """A link created six minutes ago (its service, with the clock injected)."""
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            from sqlalchemy import select

            user = (await session.execute(select(User).where(User.email == email))).scalar_one()
            principal = await user_principal(session, user)
            token, _ = await links.create_link(
                session, principal, now=lambda: utcnow() - dt.timedelta(minutes=6)
            )
    finally:
        await engine.dispose()
    return links.CONSOLE_LINK_PATH + token


def test_an_expired_link_is_refused_with_the_sign_in_page(
    stratus: StratusUp, console: Console
) -> None:
    path = asyncio.run(_expired_link(stratus, "reader@consoled.example"))
    with httpx.Client(base_url=stratus.api_url, timeout=30) as browser:
        page = html_page(browser.post(path), 400)
    assert "this sign-in link is unknown, expired or already used" in page


def test_only_a_users_key_gets_a_link(stratus: StratusUp, console: Console) -> None:
    _, robot_key = service_account_with_key(
        stratus, console.tenant.api_key, {"name": "robot", "account_role": "read"}
    )
    with http(stratus, robot_key) as client:
        assert_problem(client.post("/auth/console-link"), 400, "sign-in-link-needs-user")
    with http(stratus, None) as client:
        assert_problem(client.post("/auth/console-link"), 401, "unauthenticated")


def test_create_a_namespace_with_an_uploaded_ca(stratus: StratusUp, console: Console) -> None:
    token = csrf_token(console.owner)
    ca_pem = console.tenant.ca.cert_pem
    bad = console.owner.post(
        "/namespaces",
        data={"csrf_token": token, "name": "Bad--Name", "retention_days": "7"},
        files={"ca_file": ("ca.pem", ca_pem, "application/x-pem-file")},
    )
    page = html_page(bad, 400)
    assert 'id="name-error"' in page
    assert "name must" in page
    assert 'value="Bad--Name"' in page  # the form keeps what was typed
    bad_ca = console.owner.post(
        "/namespaces",
        data={"csrf_token": token, "name": "uploaded"},
        files={"ca_file": ("ca.pem", b"not a certificate", "application/x-pem-file")},
    )
    assert 'id="accepted_client_ca-error"' in html_page(bad_ca, 400)
    created = console.owner.post(
        "/namespaces",
        data={"csrf_token": token, "name": "uploaded", "retention_days": "7"},
        files={"ca_file": ("ca.pem", ca_pem, "application/x-pem-file")},
    )
    namespace_id = f"uploaded.{console.tenant.account_id}"
    assert created.status_code == 303, created.text
    assert created.headers["location"] == f"/namespaces/{namespace_id}"
    detail = html_page(console.owner.get(created.headers["location"]), 200)
    assert f"{namespace_id}.stratus.localhost" in detail  # the TLS server name
    assert "Consoled CA" in detail  # the uploaded CA's subject
    with http(stratus, console.tenant.api_key) as api:
        events = api.get("/audit-logs", params={"page_size": 100}).json()["audit_logs"]
    assert any(e["action"] == "namespace.create" and e["target"] == namespace_id for e in events)
