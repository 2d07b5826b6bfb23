"""Files under the data dir are the operator's alone: the database (API-key hashes, emails,
encrypted secrets), its write-ahead log, the logs and the cells' state."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private(data_dir: Path) -> None:
    """From now on every file and directory this process and its children (API, worker,
    gateway, cells) create is 0600/0700 (umask 077, inherited by child processes), and what
    an earlier version left readable to group or others under ``data_dir`` is tightened."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    for root, directories, files in os.walk(data_dir):
        for name in (*directories, *files):
            _tighten(Path(root) / name)
    _tighten(data_dir)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by the owner only: created 0600 before anything is written,
    then moved into place, so no other user ever sees it (whatever the process's umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _tighten(path: Path) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and mode & 0o077:
        path.chmod(stat.S_IMODE(mode) & 0o700)
