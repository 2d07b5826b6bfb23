"""The mTLS listener: terminates TLS per namespace and hands plaintext HTTP/2 to gRPC.

grpcio's server verifies client certificates during the handshake against one trust bundle,
with no verify callback and no credentials per server name, so the gateway terminates TLS
itself (``ssl`` with an SNI callback, see ``_tls``) and relays each connection's bytes to an
in-process gRPC server listening on loopback. The relay's own loopback port identifies the
connection: before it forwards a byte it records which namespace and client certificate the
handshake established for that port, and the gRPC handlers look that identity up by
``context.peer()``. A connection to the loopback server that the relay did not open has no
identity and every call on it is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from typing import cast

from dataplane.gateway._tls import NamespaceContexts, PeerIdentity

logger = logging.getLogger(__name__)

_BACKEND_HOST = "127.0.0.1"
# Pause reading one side while the other has this much unsent.
_HIGH_WATER = 1024 * 1024
_READ_SIZE = 256 * 1024
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


class PeerRegistry:
    """Identities of relayed connections, keyed by the gRPC peer string of their relay port."""

    def __init__(self) -> None:
        self._peers: dict[str, PeerIdentity] = {}

    def __len__(self) -> int:
        return len(self._peers)

    @staticmethod
    def key(port: int) -> str:
        return f"ipv4:{_BACKEND_HOST}:{port}"

    def get(self, peer: str) -> PeerIdentity | None:
        return self._peers.get(peer)

    def add(self, port: int, identity: PeerIdentity) -> str:
        key = self.key(port)
        self._peers[key] = identity
        return key

    def discard(self, key: str) -> None:
        self._peers.pop(key, None)


class _Backend(asyncio.Protocol):
    """The relay's plaintext connection to the loopback gRPC server."""

    def __init__(self, client: _Client) -> None:
        self._client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self._client.send(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()

    def pause_writing(self) -> None:
        self._client.pause_reading()

    def resume_writing(self) -> None:
        self._client.resume_reading()


class _Client(asyncio.Protocol):
    """One worker connection: TLS over memory BIOs, relayed as plaintext to the gRPC server.

    The TLS layer is driven here rather than by the event loop's ``ssl=`` support so that a
    refused handshake still sends its alert (``unrecognized_name``, ``unknown_ca``,
    ``certificate_required``) before the connection closes: the client then says why.
    """

    def __init__(self, terminator: TlsTerminator) -> None:
        self._terminator = terminator
        self._transport: asyncio.Transport | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = terminator.contexts.default.wrap_bio(
            self._incoming, self._outgoing, server_side=True
        )
        self._handshaking = True
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._backend: _Backend | None = None
        self._pending: list[bytes] = []
        self._peer_key: str | None = None
        self._closed = False
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        if not self._terminator.admit_connection(self):
            self._closed = True
            transport.abort()
            return
        self._handshake_timer = asyncio.get_running_loop().call_later(
            self._terminator.handshake_timeout, self.close
        )

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._incoming.write(data)
        if self._handshaking and not self._handshake():
            return
        self._receive()

    def _handshake(self) -> bool:
        """Advance the handshake; True once it completed (and the relay is being opened)."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            # The alert is in the outgoing buffer: send it, then close.
            logger.debug("gateway TLS handshake refused: %s", exc)
            self._flush()
            self.close()
            return False
        self._handshaking = False
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._flush()
        identity = self._terminator.identity(self._tls)
        assert self._transport is not None
        self._transport.pause_reading()
        self._connecting = asyncio.get_running_loop().create_task(self._connect(identity))
        return True

    def _receive(self) -> None:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._forward(b"".join(chunks))
                self.close()
                return
            except (ssl.SSLError, OSError):
                self.close()
                return
            if not chunk:
                break
            chunks.append(chunk)
        # Reading may produce TLS records to send (TLS 1.3 key updates, alerts).
        self._flush()
        if chunks:
            self._forward(b"".join(chunks))

    def _forward(self, data: bytes) -> None:
        if not data:
            return
        backend = self._backend
        if backend is None or backend.transport is None:
            self._pending.append(data)
            return
        backend.transport.write(data)

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and self._transport is not None:
            self._transport.write(data)

    async def _connect(self, identity: PeerIdentity) -> None:
        loop = asyncio.get_running_loop()
        try:
            backend_transport, backend = await loop.create_connection(
                lambda: _Backend(self), _BACKEND_HOST, self._terminator.backend_port
            )
        except OSError:
            logger.warning("gateway relay could not reach its gRPC server", exc_info=True)
            self.close()
            return
        if self._closed:
            backend_transport.close()
            return
        port = backend_transport.get_extra_info("sockname")[1]
        # Recorded before the first byte reaches the gRPC server, removed when either side ends.
        self._peer_key = self._terminator.registry.add(port, identity)
        self._backend = backend
        for chunk in self._pending:
            backend_transport.write(chunk)
        self._pending.clear()
        if self._transport is not None:
            self._transport.resume_reading()

    def eof_received(self) -> bool:
        # TLS has no half-close worth relaying to gRPC; end the relay.
        return False

    def send(self, data: bytes) -> None:
        """Encrypt bytes from the gRPC server and send them to the worker."""
        if self._closed:
            return
        try:
            self._tls.write(data)
        except (ssl.SSLError, OSError):
            self.close()
            return
        self._flush()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        if self._backend is not None and self._backend.transport is not None:
            self._backend.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._backend is not None and self._backend.transport is not None:
            self._backend.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        self._terminator.release_connection(self)
        if self._peer_key is not None:
            self._terminator.registry.discard(self._peer_key)
        if self._backend is not None and self._backend.transport is not None:
            self._backend.transport.close()
        if self._transport is not None:
            # close() sends what is buffered first (a refused handshake's alert).
            self._transport.close()


class TlsTerminator:
    """Accepts worker TLS connections on ``host:port`` and relays them to ``backend_port``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        contexts: NamespaceContexts,
        registry: PeerRegistry,
        backend_port: int,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self._host = host
        self._port = port
        self.contexts = contexts
        self.registry = registry
        self.backend_port = backend_port
        self._max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self._clients: set[_Client] = set()
        self._server: asyncio.Server | None = None

    @property
    def bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the TLS listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), self._host, self._port, reuse_address=True
        )

    def stop_accepting(self) -> None:
        """Accept no new connections; relayed ones carry on."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        """Stop accepting; end every relayed connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            client.close()
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def admit_connection(self, client: _Client) -> bool:
        if len(self._clients) >= self._max_connections:
            logger.warning("gateway at %d connections; refusing another", self._max_connections)
            return False
        self._clients.add(client)
        return True

    def release_connection(self, client: _Client) -> None:
        self._clients.discard(client)

    def identity(self, ssl_object: ssl.SSLObject) -> PeerIdentity:
        namespace = self.contexts.namespace_of(ssl_object.context)
        der = ssl_object.getpeercert(binary_form=True) if namespace is not None else None
        if not der:
            return PeerIdentity(namespace)
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        return PeerIdentity(namespace, pem, hashlib.sha256(pem).digest())
