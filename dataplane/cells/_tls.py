"""How Stratus reaches a cell's Temporal frontend: plaintext for a local cell on loopback, TLS
with the cell's client certificate for a registered (external) cell.

Every component that talks to a cell (the gateway's upstream channels, the provisioning
activities, the meters, the health probe) builds its connection from the cell's
:class:`CellTls` here, so that all of them verify the same CA and server name and present the
same client certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc
    import grpc.aio
    from temporalio.service import TLSConfig


@dataclass(frozen=True)
class CellTls:
    """TLS to a cell's frontend: the CA bundle that signs the frontend's certificate, the
    client certificate (chain) and key Stratus presents, and the name the frontend's certificate
    must carry (empty: the host of the cell's address)."""

    ca_pem: str
    cert_pem: str
    key_pem: str = field(repr=False)
    server_name: str = ""


def temporal_tls_config(tls: CellTls | None) -> TLSConfig | bool:
    """``tls=`` for ``temporalio.client.Client.connect``: False (plaintext) without TLS."""
    if tls is None:
        return False
    from temporalio.service import TLSConfig

    return TLSConfig(
        server_root_ca_cert=tls.ca_pem.encode(),
        client_cert=tls.cert_pem.encode(),
        client_private_key=tls.key_pem.encode(),
        domain=tls.server_name or None,
    )


def grpc_channel(
    address: str, tls: CellTls | None, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to the cell: insecure without TLS, else verified against the
    cell's CA and server name, presenting the cell's client certificate."""
    import grpc
    import grpc.aio

    opts = list(options or [])
    if tls is None:
        return grpc.aio.insecure_channel(address, options=opts)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem.encode(),
        private_key=tls.key_pem.encode(),
        certificate_chain=tls.cert_pem.encode(),
    )
    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(address, credentials, options=opts)
