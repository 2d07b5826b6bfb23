"""The console's audit log page over HTTP against a real Stratus: newest first, filtered by
actor, action and UTC days (the same filters as ``GET /api/v1/audit-logs``), paged with the
filters kept, tenant-controlled details escaped, bad filters shown next to their field, and
only owners and admins let in (the others see no entry and get 403)."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from console_support import all_signed_in, html_page
from identity_support import assert_problem, user_with_key
from support import StratusUp, Tenant, http, new_tenant

from controlplane.audit import service as audit
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow

HOSTILE = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
OLD_DAY = dt.date(2025, 6, 14)
BACKFILLED = 55  # more than one page of 50


@dataclass
class Audited:
    tenant: Tenant
    admin_actor: str
    owner: httpx.Client
    admin: httpx.Client
    finance: httpx.Client
    reader: httpx.Client


async def _backfill(stratus: StratusUp, account_id: str) -> None:
    """Events of a day long past, recorded by the audit service (its clock set back)."""
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            for number in range(BACKFILLED):
                event = audit.record(
                    session,
                    None,
                    action="test.backfill",
                    target=f"thing-{number}",
                    account_id=account_id,
                    details={"number": number},
                )
                event.at = dt.datetime.combine(OLD_DAY, dt.time(12), tzinfo=dt.UTC)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def audited(stratus: StratusUp) -> Iterator[Audited]:
    """Tenant "Audited": an admin who created a service account with a hostile name (today),
    and 55 backfilled events on a day long past."""
    tenant = new_tenant(stratus, "Audited")
    # First, so that ids (the log's order) and times agree: the old events are the oldest.
    asyncio.run(_backfill(stratus, tenant.account_id))
    _, admin_key = user_with_key(stratus, tenant.api_key, "admin@audited.example", "admin")
    _, finance_key = user_with_key(
        stratus, tenant.api_key, "money@audited.example", "finance_admin"
    )
    _, read_key = user_with_key(stratus, tenant.api_key, "reader@audited.example", "read")
    with http(stratus, admin_key) as client:
        created = client.post("/service-accounts", json={"name": HOSTILE, "account_role": "read"})
        assert created.status_code == 201, created.text
        events = client.get("/audit-logs", params={"action": "service_account.create"})
    (event,) = events.json()["audit_logs"]
    with all_signed_in(stratus, tenant.api_key, admin_key, finance_key, read_key) as clients:
        yield Audited(tenant, event["actor"], *clients)


def _rows(page: str) -> list[tuple[str, str, str]]:
    """(actor, action, target) of each event row, in page order."""
    return [
        (html.unescape(actor), action, html.unescape(target))
        for actor, action, target in re.findall(
            r'<tr data-event="\d+">\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>([^<]*)</td>\s*'
            r"<td[^>]*><code>([^<]*)</code></td>\s*<td[^>]*>([^<]*)</td>",
            page,
        )
    ]


def test_the_log_is_newest_first_and_escapes_tenant_strings(audited: Audited) -> None:
    page = html_page(audited.owner.get("/audit"))
    rows = _rows(page)
    assert len(rows) == 50
    # Today's events (invitations, keys, the service account, sign-ins) before the old ones.
    assert rows[0][1] != "test.backfill"
    ids = [int(i) for i in re.findall(r'<tr data-event="(\d+)">', page)]
    assert ids == sorted(ids, reverse=True)
    assert HOSTILE not in page
    assert "<img" not in page
    # The service account's name, in the event's details: shown, as text.
    assert "&lt;script&gt;alert(" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_filters_narrow_by_actor_action_and_days(audited: Audited) -> None:
    by_action = _rows(
        html_page(audited.owner.get("/audit", params={"action": "service_account.create"}))
    )
    assert [(actor, action) for actor, action, _ in by_action] == [
        (audited.admin_actor, "service_account.create")
    ]
    by_actor = _rows(html_page(audited.owner.get("/audit", params={"actor": audited.admin_actor})))
    assert by_actor
    assert {actor for actor, _, _ in by_actor} == {audited.admin_actor}
    assert "service_account.create" in {action for _, action, _ in by_actor}

    day = OLD_DAY.isoformat()
    that_day = html_page(audited.owner.get("/audit", params={"from": day, "to": day}))
    rows = _rows(that_day)
    assert len(rows) == 50
    assert {action for _, action, _ in rows} == {"test.backfill"}
    assert rows[0][2] == f"thing-{BACKFILLED - 1}"  # newest first
    after = (OLD_DAY + dt.timedelta(days=1)).isoformat()
    before = (OLD_DAY - dt.timedelta(days=1)).isoformat()
    assert _rows(html_page(audited.owner.get("/audit", params={"to": before}))) == []
    newer = _rows(html_page(audited.owner.get("/audit", params={"from": after})))
    assert newer
    assert "test.backfill" not in {action for _, action, _ in newer}
    today = utcnow().date().isoformat()
    both = {"actor": audited.admin_actor, "action": "service_account.create", "to": today}
    assert len(_rows(html_page(audited.owner.get("/audit", params=both)))) == 1
    assert _rows(html_page(audited.owner.get("/audit", params={**both, "to": before}))) == []


def test_paging_keeps_the_filters(audited: Audited) -> None:
    day = OLD_DAY.isoformat()
    first = html_page(audited.owner.get("/audit", params={"action": "test.backfill", "from": day}))
    assert len(_rows(first)) == 50
    (older,) = re.findall(r'<a href="([^"]+)" rel="next">Older events</a>', first)
    older = html.unescape(older)
    assert "action=test.backfill" in older
    assert f"from={day}" in older
    second = html_page(audited.owner.get(older))
    assert [target for _, _, target in _rows(second)] == [
        f"thing-{n}" for n in range(BACKFILLED - 51, -1, -1)
    ]
    assert 'rel="next"' not in second
    assert "Newest events" in second


def test_bad_filters_are_shown_next_to_their_field(audited: Audited) -> None:
    for params, field, message in (
        ({"from": "yesterday"}, "from", "from must be a date as YYYY-MM-DD"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "to", "to (2026-05-01) is before from"),
        ({"to": "1999-12-31"}, "to", "to must lie between 2000-01-01"),
        ({"actor": "bad\x00actor"}, "actor", "actor contains"),
    ):
        page = html_page(audited.owner.get("/audit", params=params), 400)
        assert re.search(rf'<p class="field-error" id="{field}-error">{re.escape(message)}', page)
        assert f'aria-describedby="{field}-error"' in page
    wrong_token = html_page(audited.owner.get("/audit", params={"page": "not-a-token"}), 400)
    assert "page_token is not one this API returned" in wrong_token


def test_only_owners_and_admins_read_the_log(audited: Audited) -> None:
    for allowed in (audited.owner, audited.admin):
        assert 'href="/audit"' in html_page(allowed.get("/namespaces"))
    for refused in (audited.finance, audited.reader):
        assert 'href="/audit"' not in html_page(refused.get("/namespaces"))
        answer = html_page(refused.get("/audit", params={"from": "garbage"}), 403)
        assert "this credential may not read the audit log" in answer


def test_the_api_takes_the_same_filters(stratus: StratusUp, audited: Audited) -> None:
    day = OLD_DAY.isoformat()
    with http(stratus, audited.tenant.api_key) as api:
        ranged = api.get(
            "/audit-logs",
            params={"since": f"{day}T00:00:00Z", "until": f"{day}T12:00:01Z", "page_size": 500},
        )
        assert ranged.status_code == 200, ranged.text
        assert len(ranged.json()["audit_logs"]) == BACKFILLED
        by_actor = api.get("/audit-logs", params={"actor": audited.admin_actor}).json()
        assert {e["actor"] for e in by_actor["audit_logs"]} == {audited.admin_actor}
        assert_problem(
            api.get("/audit-logs", params={"since": f"{day}T00:00:00", "until": f"{day}T00:00:00"}),
            400,
            "invalid-field",
        )
