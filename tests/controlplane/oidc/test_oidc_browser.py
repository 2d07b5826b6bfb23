"""The same sign-in in headless Chromium (Debian's, driven by playwright), and `stratus login`
/ `stratus logout` through the CLI's loopback."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import httpx
from oidc_support import OidcStratus
from playwright.sync_api import sync_playwright
from support import STRATUS
from test_oidc_sign_in import run_to_callback

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_sign_in_in_headless_chromium(oidc: OidcStratus, owner_key: str) -> None:
    """A real browser follows the redirects, fills the IdP's forms and ends with an HttpOnly
    session cookie that the API accepts."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(oidc.login_url())
            page.fill('input[name="login"]', "alice")
            page.fill('input[name="password"]', "any")
            page.click('button[type="submit"]')
            page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached")
            page.click('button[type="submit"]')
            page.wait_for_url(re.compile(r".*/api/v1/auth/oidc/test-idp/callback.*"))
            session = json.loads(page.inner_text("body"))
            assert session["email"] == "alice@example.com"
            cookies = {c["name"]: c for c in page.context.cookies()}
            cookie = cookies["stratus_session"]
            assert cookie["httpOnly"] is True
            assert cookie["sameSite"] == "Lax"
            assert "stratus_oidc_state" not in cookies
        finally:
            browser.close()
    with httpx.Client(cookies={"stratus_session": cookie["value"]}) as client:
        listed = client.get(f"{oidc.stratus.api_url}/api/v1/namespaces")
    assert listed.status_code == 200, listed.text


def test_cli_login_stores_a_session_and_logout_ends_it(
    oidc: OidcStratus, owner_key: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    env.update({"STRATUS_API_URL": oidc.stratus.api_url, "STRATUS_CONFIG_DIR": str(tmp_path)})
    login = subprocess.Popen(
        [STRATUS, "login", "--provider", "test-idp", "--no-browser", "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert login.stderr is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url.startswith("http") and time.monotonic() < deadline:
            url = login.stderr.readline().strip()
        with httpx.Client(timeout=30) as browser:
            callback = run_to_callback(oidc, browser, "alice", url=url)
            # The API hands the browser over to the CLI's loopback with a one-time code.
            handed = browser.get(callback)
            assert handed.status_code == 302
            assert handed.headers["location"].startswith("http://127.0.0.1:")
            assert browser.get(handed.headers["location"]).status_code == 200
        out, err = login.communicate(timeout=30)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, err
    assert "signed in as alice@example.com" in out
    session_file = tmp_path / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    token = json.loads(session_file.read_text())["session_token"]

    listed = subprocess.run(
        [STRATUS, "namespace", "list"], env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr

    logout = subprocess.run(
        [STRATUS, "logout"], env=env, capture_output=True, text=True, check=False
    )
    assert logout.returncode == 0, logout.stderr
    assert not session_file.exists()
    with httpx.Client(cookies={"stratus_session": token}) as stale:
        assert stale.get(f"{oidc.stratus.api_url}/api/v1/namespaces").status_code == 401
