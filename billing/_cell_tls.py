"""TLS to a registered cell, as the meters need it: verify the cell's CA (and server name),
present Stratus's client certificate.

Billing imports nothing of the data plane, so it declares the TLS material it needs as a
protocol; ``dataplane.cells.CellTls`` (what a cell's endpoint carries) satisfies it.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path
from typing import Protocol

from temporalio.service import TLSConfig

# SSL contexts kept by TLS material: a scrape every minute need not rebuild them.
_MAX_CONTEXTS = 64
_contexts: dict[tuple[str, str, str], ssl.SSLContext] = {}


class CellTlsMaterial(Protocol):
    """The CA of the cell's frontend, the client certificate (chain) and key to present, and
    the name the frontend's certificate must carry (empty: the host of the address)."""

    @property
    def ca_pem(self) -> str: ...

    @property
    def cert_pem(self) -> str: ...

    @property
    def key_pem(self) -> str: ...

    @property
    def server_name(self) -> str: ...


def ssl_context(tls: CellTlsMaterial) -> ssl.SSLContext:
    """A client context trusting only the cell's CA and presenting its client certificate."""
    key = (tls.ca_pem, tls.cert_pem, tls.key_pem)
    context = _contexts.get(key)
    if context is None:
        context = ssl.create_default_context(cadata=tls.ca_pem)
        # The ssl module loads a certificate chain from files only: a private directory that
        # is removed as soon as the chain is loaded.
        with tempfile.TemporaryDirectory(prefix="stratus-cell-tls-") as directory:
            cert, private_key = Path(directory, "client.pem"), Path(directory, "client.key")
            cert.write_text(tls.cert_pem)
            descriptor = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(tls.key_pem)
            context.load_cert_chain(cert, private_key)
        if len(_contexts) >= _MAX_CONTEXTS:
            _contexts.clear()
        _contexts[key] = context
    return context


def temporal_tls(tls: CellTlsMaterial | None) -> TLSConfig | bool:
    """``tls=`` for ``temporalio.client.Client.connect``: False (plaintext) without TLS."""
    if tls is None:
        return False
    return TLSConfig(
        server_root_ca_cert=tls.ca_pem.encode(),
        client_cert=tls.cert_pem.encode(),
        client_private_key=tls.key_pem.encode(),
        domain=tls.server_name or None,
    )
