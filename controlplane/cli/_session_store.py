"""Where ``stratus login`` keeps the session: ``$STRATUS_CONFIG_DIR/session.json`` (default
``$XDG_CONFIG_HOME/stratus`` or ``~/.config/stratus``), mode 0600 in a 0700 directory."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ValidationError


class StoredSession(BaseModel):
    api_url: str
    session_token: str
    csrf_token: str
    email: str
    account_id: str
    expires_at: str


def config_dir() -> Path:
    explicit = os.environ.get("STRATUS_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stratus"


def session_path() -> Path:
    return config_dir() / "session.json"


def save_session(session: StoredSession) -> Path:
    path = session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before anything is written, so the token is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(session.model_dump_json(indent=2))
    return path


def load_session(api_url: str) -> StoredSession | None:
    """The stored session if it is for ``api_url``."""
    try:
        stored = StoredSession.model_validate(json.loads(session_path().read_text()))
    except (OSError, ValueError, ValidationError):
        return None
    return stored if stored.api_url.rstrip("/") == api_url.rstrip("/") else None


def forget_session() -> None:
    with contextlib.suppress(FileNotFoundError):
        session_path().unlink()
