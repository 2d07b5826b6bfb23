"""``stratus login`` (browser OIDC sign-in through a 127.0.0.1 loopback) and ``stratus logout``.

The CLI never sees the IdP's tokens: it opens ``/api/v1/auth/oidc/<provider>/login`` with its
loopback URL and an S256 challenge; after the sign-in the API redirects the browser to the
loopback with a one-time hand-off code, which the CLI trades, with its verifier, for a session.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from controlplane.cli._context import Context, fail

if TYPE_CHECKING:
    from http.server import HTTPServer

    import httpx

_DONE_PAGE = b"<!doctype html><title>Stratus</title><p>Signed in. You can close this window.</p>"


def _serve_once(timeout: float) -> tuple[HTTPServer, threading.Event, dict[str, str]]:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    result: dict[str, str] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if urlsplit(self.path).path != "/callback" or "code" not in query or done.is_set():
                self.send_error(404)
                return
            result["code"] = query["code"][0]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(_DONE_PAGE)
            done.set()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = timeout
    return server, done, result


def _pick_provider(http: httpx.Client, provider: str | None) -> str:
    if provider:
        return provider
    names = [p["name"] for p in http.get("/auth/oidc/providers").json().get("providers", [])]
    if len(names) == 1:
        return str(names[0])
    if not names:
        fail("this Stratus has no identity provider configured")
    fail(f"choose one with --provider: {', '.join(names)}")


def login(
    ctx: typer.Context,
    provider: Annotated[
        str | None, typer.Option(help="Identity provider (default: the only one)")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="Account, if your email is invited to several")
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the URL to open")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the sign-in")] = 300.0,
) -> None:
    """Sign in with your identity provider in the browser; later commands use the session
    when no --api-key is given."""
    import webbrowser

    import httpx

    from controlplane.cli._session_store import StoredSession, save_session

    c = Context.of(ctx)
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    server, done, result = _serve_once(timeout)
    with server, httpx.Client(base_url=c.api_url.rstrip("/") + "/api/v1", timeout=30) as http:
        name = _pick_provider(http, provider)
        params = {
            "cli_redirect": f"http://127.0.0.1:{server.server_port}/callback",
            "cli_challenge": challenge,
        }
        if account:
            params["account"] = account
        url = f"{c.api_url.rstrip('/')}/api/v1/auth/oidc/{name}/login?{urlencode(params)}"
        typer.echo(f"Open this URL to sign in:\n{url}", err=True)
        if not no_browser:
            webbrowser.open(url)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        received = done.wait(timeout)
        server.shutdown()
        if not received:
            fail("sign-in timed out")
        response = http.post(
            "/auth/cli/handoff", json={"code": result["code"], "verifier": verifier}
        )
        if response.is_error:
            problem = response.json()
            fail(f"{problem.get('detail')} [{response.status_code} {problem.get('type')}]")
        body = response.json()
    path = save_session(
        StoredSession(
            api_url=c.api_url,
            session_token=body["session_token"],
            csrf_token=body["csrf_token"],
            email=body["email"],
            account_id=body["account_id"],
            expires_at=body["expires_at"],
        )
    )
    typer.echo(f"signed in as {body['email']} (account {body['account_id']}); session in {path}")


def logout(ctx: typer.Context) -> None:
    """End the session stratus login stored, on the server and locally; or forget the API key
    account create --save stored."""
    import httpx

    from controlplane.cli._session_store import (
        forget_api_key,
        forget_session,
        load_api_key,
        load_session,
    )

    c = Context.of(ctx)
    saved_key = load_api_key(c.api_url)
    if saved_key is not None:
        forget_api_key()
        typer.echo(f"forgot the saved API key of {saved_key.email}")
        return
    stored = load_session(c.api_url)
    if stored is None:
        forget_session()
        typer.echo("not signed in")
        return
    with httpx.Client(base_url=c.api_url.rstrip("/") + "/api/v1", timeout=30) as http:
        response = http.post(
            "/auth/logout",
            cookies={"stratus_session": stored.session_token},
            headers={"X-CSRF-Token": stored.csrf_token},
        )
    forget_session()
    if response.status_code not in (204, 401):
        fail(f"logout failed: {response.status_code} {response.text}")
    typer.echo(f"signed out {stored.email}")
