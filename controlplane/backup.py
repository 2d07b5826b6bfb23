"""``stratus backup``: an online copy of an embedded Stratus's data dir, taken while it runs.

What a data dir holds, and how each part is copied:

- ``stratus.db`` (the control plane's SQLite database, when ``database_url`` is not set) and
  each local cell's ``cells/<cell>/temporal.db`` (its Temporal server's SQLite persistence:
  namespaces, workflow histories, schedules): SQLite's online backup API, which copies a
  consistent snapshot of each file while the API, the worker and the cells keep writing;
- ``cells/<cell>/cell.json``: the cell's ports (routes and the control plane point at them), its
  PID dropped (the restored cell is a new process);
- ``secrets.key`` (decrypts secrets stored in the database: without it they are lost),
  ``operator.key``, ``pki/`` (the gateway CA workers trust) and ``certs/`` (client certificates
  that ``namespace create --generate-certs`` wrote): copied as files.

Logs and ``run/`` are left out. The copy has the data dir's layout, so restoring is starting
Stratus on a copy of it (``stratus up --data-dir <copy>``); ``backup.json`` lists every file
with its size and SHA-256. A PostgreSQL database is not copied (``pg_dump`` or the server's own
backups, see docs/operations.md): the backup says so in ``backup.json`` and on stdout.

Each file is a consistent snapshot, taken one after the other (the control-plane database
first), not all at one instant: a namespace created while the backup runs may exist on its cell
but not in the database; the restored control plane never routes to it, and deleting it on the
cell is left to the operator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

BACKUP_MANIFEST = "backup.json"
_KEY_FILES = ("secrets.key", "operator.key")
_TREES = ("pki", "certs")
_SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


class BackupError(RuntimeError):
    """The backup could not be taken (the message says why); nothing usable was written."""


@dataclass
class BackupReport:
    destination: Path
    files: dict[str, dict[str, int | str]] = field(default_factory=dict)
    database: str = "sqlite"
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (WAL or not) through the backup API."""
    _private_dir(target.parent)
    src = sqlite3.connect(source, timeout=_SQLITE_BUSY_TIMEOUT_SECONDS)
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            # A self-contained file: no WAL beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as error:
        raise BackupError(f"could not copy {source}: {error}") from None
    finally:
        src.close()


def _copy_file(source: Path, target: Path) -> None:
    _private_dir(target.parent)
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)


def back_up(data_dir: Path, destination: Path, *, database_url: str | None) -> BackupReport:
    """Copy ``data_dir`` to ``destination`` (new or empty) while Stratus may be running."""
    data_dir = data_dir.expanduser().resolve()
    destination = destination.expanduser().resolve()
    if not (data_dir / "secrets.key").exists() and not (data_dir / "stratus.db").exists():
        raise BackupError(f"{data_dir} is not a Stratus data dir (no secrets.key, no stratus.db)")
    if destination == data_dir or destination.is_relative_to(data_dir):
        raise BackupError("the backup must be written outside the data dir")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError(f"{destination} exists and is not an empty directory")
    _private_dir(destination)
    report = BackupReport(destination)

    def record(relative: str) -> None:
        path = destination / relative
        report.files[relative] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}

    if database_url and not database_url.startswith("sqlite"):
        report.database = "postgresql" if "postgresql" in database_url else "external"
        report.notes.append(
            "the control-plane database is not SQLite: back it up with pg_dump or the "
            "database server's own backups (docs/operations.md, Backups)"
        )
    else:
        source = data_dir / "stratus.db"
        if database_url:
            source = Path(database_url.split(":///", 1)[1])
        if not source.exists():
            raise BackupError(f"the control-plane database {source} does not exist")
        _copy_sqlite(source, destination / "stratus.db")
        record("stratus.db")

    cells_dir = data_dir / "cells"
    for cell_dir in sorted(p for p in cells_dir.glob("*") if p.is_dir()):
        relative = Path("cells") / cell_dir.name
        if (cell_dir / "temporal.db").exists():
            _copy_sqlite(cell_dir / "temporal.db", destination / relative / "temporal.db")
            record(str(relative / "temporal.db"))
        if (cell_dir / "cell.json").exists():
            cell = json.loads((cell_dir / "cell.json").read_text())
            cell.pop("pid", None)
            target = destination / relative / "cell.json"
            _private_dir(target.parent)
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(cell, out)
            record(str(relative / "cell.json"))

    for name in _KEY_FILES:
        if (data_dir / name).exists():
            _copy_file(data_dir / name, destination / name)
            record(name)
    for tree in _TREES:
        for path in sorted((data_dir / tree).rglob("*")):
            if path.is_file():
                relative_path = path.relative_to(data_dir)
                _copy_file(path, destination / relative_path)
                record(str(relative_path))

    manifest = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": str(data_dir),
        "database": report.database,
        "notes": report.notes,
        "files": report.files,
    }
    fd = os.open(destination / BACKUP_MANIFEST, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(manifest, out, indent=2, sort_keys=True)
        out.write("\n")
    return report
