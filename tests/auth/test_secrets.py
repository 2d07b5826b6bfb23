"""Secrets at rest: sealed with AES-256-GCM, bound to their owner, refused when tampered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auth import SecretBox, SecretUnreadable


def test_a_sealed_secret_opens_only_for_the_resource_it_is_bound_to(tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "secrets.key")
    token = box.seal("hunter2", bound_to="export-sink:a1b2c")
    assert "hunter2" not in token
    assert box.open(token, bound_to="export-sink:a1b2c") == "hunter2"
    # A copy onto another account's row does not decrypt there.
    with pytest.raises(SecretUnreadable):
        box.open(token, bound_to="export-sink:zzzzz")


def test_the_same_secret_seals_differently_each_time(tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "secrets.key")
    assert box.seal("x", bound_to="r") != box.seal("x", bound_to="r")


def test_tampered_ciphertexts_and_other_keys_are_refused(tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "secrets.key")
    token = box.seal("hunter2", bound_to="r")
    # A character in the middle: the last ones may be base64 padding bits that decode alike.
    middle = len(token) // 2
    flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    for bad in (flipped, "v2:" + token[3:], "v1:not-base64!"):
        with pytest.raises(SecretUnreadable):
            box.open(bad, bound_to="r")
    with pytest.raises(SecretUnreadable):
        SecretBox(os.urandom(32)).open(token, bound_to="r")


def test_the_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    first = SecretBox.from_file(path)
    token = first.seal("kept", bound_to="r")
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretBox.from_file(path).open(token, bound_to="r") == "kept"
    with pytest.raises(FileNotFoundError):
        SecretBox.from_file(tmp_path / "missing.key", create=False)
