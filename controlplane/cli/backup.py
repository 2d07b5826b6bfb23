"""``stratus backup DEST``: an online copy of an embedded Stratus's data dir (its SQLite
database, every local cell's Temporal database, keys and PKI), taken while it runs. Restore:
``stratus up --data-dir <a copy of DEST>``. See ``controlplane/backup.py``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli._context import fail


def backup(
    destination: Annotated[
        Path, typer.Argument(help="New or empty directory to write the backup to")
    ],
    data_dir: Annotated[
        Path, typer.Option(envvar="STRATUS_DATA_DIR", help="The data dir to back up")
    ] = Path(".stratus"),
) -> None:
    """Back up a data dir while Stratus runs (control-plane SQLite, cells, keys, PKI)."""
    from controlplane.backup import BackupError, back_up

    try:
        report = back_up(
            data_dir, destination, database_url=os.environ.get("STRATUS_DATABASE_URL") or None
        )
    except BackupError as error:
        fail(str(error), code=2)
    total = sum(int(entry["bytes"]) for entry in report.files.values())
    typer.echo(f"backed up {len(report.files)} files ({total} bytes) to {report.destination}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"restore: stratus up --data-dir <a copy of {report.destination}>")
