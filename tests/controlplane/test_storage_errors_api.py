"""A full disk answers 503 problem+json with a stable type, never a plain-text 500, and the API
serves writes again once space is freed. The disk is really full: the API's data dir sits on a
16 MiB tmpfs that the test fills to the last byte."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from product_constants import PROBLEM
from support import ApiAlone

# It runs the API as its own process on a tiny mount; the disk filled is the SQLite file's
# (the data dir's): no PostgreSQL variant.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Write (unbuffered) until the filesystem refuses another byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_disk_answers_503_problem_and_recovers(small_disk: Path) -> None:
    api = ApiAlone(small_disk / "data")
    try:
        api.start()
        owner = {"Authorization": f"Bearer {api.new_tenant('Crowded')}"}
        filler = _fill(small_disk)
        refused = []
        with httpx.Client(base_url=api.url + "/api/v1", headers=owner, timeout=30) as client:
            # Several writes: a page or two may still fit in the WAL's free space.
            for index in range(50):
                response = client.post(
                    "/users", json={"email": f"u{index}@crowded.example", "account_role": "read"}
                )
                if response.status_code != 201:
                    refused.append(response)
                    break
            assert refused, "the disk never filled up"
            response = refused[0]
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"]
            assert response.json()["type"] == PROBLEM + "storage-unavailable"
            assert "disk" in response.json()["detail"]

            filler.unlink()
            again = client.post(
                "/users", json={"email": "after@crowded.example", "account_role": "read"}
            )
            assert again.status_code == 201, again.text
            assert client.get("/users").status_code == 200
    finally:
        api.stop()
