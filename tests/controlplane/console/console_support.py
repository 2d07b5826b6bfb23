"""Signing a browser-less client into the console with a one-time link, as `stratus console`
does (the API hands out the link, the client spends it)."""

from __future__ import annotations

import re

import httpx
from support import StratusUp

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


def signed_in(stratus: StratusUp, api_key: str) -> httpx.Client:
    """A console client holding the web session of ``api_key``'s user (cookie jar)."""
    client = httpx.Client(base_url=stratus.api_url, timeout=30)
    spent = client.post(console_link(stratus, api_key))
    assert spent.status_code == 303, spent.text
    assert spent.headers["location"] == "/namespaces"
    return client


def csrf_token(client: httpx.Client) -> str:
    """The session's CSRF token, as the console's forms carry it."""
    session = client.get("/api/v1/auth/session")
    assert session.status_code == 200, session.text
    token: str = session.json()["csrf_token"]
    return token
