"""Console polish (issue 13): a namespace's own latest operation however busy its account; a
signed-out visitor returns to the page they asked for (never to another origin); the detail
page polls only its status section, so a form is never swapped away; `.table-wrap` holds its
visually-hidden labels; a `read` user meets no mutating control on any tenant page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from console_support import all_signed_in, console_link, namespace_reader
from sqlalchemy.ext.asyncio import AsyncSession
from support import StratusUp, Tenant, create_active_namespace, new_tenant

from auth import AccountRole, NamespacePermission, Principal, PrincipalKind
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import Account, AsyncOperation, Base, OperationState
from controlplane.operations import service as operations

# ---------------------------------------------------------------------------------------------
# 1. The latest operation of one resource, tenant-scoped, in a busy account (SQLite).


def _operation(number: int, account_id: str, resource_id: str) -> AsyncOperation:
    return AsyncOperation(
        id=f"op-{account_id}-{number:04d}",
        async_operation_id=f"op-{number}",
        account_id=account_id,
        operation_type="namespace.update",
        resource_id=resource_id,
        state=OperationState.FULFILLED,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=number),
    )


@pytest.fixture
async def busy(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    """Account ``alpha``: ``quiet.alpha``'s operations, then 150 newer ones on other
    namespaces (more than the 100 newest the account's list shows); ``bravo``: a newer
    operation whose resource id is ``quiet.alpha`` too (ids are per account)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'operations.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessionmaker = create_sessionmaker(engine)
    async with unit_of_work(sessionmaker) as setup:
        setup.add_all([Account(id="alpha", name="alpha"), Account(id="bravo", name="bravo")])
        await setup.flush()
        setup.add_all(_operation(number, "alpha", "quiet.alpha") for number in (1, 2))
        setup.add_all(_operation(number, "alpha", f"n{number}.alpha") for number in range(3, 153))
        setup.add(_operation(500, "bravo", "quiet.alpha"))
    try:
        async with unit_of_work(sessionmaker) as session:
            yield session
    finally:
        await engine.dispose()


def _user(
    account_id: str, role: AccountRole, permissions: dict[str, NamespacePermission] | None = None
) -> Principal:
    return Principal(
        PrincipalKind.USER,
        f"u-{account_id}",
        account_id,
        role,
        "user",
        namespace_permissions=permissions or {},
    )


async def test_a_namespaces_latest_operation_is_found_in_a_busy_account(
    busy: AsyncSession,
) -> None:
    owner = _user("alpha", AccountRole.OWNER)
    assert "quiet.alpha" not in {op.resource_id for op in await operations.list_recent(busy, owner)}
    latest = await operations.latest_for(busy, owner, "quiet.alpha")
    assert latest is not None
    assert latest.id == "op-alpha-0002"
    # Another account's operation on the same resource id is invisible to alpha, and alpha's
    # to bravo.
    assert (await operations.latest_for(busy, owner, "nothing.alpha")) is None
    bravo = await operations.latest_for(busy, _user("bravo", AccountRole.OWNER), "quiet.alpha")
    assert bravo is not None
    assert bravo.id == "op-bravo-0500"


async def test_a_namespace_permission_scopes_the_latest_operation(busy: AsyncSession) -> None:
    """A `read` user with access to one namespace sees its operations, not another's."""
    reader = _user("alpha", AccountRole.READ, {"n3.alpha": NamespacePermission.READ})
    found = await operations.latest_for(busy, reader, "n3.alpha")
    assert found is not None
    assert found.id == "op-alpha-0003"
    assert (await operations.latest_for(busy, reader, "quiet.alpha")) is None


# ---------------------------------------------------------------------------------------------
# Pages against the shared Stratus.


@dataclass
class Polish:
    tenant: Tenant
    namespace_id: str
    owner: httpx.Client
    reader: httpx.Client
    reader_key: str
    reader_id: str


@pytest.fixture(scope="module")
def polish(stratus: StratusUp) -> Iterator[Polish]:
    tenant = new_tenant(stratus, "Polished")
    namespace_id = create_active_namespace(stratus, tenant, "shine")
    reader_id, reader_key = namespace_reader(
        stratus, tenant, namespace_id, "reader@polished.example"
    )
    with all_signed_in(stratus, tenant.api_key, reader_key) as (owner, reader):
        yield Polish(tenant, namespace_id, owner, reader, reader_key, reader_id)


def test_the_detail_page_shows_the_namespaces_own_latest_operation(polish: Polish) -> None:
    page = polish.owner.get(f"/namespaces/{polish.namespace_id}")
    assert page.status_code == 200, page.text
    assert "<code>namespace.create</code>" in page.text
    assert 'data-operation-state="FULFILLED"' in page.text


# ---------------------------------------------------------------------------------------------
# 2. Back to the requested page after signing in.


def test_a_signed_out_visitor_returns_to_the_page_they_asked_for(
    stratus: StratusUp, polish: Polish
) -> None:
    wanted = f"/namespaces/{polish.namespace_id}/workflows?status=Running"
    with httpx.Client(base_url=stratus.api_url, timeout=30) as visitor:
        asked = visitor.get(wanted)
        assert asked.status_code == 303
        location = asked.headers["location"]
        assert location == "/sign-in?" + urlencode({"return_to": wanted})
        # The sign-in page sends identity providers back there, and remembers it for a
        # one-time link spent in this browser.
        sign_in = visitor.get(location)
        assert sign_in.status_code == 200
        assert f'name="return_to" value="{wanted}"' in sign_in.text
        link = console_link(stratus, polish.tenant.api_key)
        landing = visitor.get(link)
        assert f'name="return_to" value="{wanted}"' in landing.text
        spent = visitor.post(link, data={"return_to": wanted})  # what the landing form sends
        assert spent.status_code == 303, spent.text
        assert spent.headers["location"] == wanted
        assert "stratus_console_link_return=" in spent.headers["set-cookie"]  # cleared
        assert visitor.get(wanted).status_code == 200


@pytest.mark.parametrize(
    "evil", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/api/v1/accounts"]
)
def test_a_sign_in_never_returns_to_another_origin_or_the_api(
    stratus: StratusUp, polish: Polish, evil: str
) -> None:
    with httpx.Client(base_url=stratus.api_url, timeout=30) as visitor:
        page = visitor.get("/sign-in", params={"return_to": evil})
        assert page.status_code == 200
        assert "stratus_console_link_return" not in page.headers.get("set-cookie", "")
        link = console_link(stratus, polish.tenant.api_key)
        assert 'name="return_to"' not in visitor.get(link, params={"return_to": evil}).text
        spent = visitor.post(link, data={"return_to": evil})
        assert spent.status_code == 303, spent.text
        assert spent.headers["location"] == "/namespaces"


def test_signed_out_htmx_polls_and_form_posts_go_to_the_sign_in_page(
    stratus: StratusUp, polish: Polish
) -> None:
    page = f"/namespaces/{polish.namespace_id}"
    with httpx.Client(base_url=stratus.api_url, timeout=30) as visitor:
        polled = visitor.get(
            f"{page}/status",
            headers={"HX-Request": "true", "HX-Current-URL": stratus.api_url + page},
        )
        # htmx loads the sign-in page as a page, not into the polled section.
        assert polled.status_code == 401
        assert polled.headers["hx-redirect"] == "/sign-in?return_to=" + page.replace("/", "%2F")
        posted = visitor.post(f"{page}/delete", data={"resource_version": "x"})
        assert posted.status_code == 303
        assert posted.headers["location"] == "/sign-in"
        # The pages a sign-in lands on anyway need no return_to.
        assert visitor.get("/namespaces").headers["location"] == "/sign-in"


# ---------------------------------------------------------------------------------------------
# 3. Hidden labels stay inside their scroll box.


def test_every_table_wrap_holds_its_positioned_labels(polish: Polish) -> None:
    css = polish.owner.get("/console/static/console.css").text
    assert re.search(r"\.table-wrap \{[^}]*position: relative;", css)
    assert ".filters .table-wrap" not in css  # the per-page workaround is gone


# ---------------------------------------------------------------------------------------------
# 4. Only the status section polls; a change under the page marks it stale.

STATUS_POLL = re.compile(r'<section id="namespace-status"[^>]*hx-trigger="every 2s"')


def test_only_the_status_section_polls_and_a_change_marks_the_page_stale(
    stratus: StratusUp, polish: Polish
) -> None:
    path = f"/namespaces/{polish.namespace_id}"
    with polish.tenant.client(stratus) as client:
        before = client.get_namespace(polish.namespace_id)
    shown = f"ACTIVE:{before.resource_version}"
    page = polish.owner.get(path).text
    assert '<div id="namespace-live">' in page
    assert "hx-trigger" not in page
    current = polish.owner.get(f"{path}/status", params={"shown": shown})
    assert current.status_code == 200
    assert current.text.lstrip().startswith('<section id="namespace-status"')
    assert "data-page-stale" not in current.text

    with polish.tenant.client(stratus) as client:
        update = client.update_namespace(
            polish.namespace_id, resource_version=before.resource_version, retention_days=8
        )
        # While the update runs, the page polls its status section and nothing else: the
        # settings and delete forms are never swapped.
        during = polish.owner.get(path).text
        if "hx-trigger" in during:
            assert during.count("hx-trigger") == 1
            assert STATUS_POLL.search(during)
        stale = polish.owner.get(f"{path}/status", params={"shown": shown}).text
        assert f'data-page-stale="/namespaces/{polish.namespace_id}/live"' in stale
        assert "data-stale-notice hidden" in stale  # console.js shows it to a user typing
        assert "<form" not in stale
        if "hx-trigger" in stale:  # still polling: the page's own key goes on being sent
            assert f"shown=ACTIVE%3A{before.resource_version}" in stale
        operation = client.wait_for_operation(update.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason
    settled = polish.owner.get(f"{path}/live").text
    assert settled.startswith('<div id="namespace-live">')
    assert "hx-trigger" not in settled
    assert 'value="8"' in settled

    for unknown in (f"/namespaces/nothing.{polish.tenant.account_id}", "/namespaces/x.other1"):
        gone = polish.owner.get(f"{unknown}/status")
        assert gone.status_code == 404
        assert gone.headers["hx-redirect"] == "/namespaces"


# ---------------------------------------------------------------------------------------------
# 5. A `read` user meets no mutating control anywhere.


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.posts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")
        if tag == "form" and (attributes.get("method") or "get").lower() == "post":
            self.posts.append(attributes.get("action") or "")
        if any(name in attributes for name in ("hx-post", "hx-put", "hx-patch", "hx-delete")):
            self.posts.append(f"htmx {tag}")


# Not pages: downloads, static files, the API, signing in and out.
NOT_PAGES = re.compile(r"^/(console/static|api|sign-in|sign-out)(/|$)|/download$|\.xml$")


def test_a_read_user_meets_no_mutating_control_on_any_tenant_page(
    stratus: StratusUp, polish: Polish
) -> None:
    """Every page a `read` user reaches by following links from the console's home (and the
    tenant pages typed in by hand) carries no POST form but signing out and the user's own
    API keys, which the policy lets every user manage."""
    own_keys = polish.reader.get("/api/v1/api-keys")
    assert own_keys.status_code == 200, own_keys.text
    key_ids = [key["id"] for key in own_keys.json()["api_keys"]]
    allowed = {"/sign-out", "/api-keys"} | {f"/api-keys/{key_id}/revoke" for key_id in key_ids}
    with polish.tenant.client(stratus) as client:
        owner_id = next(u.id for u in client.list_users().users if u.account_role == "owner")
    by_hand = [
        "/namespaces/new",
        "/users",
        f"/users/{owner_id}",
        f"/users/{polish.reader_id}",
        "/service-accounts",
        "/api-keys",
        "/usage",
        "/invoices",
        "/audit",
        "/settings",
    ]
    queue, seen, forms = ["/namespaces", *by_hand], set(), {}
    while queue:
        path = queue.pop(0)
        if path in seen or NOT_PAGES.search(urlsplit(path).path):
            continue
        seen.add(path)
        answered = polish.reader.get(path)
        if answered.status_code == 303:  # the home page: on to the user's landing page
            queue.append(answered.headers["location"])
            continue
        assert answered.status_code in (200, 403, 404), (path, answered.status_code)
        if not answered.headers["content-type"].startswith("text/html"):
            continue
        controls = _Controls()
        controls.feed(answered.text)
        forms[path] = [action for action in controls.posts if action not in allowed]
        if answered.status_code == 200:
            queue.extend(link for link in controls.links if link.startswith("/"))
        assert len(seen) < 80, "the walk should stay small"
    assert {path: found for path, found in forms.items() if found} == {}
    walked = {urlsplit(path).path for path in seen}
    assert {
        "/namespaces",
        f"/namespaces/{polish.namespace_id}",
        f"/namespaces/{polish.namespace_id}/workflows",
        "/api-keys",
        "/settings",
    } <= walked
