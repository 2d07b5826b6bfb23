"""Billing fixtures: a real S3 server (SeaweedFS) for the export tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from seaweed_server import SeaweedS3, create_bucket, run_seaweedfs


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the session; tests keep apart by bucket."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def bucket(seaweed_s3: SeaweedS3) -> str:
    """One bucket for every export test (each keeps to its own prefix): each bucket is a
    SeaweedFS collection with volumes of its own, and the test server has only a few."""
    name = f"exports-{uuid.uuid4().hex[:12]}"
    create_bucket(seaweed_s3, name)
    return name
