"""Signing a browser-less client into the console with a one-time link, as `stratus console`
does (the API hands out the link, the client spends it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from identity_support import user_with_key
from playwright.sync_api import Browser, Page, sync_playwright
from support import StratusUp, Tenant

from controlplane.console import CONTENT_SECURITY_POLICY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = (
    Path(__file__).resolve().parents[3]
    / "controlplane/console/static/node_modules/axe-core/axe.min.js"
)
# Where screenshots also go when set (docs/console/ is refreshed this way).
SCREENSHOTS_ENV = "STRATUS_CONSOLE_SCREENSHOTS"

LINK_PATH = re.compile(r"^https?://[^/]+(/sign-in/link/[A-Za-z0-9_-]+)$")


def console_link(stratus: StratusUp, api_key: str) -> str:
    """The path of a fresh one-time link for the user of ``api_key``."""
    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"{stratus.api_url}/api/v1/auth/console-link",
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert response.status_code == 201, response.text
    match = LINK_PATH.match(response.json()["url"])
    assert match, response.text
    return match.group(1)


def signed_in(stratus: StratusUp, api_key: str, lands_on: str = "/namespaces") -> httpx.Client:
    """A console client holding the web session of ``api_key``'s user (cookie jar); the link
    sends it to ``lands_on``."""
    client = httpx.Client(base_url=stratus.api_url, timeout=30)
    spent = client.post(console_link(stratus, api_key))
    assert spent.status_code == 303, spent.text
    assert spent.headers["location"] == lands_on
    return client


@contextmanager
def all_signed_in(stratus: StratusUp, *api_keys: str) -> Iterator[list[httpx.Client]]:
    """A console client (``signed_in``) for each key, in order; closed on the way out."""
    clients = [signed_in(stratus, key) for key in api_keys]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def namespace_reader(
    stratus: StratusUp, tenant: Tenant, namespace_id: str, email: str
) -> tuple[str, str]:
    """A new ``read`` user of ``tenant`` holding ``read`` on ``namespace_id``: its id and its
    API key."""
    reader, reader_key = user_with_key(stratus, tenant.api_key, email, "read")
    with tenant.client(stratus) as client:
        client.set_namespace_access(namespace_id, reader["id"], "read")
    return reader["id"], reader_key


def html_page(response: httpx.Response, status: int = 200) -> str:
    """The console page ``response`` holds, once it has ``status``, the strict CSP and nothing
    the CSP would block (no inline script or style)."""
    assert response.status_code == status, response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["content-type"].startswith("text/html")
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)
    assert "<style" not in response.text
    assert " style=" not in response.text
    return response.text


def csrf_token(client: httpx.Client) -> str:
    """The session's CSRF token, as the console's forms carry it."""
    session = client.get("/api/v1/auth/session")
    assert session.status_code == 200, session.text
    token: str = session.json()["csrf_token"]
    return token


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium driven by playwright (never `playwright install`)."""
    assert AXE.is_file(), "run `make test-deps` (npm ci in controlplane/console/static)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def watch_csp(page: Page, reports: list[str] | None = None) -> list[str]:
    """The list (``reports``, or a new one) that collects what ``page``'s console says about
    Content Security Policy violations; a test asserts it stays empty."""
    collected = [] if reports is None else reports
    page.on(
        "console",
        lambda m: collected.append(m.text) if "Content Security" in m.text else None,
    )
    return collected


def console_page(browser: Browser, *, height: int = 800) -> tuple[Page, list[str]]:
    """A 1280 px wide page, and the list of its CSP violation reports (``watch_csp``)."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    return page, watch_csp(page)


def sign_in_by_link(page: Page, stratus: StratusUp, api_key: str, lands_on: str) -> None:
    """Spend a fresh one-time link for ``api_key``'s user in the browser, and wait for the
    page it lands on (a ``wait_for_url`` pattern)."""
    page.goto(stratus.api_url + console_link(stratus, api_key))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lands_on)


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (evaluated through the
    DevTools protocol, which the page's CSP does not govern)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))"""
    )
    return violations


def screenshot(page: Page, tmp_path: Path, name: str, *, full_page: bool = False) -> None:
    """Save ``name``.png under the test's tmp dir, and under $STRATUS_CONSOLE_SCREENSHOTS
    when that is set."""
    page.screenshot(path=tmp_path / f"{name}.png", full_page=full_page)
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=Path(extra) / f"{name}.png", full_page=full_page)


def assert_no_sideways_scroll(page: Page, path: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
