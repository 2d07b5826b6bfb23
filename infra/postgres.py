"""A private PostgreSQL for tests and benches: Debian's server binaries on a free 127.0.0.1 port.

:func:`postgres_for_tests` yields the server named by ``STRATUS_TEST_DATABASE_URL`` when it is set
(an admin URL: its user may create databases), otherwise starts one with :func:`run_postgres`,
which runs ``initdb`` and ``postgres`` as the ``postgres`` user when started as root (initdb
refuses root), keeps the server's PID and stops it by that PID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url

__all__ = ["PostgresServer", "postgres_for_tests", "run_postgres"]

TEST_DATABASE_URL_ENV = "STRATUS_TEST_DATABASE_URL"
# Debian's postgresql-NN packages install the server binaries here (not on PATH).
DEBIAN_BIN_DIRS = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PostgresServer:
    """A reachable PostgreSQL server and an admin URL (``postgresql+psycopg://``) on it."""

    admin_url: str
    # The server's Unix-socket directory when this machine started it (else None).
    socket_dir: str | None = None

    def database_url(self, name: str, *, unix_socket: bool = False) -> str:
        """The SQLAlchemy URL of database ``name`` on this server; with ``unix_socket``, over
        the server's Unix socket instead of TCP (libpq's ``host=<directory>``)."""
        url = make_url(self.admin_url).set(database=name)
        if unix_socket:
            if self.socket_dir is None:
                raise ValueError("this server's Unix socket is not known (started elsewhere)")
            # URL.set ignores None: rebuild without host and port.
            url = url._replace(host=None, port=None).update_query_dict(
                {"host": self.socket_dir, "port": str(url.port or 5432)}
            )
        return url.render_as_string(hide_password=False)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        url = make_url(self.admin_url).set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); return its URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with self._connect() as conn:
            conn.execute(statement)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, closing any connection still open to it."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with self._connect() as conn:
            conn.execute(statement)

    def unique_database(self, prefix: str, *, template: str | None = None) -> str:
        """Create a database named ``prefix`` plus a random suffix; return its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.create_database(name, template=template)
        return name


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _bin_dir() -> Path:
    """The newest Debian server version's binaries, else wherever ``postgres`` is on PATH."""
    versions = [path for path in DEBIAN_BIN_DIRS.glob("*/bin") if (path / "initdb").exists()]
    if versions:
        return max(versions, key=lambda path: int(path.parent.name.split(".")[0]))
    found = shutil.which("postgres")
    if found is None:
        raise RuntimeError("PostgreSQL server binaries not found (Debian: apt install postgresql)")
    return Path(found).parent


@contextlib.contextmanager
def run_postgres(
    *, listen_host: str = "127.0.0.1", startup_timeout: float = 60.0
) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL (trust auth, user ``postgres``) on a free port of
    ``listen_host`` (127.0.0.1; the multi-host test: a simulated host's address),
    its data and socket directory in a temporary directory; stop it by PID and remove it all."""
    bin_dir = _bin_dir()
    # As root, the server runs as `postgres`: it must own the directory (not under pytest's
    # root-only tmp path, which `postgres` could not enter).
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="stratus-pg-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        if user is not None:
            shutil.chown(base, user=user, group=user)
        data_dir = base / "data"
        log_path = base / "postgres.log"
        initdb = [str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            [*initdb, "--no-sync", "-E", "UTF8", "--locale=C"],
            user=user,
            group=user,
            extra_groups=[] if user else None,
            check=True,
            capture_output=True,
        )
        if listen_host != "127.0.0.1":
            # Clients on the simulated host's own network (initdb trusts loopback only).
            with (data_dir / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")
        port = _free_port(listen_host)
        args = [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port), "-k", str(base)]
        # A test database: durability buys nothing and costs every commit an fsync.
        for setting in (
            f"listen_addresses={listen_host}",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ):
            args += ["-c", setting]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        server = PostgresServer(
            f"postgresql+psycopg://postgres@{listen_host}:{port}/postgres", socket_dir=str(base)
        )
        _wait_ready(server, process, log_path, startup_timeout)
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(
    server: PostgresServer, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited {process.returncode}: {log_path.read_text()}")
        try:
            with server._connect():
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGINT: PostgreSQL's fast shutdown (ends sessions, no waiting for clients to leave).
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def postgres_for_tests() -> Iterator[PostgresServer]:
    """The server of ``STRATUS_TEST_DATABASE_URL`` if set, else a private one (run_postgres)."""
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    if url:
        yield PostgresServer(url)
        return
    with run_postgres() as server:
        yield server
