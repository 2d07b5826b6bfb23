"""A cell frontend that demands a client certificate: Debian's nginx ``stream`` module
terminating mTLS in front of a plaintext Temporal dev server, for tests and benches.

A registered (external) cell is reached only over TLS with Stratus's client certificate. The dev
server speaks no TLS, so :func:`run_cell_frontend` puts nginx in front of it, as a platform team
would put a TLS terminator in front of a cluster: ``ssl_verify_client on`` refuses any client
certificate not issued by the frontend's client CA, and ``ssl_alpn h2`` lets gRPC clients (which
insist on ALPN ``h2``) through. A second listener can front the cell's Prometheus endpoint the
same way (https with a client certificate), for the meters.

nginx runs in the foreground (``daemon off``) with a private prefix, configuration, PID file and
logs in a temporary directory, on free 127.0.0.1 ports, and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from auth import KeyPair, generate_ca, generate_leaf
from dataplane.cells import CellTls

__all__ = ["CellFrontend", "run_cell_frontend"]

# Debian's libnginx-mod-stream installs the module here (loaded explicitly: the private
# configuration includes none of /etc/nginx).
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
DEFAULT_SERVER_NAME = "frontend.cell.stratus.test"


@dataclass(frozen=True)
class CellFrontend:
    """A running mTLS frontend: where it listens, its PKI and where its files are."""

    # host:port of the TLS listener in front of the cell's gRPC frontend.
    address: str
    # https URL of the cell's metrics through the frontend ("" when not fronted).
    metrics_url: str
    # The name in the frontend's server certificate (not the address: clients must set it).
    server_name: str
    # Signs the frontend's server certificate (what clients verify).
    server_ca: KeyPair
    # The only CA whose client certificates the frontend accepts.
    client_ca: KeyPair
    # A client certificate of client_ca: what Stratus presents.
    client: KeyPair
    directory: Path

    @property
    def error_log(self) -> Path:
        """nginx's log: handshake refusals are logged here (``info`` level)."""
        return self.directory / "error.log"

    def tls(
        self,
        *,
        server_name: str | None = None,
        ca: KeyPair | None = None,
        client: KeyPair | None = None,
    ) -> CellTls:
        """The TLS a client needs to reach this frontend; any part may be swapped for a wrong
        one (another CA, another server name, a foreign client certificate)."""
        chosen = client or self.client
        return CellTls(
            ca_pem=(ca or self.server_ca).cert_pem.decode(),
            cert_pem=chosen.cert_pem.decode(),
            key_pem=chosen.key_pem.decode(),
            server_name=self.server_name if server_name is None else server_name,
        )

    def path(self, name: str) -> Path:
        """A PEM file of the frontend's PKI: ``server-ca.pem``, ``client-ca.pem``,
        ``client.pem``, ``client.key`` (for CLIs that take files)."""
        return self.directory / name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_block(port: int, upstream: str, *, alpn_h2: bool) -> str:
    alpn = "        ssl_alpn h2;\n" if alpn_h2 else ""
    return (
        "    server {\n"
        f"        listen 127.0.0.1:{port} ssl;\n"
        "        ssl_certificate server.pem;\n"
        "        ssl_certificate_key server.key;\n"
        "        ssl_client_certificate client-ca.pem;\n"
        "        ssl_verify_client on;\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"{alpn}"
        f"        proxy_pass {upstream};\n"
        "    }\n"
    )


def _config(directory: Path, grpc_port: int, grpc_upstream: str, metrics: str) -> str:
    return (
        f"load_module {STREAM_MODULE};\n"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 512; }\n"
        "stream {\n" + _server_block(grpc_port, grpc_upstream, alpn_h2=True) + metrics + "}\n"
    )


@contextlib.contextmanager
def run_cell_frontend(
    upstream: str,
    *,
    metrics_upstream: str | None = None,
    server_name: str = DEFAULT_SERVER_NAME,
    startup_timeout: float = 15.0,
) -> Iterator[CellFrontend]:
    """Front the plaintext gRPC frontend at ``upstream`` (host:port) — and, if given, the
    plaintext metrics endpoint at ``metrics_upstream`` (host:port) — with mTLS on free
    127.0.0.1 ports. Generates a server CA and a certificate for ``server_name``, and a client
    CA and one client certificate; stops nginx by its PID and removes its files."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not STREAM_MODULE.exists():
        raise RuntimeError(
            f"nginx stream module missing ({STREAM_MODULE}); "
            "apt-get install --no-install-recommends libnginx-mod-stream"
        )
    directory = Path(tempfile.mkdtemp(prefix="stratus-cell-frontend-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        server_ca = generate_ca("cell frontend CA")
        server = generate_leaf(server_ca, server_name, server_sans=[server_name])
        client_ca = generate_ca("cell client CA")
        client = generate_leaf(client_ca, "stratus")
        for name, pem in (
            ("server-ca.pem", server_ca.cert_pem),
            ("server.pem", server.cert_pem),
            ("server.key", server.key_pem),
            ("client-ca.pem", client_ca.cert_pem),
            ("client.pem", client.cert_pem),
            ("client.key", client.key_pem),
        ):
            (directory / name).write_bytes(pem)
        grpc_port = _free_port()
        ports = [grpc_port]
        metrics_block, metrics_url = "", ""
        if metrics_upstream is not None:
            metrics_port = _free_port()
            ports.append(metrics_port)
            metrics_block = _server_block(metrics_port, metrics_upstream, alpn_h2=False)
            metrics_url = f"https://127.0.0.1:{metrics_port}/metrics"
        config = directory / "nginx.conf"
        config.write_text(_config(directory, grpc_port, upstream, metrics_block))
        with (directory / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(
                [nginx, "-p", f"{directory}/", "-c", str(config), "-e", "error.log"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        _wait_listening(process, ports, directory, startup_timeout)
        yield CellFrontend(
            address=f"127.0.0.1:{grpc_port}",
            metrics_url=metrics_url,
            server_name=server_name,
            server_ca=server_ca,
            client_ca=client_ca,
            client=client,
            directory=directory,
        )
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(
    process: subprocess.Popen[bytes], ports: list[int], directory: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            logs = "".join(
                path.read_text(errors="replace")
                for path in (directory / "stderr.log", directory / "error.log")
                if path.exists()
            )
            raise RuntimeError(f"nginx exited {process.returncode}: {logs}")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx not listening on 127.0.0.1:{pending[0]}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGTERM: nginx's fast shutdown (the master stops its worker and exits).
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
