"""The namespace list is paged (an account may hold thousands): pages by name with previous and
next links, the live rows of the page shown, the count scoped to what the viewer may read, and
a clear refusal of a page or page size out of range."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from console_support import signed_in
from identity_support import user_with_key
from support import StratusUp, Tenant, new_tenant

NAMES = ("alpha", "bravo", "charlie")
ROW = re.compile(r'<a href="/namespaces/([^"]+)">')


@dataclass
class Listed:
    tenant: Tenant
    owner: httpx.Client
    reader: httpx.Client
    ids: list[str]


@pytest.fixture(scope="module")
def listed(stratus: StratusUp) -> Iterator[Listed]:
    tenant = new_tenant(stratus, "Paged")
    with tenant.client(stratus) as client:
        created = [
            client.create_namespace(name, tenant.ca.cert_pem.decode(), retention_days=7)
            for name in NAMES
        ]
        reader, reader_key = user_with_key(stratus, tenant.api_key, "reader@paged.example", "read")
        client.set_namespace_access(created[1].namespace.id, reader["id"], "read")
    owner, browser = signed_in(stratus, tenant.api_key), signed_in(stratus, reader_key)
    try:
        yield Listed(tenant, owner, browser, [c.namespace.id for c in created])
    finally:
        owner.close()
        browser.close()
        with tenant.client(stratus) as client:
            for operation in created:
                client.wait_for_operation(operation.async_operation.id, timeout=120)


def _rows(html: str) -> list[str]:
    return ROW.findall(html)


def test_the_list_pages_by_name_with_previous_and_next(listed: Listed) -> None:
    first = listed.owner.get("/namespaces", params={"page_size": 2})
    assert first.status_code == 200, first.text
    assert _rows(first.text) == listed.ids[:2]
    assert "Namespaces 1 to 2 of 3, by name." in first.text
    assert '<a href="/namespaces?page=2&amp;page_size=2" rel="next">' in first.text
    assert 'rel="prev"' not in first.text

    second = listed.owner.get("/namespaces", params={"page": 2, "page_size": 2})
    assert _rows(second.text) == listed.ids[2:]
    assert "Namespaces 3 to 3 of 3, by name." in second.text
    assert '<a href="/namespaces?page_size=2" rel="prev">' in second.text
    assert 'rel="next"' not in second.text
    # While a namespace of the page is still changing, the page polls its own rows only.
    polled = re.search(r'hx-get="([^"]+)"', second.text)
    if polled:
        assert polled.group(1) == "/namespaces/rows?page=2&amp;page_size=2"
    rows = listed.owner.get("/namespaces/rows", params={"page": 2, "page_size": 2})
    assert rows.status_code == 200
    assert _rows(rows.text) == listed.ids[2:]

    whole = listed.owner.get("/namespaces")
    assert _rows(whole.text) == listed.ids
    assert 'rel="next"' not in whole.text
    beyond = listed.owner.get("/namespaces", params={"page": 9})
    assert beyond.status_code == 200
    assert _rows(beyond.text) == []
    assert "No namespaces on this page." in beyond.text


def test_the_count_covers_only_what_the_viewer_may_read(listed: Listed) -> None:
    page = listed.reader.get("/namespaces", params={"page_size": 1})
    assert _rows(page.text) == [listed.ids[1]]
    assert "Namespaces 1 to 1 of 1, by name." in page.text
    assert 'rel="next"' not in page.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": "0"}, "page must be a whole number from 1 to 1,000,000"),
        ({"page": "two"}, "page must be a whole number from 1 to 1,000,000"),
        ({"page_size": "201"}, "page_size must be a whole number from 1 to 200"),
        ({"page_size": "-1"}, "page_size must be a whole number from 1 to 200"),
    ],
)
def test_a_page_out_of_range_is_refused_clearly(
    listed: Listed, params: dict[str, str], message: str
) -> None:
    for path in ("/namespaces", "/namespaces/rows"):
        refused = listed.owner.get(path, params=params)
        assert refused.status_code == 400, refused.text
        assert message in refused.text
