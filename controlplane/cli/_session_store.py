"""The CLI's stored credential, in ``$STRATUS_CONFIG_DIR`` (default ``$XDG_CONFIG_HOME/stratus``
or ``~/.config/stratus``), mode 0600 in a 0700 directory: the session ``stratus login`` keeps
(``session.json``) or the API key ``stratus account create --save`` keeps (``api-key.json``).
One at a time: saving one forgets the other, so the credential in use is the last one saved."""

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


class StoredApiKey(BaseModel):
    api_url: str
    api_key: str
    email: str
    account_id: str


def api_key_path() -> Path:
    return config_dir() / "api-key.json"


def _write_private(path: Path, model: BaseModel) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before anything is written, so the secret is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(model.model_dump_json(indent=2))
    return path


def save_session(session: StoredSession) -> Path:
    forget_api_key()
    return _write_private(session_path(), session)


def save_api_key(key: StoredApiKey) -> Path:
    forget_session()
    return _write_private(api_key_path(), key)


def load_api_key(api_url: str) -> StoredApiKey | None:
    """The saved API key if it is for ``api_url``."""
    try:
        stored = StoredApiKey.model_validate(json.loads(api_key_path().read_text()))
    except (OSError, ValueError, ValidationError):
        return None
    return stored if stored.api_url.rstrip("/") == api_url.rstrip("/") else None


def forget_api_key() -> None:
    with contextlib.suppress(FileNotFoundError):
        api_key_path().unlink()


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
