"""Apply Alembic migrations (automatically on the API's start, or ``stratus migrate``) and tell
whether a database is at this code's head revisions (``/readyz``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from controlplane.kit.db import private_sqlite_file

_VERSION_TABLE = "alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def sync_url(url: str) -> str:
    """The synchronous driver URL for an async one (Alembic runs synchronously)."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is a ConfigParser: "%" starts an interpolation, so a URL with
    # percent-encoding (a password with "@", a Unix-socket host=/path) must be escaped.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    # Migrations usually create the database: as a 0600 file (kit.db.private_sqlite_file).
    private_sqlite_file(url)
    # Domains may add migration branches; every head is applied.
    command.upgrade(alembic_config(url), "heads")


def head_revisions(url: str) -> set[str]:
    """The revisions this code's migrations end at (one per branch)."""
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    """The revisions the database is at (read only: nothing is migrated). Read from Alembic's
    version table directly: its MigrationContext logs two lines per call, once per /readyz."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return set()
    rows = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}"))  # noqa: S608
    return {row[0] for row in rows}
