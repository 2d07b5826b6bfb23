"""Sign-in test support: a real OIDC provider (npm ``oidc-provider`` under node), a tiny
token-forging IdP stub for the ID-token refusals, and a ``stratus up`` configured with both."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support import StratusUp, free_port

IDP_DIR = Path(__file__).resolve().parents[3] / "infra" / "oidc-idp"
CLIENT_ID = "stratus"
CLIENT_SECRET = "stratus-test-secret"
# Logins of the real IdP (the dev interactions accept any password).
IDP_USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True},
    "mallory": {"email": "mallory@example.com", "email_verified": True},
    "carol": {"email": "carol@example.com", "email_verified": False},
    # Invited with an invitation that expires (test_oidc_sign_in).
    "dave": {"email": "dave@example.com", "email_verified": True},
    # One person whose IdP groups change between sign-ins (test_group_claims_oidc): Stratus
    # matches by email, so each login is erin with other groups, or none, or no claim.
    "erin": {"email": "erin@example.com", "email_verified": True, "groups": ["eng", "other"]},
    "erin-nogroups": {"email": "erin@example.com", "email_verified": True, "groups": []},
    "erin-noclaim": {"email": "erin@example.com", "email_verified": True},
    # Deprovisioned and reprovisioned by SCIM (test_oidc_sign_in).
    "frank": {"email": "frank@example.com", "email_verified": True},
}


@dataclass
class RealIdp:
    issuer: str
    process: subprocess.Popen[bytes]

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"


@dataclass
class ForgeIdp:
    """Serves discovery, a JWKS and the authorize/token endpoints; the ID token it returns is
    whatever ``mint(nonce)`` makes, so tests can hand Stratus a precisely wrong token."""

    issuer: str
    key: RSAKey
    server: ThreadingHTTPServer
    mint: Callable[[str | None], str] | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def sign(self, claims: dict[str, Any], *, key: RSAKey | None = None) -> str:
        return jwt.encode({"alg": "RS256", "kid": "forge-1"}, claims, key or self.key)

    def claims(self, nonce: str | None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "forge-alice",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": "alice@example.com",
            "email_verified": True,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}


@dataclass
class OidcStratus:
    stratus: StratusUp
    idp: RealIdp
    forge: ForgeIdp

    def login_url(self, provider: str = "test-idp", **params: str) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.stratus.api_url}/api/v1/auth/oidc/{provider}/login{query}"

    def callback_url(self, provider: str = "test-idp") -> str:
        return f"{self.stratus.api_url}/api/v1/auth/oidc/{provider}/callback"


def _start_real_idp(port: int, redirect_uris: list[str], log: Path) -> RealIdp:
    env = {
        **os.environ,
        "OIDC_IDP_PORT": str(port),
        "OIDC_IDP_CLIENT_ID": CLIENT_ID,
        "OIDC_IDP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_IDP_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_IDP_USERS": json.dumps(IDP_USERS),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["node", str(IDP_DIR / "server.mjs")],
            cwd=IDP_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while "listening on" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"oidc-provider did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return RealIdp(issuer=f"http://127.0.0.1:{port}", process=process)


def _s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def _start_forge(port: int) -> ForgeIdp:
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(2048, parameters={"kid": "forge-1", "alg": "RS256", "use": "sig"})
    pending: dict[str, dict[str, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def _json(self, body: object, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": issuer,
                        "authorization_endpoint": issuer + "/authorize",
                        "token_endpoint": issuer + "/token",
                        "jwks_uri": issuer + "/jwks",
                    }
                )
            elif url.path == "/jwks":
                self._json(KeySet([key]).as_dict(private=False))
            elif url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                code = f"code-{len(pending)}"
                pending[code] = query
                self.send_response(302)
                target = (
                    query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                )
                self.send_header("Location", target)
                self.end_headers()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            forge.token_requests.append(form)
            request = pending.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if request is None or _s256(verifier) != request.get("code_challenge"):
                self._json({"error": "invalid_grant"}, status=400)
                return
            assert forge.mint is not None
            self._json(
                {
                    "access_token": "x",
                    "token_type": "Bearer",
                    "id_token": forge.mint(request.get("nonce")),
                }
            )

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    forge = ForgeIdp(issuer=issuer, key=key, server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return forge


@pytest.fixture(scope="session")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcStratus]:
    """``stratus up`` with two providers: ``test-idp`` (real oidc-provider) and ``forge``."""
    data_dir = tmp_path_factory.mktemp("oidc")
    api_port, idp_port, forge_port = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    idp = _start_real_idp(
        idp_port, [f"{api}/api/v1/auth/oidc/test-idp/callback"], data_dir / "idp.log"
    )
    forge = _start_forge(forge_port)
    providers = [
        {
            "name": "test-idp",
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "openid email groups",
        },
        {
            "name": "forge",
            "issuer": forge.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ]
    up = StratusUp(
        data_dir / "stratus",
        api_port,
        free_port(),
        extra_env={
            "STRATUS_OIDC_PROVIDERS": json.dumps(providers),
            "STRATUS_SESSION_LIFETIME_SECONDS": "3600",
        },
    )
    try:
        up.start()
        yield OidcStratus(stratus=up, idp=idp, forge=forge)
    finally:
        up.cleanup()
        forge.server.shutdown()
        forge.server.server_close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(idp.process.pid, signal.SIGTERM)
        try:
            idp.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            idp.process.kill()


@pytest.fixture(scope="session")
def owner_key(oidc: OidcStratus) -> str:
    """alice@example.com is invited (owner of an account); carol's email is unverified."""
    with oidc.stratus.operator() as operator:
        created = operator.create_account("Alice Co", "alice@example.com")
        operator.create_account("Carol Co", "carol@example.com")
    return created.owner_api_key.token
