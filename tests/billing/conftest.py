"""Billing fixtures: a real S3 server (SeaweedFS) for the export tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from seaweed_server import SeaweedS3, run_seaweedfs


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the session; tests keep apart by bucket."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
