"""Secrets the control plane must read back (an export sink's S3 secret), encrypted at rest.

AES-256-GCM with a random 96-bit nonce per value and the owning resource as associated data,
so a ciphertext copied onto another account's row does not decrypt there.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A ciphertext that this key cannot open (other key, other resource, or tampered)."""


class SecretBox:
    """Seals and opens small secrets with one installation-wide key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"the secrets key must be {_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> SecretBox:
        """The key kept in ``path`` (hex, mode 0600); minted there if missing and ``create``.
        Two processes creating it at once agree: only one ``O_EXCL`` create wins."""
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(os.urandom(_KEY_BYTES).hex() + "\n")
        return cls(bytes.fromhex(path.read_text().strip()))

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, bound_to: str) -> str:
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise SecretUnreadable(f"unknown secret format {version!r}")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plaintext = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable("the secret cannot be decrypted with this key") from exc
        return plaintext.decode()
