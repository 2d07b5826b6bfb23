"""The console's insights page over HTTP against a real Stratus: the namespace's findings (the
same service as GET /api/v1/namespaces/{id}/insights), most severe first, tenant-controlled
text escaped, example workflow ids linking to the workflow browser, a window switcher; another
account's namespace and a bad window answer the console's problem pages, never a 500; the
namespace detail page links to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from console_support import all_signed_in, html_page, namespace_reader
from identity_support import user_with_key
from insights_support import HOSTILE, seed_findings
from markupsafe import escape
from support import StratusUp, Tenant, create_active_namespace, new_tenant

# Pages over HTTP: the store's SQL runs on PostgreSQL in tests/controlplane/insights.
pytestmark = pytest.mark.sqlite_only


@dataclass(frozen=True)
class Seeded:
    tenant: Tenant
    namespace_id: str


@pytest.fixture(scope="module")
def seeded(stratus: StratusUp) -> Seeded:
    tenant = new_tenant(stratus, "Observed")
    namespace_id = create_active_namespace(stratus, tenant, "checkout")
    asyncio.run(seed_findings(stratus, namespace_id))
    return Seeded(tenant, namespace_id)


def test_findings_page_lists_findings_most_severe_first(stratus: StratusUp, seeded: Seeded) -> None:
    ns = seeded.namespace_id
    with all_signed_in(stratus, seeded.tenant.api_key) as (console,):
        detail = html_page(console.get(f"/namespaces/{ns}"))
        assert f'href="/namespaces/{ns}/insights">Insights</a>' in detail
        page = html_page(console.get(f"/namespaces/{ns}/insights"))
    assert "Analysed 2026-03-02 12:00:00 UTC in 7 ms, 2 calls to the cell." in page
    # Critical first; tenant text escaped wherever it shows.
    assert page.index("Work but no pollers") < page.index("Activity failures and retries")
    assert HOSTILE not in page
    assert page.count(str(escape(HOSTILE))) == 2
    # Example ids open the workflow browser filtered to them (quotes escaped in the query).
    assert (
        f'href="/namespaces/{ns}/workflows?query=WorkflowId%3D%22order+%5C%22{1}%5C%22%22"' in page
    )
    assert "fix the card gateway timeout" in page
    assert f'href="/namespaces/{ns}/insights" aria-current="page">Last hour</a>' in page


def test_window_switch_and_resolved_toggle(stratus: StratusUp, seeded: Seeded) -> None:
    ns = seeded.namespace_id
    with all_signed_in(stratus, seeded.tenant.api_key) as (console,):
        week = html_page(console.get(f"/namespaces/{ns}/insights", params={"window": "7d"}))
        assert "No findings over the last 7 days." in week
        assert "Not analysed over this window yet" in week
        assert f'href="/namespaces/{ns}/insights?window=7d" aria-current="page"' in week
        assert f'href="/namespaces/{ns}/insights?window=7d&amp;include_resolved=true"' in week
        bad = console.get(f"/namespaces/{ns}/insights", params={"window": "2h"})
        page = html_page(bad, 400)
        assert "window must be one of 1h, 24h, 7d" in page


def test_other_accounts_and_readers(stratus: StratusUp, seeded: Seeded) -> None:
    """Another account's namespace is the same 404 page as an unknown one; a `read` user with
    `read` on the namespace sees the page, one without a grant gets the 404."""
    ns = seeded.namespace_id
    other = new_tenant(stratus, "Nosy")
    with all_signed_in(stratus, other.api_key) as (console,):
        foreign = html_page(console.get(f"/namespaces/{ns}/insights"), 404)
        unknown = html_page(console.get(f"/namespaces/nope.{other.account_id}/insights"), 404)
    assert foreign.replace(ns, "X") == unknown.replace(f"nope.{other.account_id}", "X")
    _, reader_key = namespace_reader(stratus, seeded.tenant, ns, "reader@observed.example")
    with all_signed_in(stratus, reader_key) as (console,):
        assert "Work but no pollers" in html_page(console.get(f"/namespaces/{ns}/insights"))
    _, stranger_key = user_with_key(stratus, seeded.tenant.api_key, "ro@observed.example", "read")
    with all_signed_in(stratus, stranger_key) as (console,):
        html_page(console.get(f"/namespaces/{ns}/insights"), 404)
