"""Per-namespace TLS: the server name a client asks for picks the only CAs its certificate
may chain to.

A TLS listener with one trust store that holds every tenant's CAs lets one tenant's upload
decide whether another tenant's certificates verify (a bundle that stops the TLS stack
loading, a CA with the same subject as a victim's that chain building picks first). So the
gateway keeps one ``ssl.SSLContext`` per routed namespace, trusting only that namespace's
canonical bundle, and selects it during the handshake from the client's server name
(``<namespace id>.<domain>``, as Temporal Cloud's ``<namespace>.<account>.tmprl.cloud``).
A handshake whose server name names no namespace the gateway serves is ended with the TLS
alert ``unrecognized_name``.

OpenSSL keeps the verify mode of the context a connection started with when the SNI callback
switches contexts (only certificates and the trust store follow the switch), so the starting
context asks for a client certificate (``CERT_OPTIONAL``) and a connection that sends none is
refused per call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from auth import KeyPair, generate_private_key_pem, issue_server_certificate
from dataplane.gateway._routes import Route, RouteTable

logger = logging.getLogger(__name__)

# The embedded default: `<namespace id>.stratus.localhost` (no DNS needed: the SDK connects
# to the gateway's address and sends this name in TLS, e.g. temporalio's TLSConfig(domain=)).
DEFAULT_DOMAIN = "stratus.localhost"
# Server certificates the gateway issues for namespace names; re-issued a week before expiry.
_SERVER_CERT_DAYS = 30
_REISSUE_BEFORE = 7 * 24 * 3600.0
_ALPN = ["h2"]


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is at the other end of one TLS connection, as the handshake established it."""

    # The namespace the connection's server name bound it to; None when it named none.
    namespace: str | None
    # The client certificate (PEM) that verified against that namespace's CAs; b"" if none.
    certificate_pem: bytes = b""
    certificate_id: bytes = b""


class ServerNames:
    """Maps namespace ids to TLS server names under the gateway's domain and back."""

    def __init__(self, domain: str = DEFAULT_DOMAIN) -> None:
        self.domain = domain.strip().strip(".").lower()
        if not self.domain:
            raise ValueError("the gateway's server-name domain must not be empty")
        self._suffix = "." + self.domain

    def for_namespace(self, namespace_id: str) -> str:
        return namespace_id + self._suffix

    def namespace_of(self, server_name: str | None) -> str | None:
        """The namespace id a server name asks for, or None when it is not under the domain."""
        if not server_name:
            return None
        name = server_name.lower().rstrip(".")
        if not name.endswith(self._suffix):
            return None
        return name[: -len(self._suffix)] or None


@dataclass(slots=True)
class _NamespaceContext:
    fingerprint: str
    context: ssl.SSLContext


class NamespaceContexts:
    """One server ``SSLContext`` per routed namespace, selected by SNI during the handshake.

    Each context requires a client certificate and trusts exactly the namespace's canonical
    CA bundle; after loading, the context's CA list is compared with the bundle, so a
    namespace is served only when its own CAs are in force (``apply`` reports the others).
    Server certificates for namespace names are issued by ``issuer`` over one key.
    """

    def __init__(
        self,
        *,
        names: ServerNames,
        default_cert_pem: bytes,
        default_key_pem: bytes,
        issuer: KeyPair,
        workdir: Path | None = None,
    ) -> None:
        self.names = names
        self._issuer = issuer
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="stratus-gateway-tls-")
            workdir = Path(self._tempdir.name)
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o700)
        self._workdir = workdir
        self._server_key = self._write("server.key", generate_private_key_pem())
        self._issued: dict[str, tuple[Path, float]] = {}
        self._contexts: dict[str, _NamespaceContext] = {}
        self._by_context: dict[int, str] = {}
        self.default = self._new_context(
            self._write("default.pem", default_cert_pem),
            self._write("default-key.pem", default_key_pem),
        )
        # Inherited by every connection (see the module docstring); the default context
        # itself trusts no CA and never completes a handshake.
        self.default.verify_mode = ssl.CERT_OPTIONAL
        self.default.sni_callback = self._select

    def close(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _write(self, name: str, data: bytes) -> Path:
        path = self._workdir / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return path

    def _new_context(self, cert_path: Path, key_path: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(_ALPN)
        context.load_cert_chain(cert_path, key_path)
        return context

    def _server_certificate(self, namespace_id: str) -> Path:
        name = self.names.for_namespace(namespace_id)
        issued = self._issued.get(name)
        now = time.time()
        if issued is not None and issued[1] - now > _REISSUE_BEFORE:
            return issued[0]
        pem = issue_server_certificate(
            self._issuer, self._server_key.read_bytes(), name, valid_days=_SERVER_CERT_DAYS
        )
        stem = hashlib.sha256(name.encode()).hexdigest()[:32]
        path = self._write(f"{stem}.pem", pem)
        self._issued[name] = (path, now + _SERVER_CERT_DAYS * 86400.0)
        return path

    def _build(self, route: Route) -> ssl.SSLContext:
        context = self._new_context(self._server_certificate(route.namespace_id), self._server_key)
        context.verify_mode = ssl.CERT_REQUIRED
        # A namespace may trust an intermediate CA on its own, as the per-request check does.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata=route.accepted_client_ca.pem)
        loaded = {bytes(der) for der in context.get_ca_certs(binary_form=True)}
        expected = {
            cert.public_bytes(Encoding.DER) for cert in route.accepted_client_ca.certificates
        }
        if loaded != expected:
            raise ssl.SSLError(
                f"{len(loaded)} of {len(expected)} CA certificates loaded into the trust store"
            )
        return context

    def apply(self, table: RouteTable) -> Mapping[str, str]:
        """Build contexts for new or changed namespaces, drop removed ones; returns the
        namespaces whose CAs could not be put in force, with the reason (they are not
        served: their handshakes fail rather than trust anything else)."""
        rejected: dict[str, str] = {}
        contexts: dict[str, _NamespaceContext] = {}
        for namespace_id, route in table.routes.items():
            fingerprint = route.accepted_client_ca.fingerprint
            current = self._contexts.get(namespace_id)
            if current is not None and current.fingerprint == fingerprint:
                contexts[namespace_id] = current
                continue
            try:
                contexts[namespace_id] = _NamespaceContext(fingerprint, self._build(route))
            except (ssl.SSLError, OSError, ValueError) as exc:
                reason = f"its client CA bundle could not be loaded: {exc}"
                logger.warning("namespace %s not served: %s", namespace_id, reason)
                rejected[namespace_id] = reason
        self._contexts = contexts
        self._by_context = {id(entry.context): ns for ns, entry in contexts.items()}
        return rejected

    def namespace_of(self, context: ssl.SSLContext) -> str | None:
        """The namespace whose context a finished handshake used (None: the default one)."""
        return self._by_context.get(id(context))

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        namespace_id = self.names.namespace_of(server_name)
        entry = None if namespace_id is None else self._contexts.get(namespace_id)
        if entry is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = entry.context
        return None
