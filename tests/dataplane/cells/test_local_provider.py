"""The local cell provider runs real ``temporal server start-dev`` processes: bound to 127.0.0.1,
configured against cross-namespace commands, idempotent, adoptable by a restarted control plane,
and keeping their data across a crash."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from dataplane.cells import CellEndpoint, CellError, CellStatus, LocalCellProvider

pytestmark = pytest.mark.slow  # every test starts real cells

LOOPBACK = ipaddress.ip_address("127.0.0.1")
TCP_LISTEN = "0A"

ProviderFactory = Callable[..., LocalCellProvider]


@dataclass(frozen=True)
class Provisioned:
    """A cell the provider provisioned: the endpoint it returned and the ports it recorded."""

    endpoint: CellEndpoint
    grpc_port: int
    metrics_port: int
    http_port: int


async def _provision(provider: LocalCellProvider, cell_id: str) -> Provisioned:
    endpoint = await provider.provision(cell_id)
    ports = provider.ports(cell_id)
    return Provisioned(endpoint, ports.grpc_port, ports.metrics_port, ports.http_port)


def _decode_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Decode a /proc/net/tcp{,6} address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    host_order = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(host_order)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _listening_sockets() -> dict[int, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Every listening TCP socket of this network namespace: inode -> (address, port)."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == TCP_LISTEN:
                hex_address, hex_port = local.split(":")
                sockets[inode] = (_decode_address(hex_address), int(hex_port, 16))
    return sockets


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _listens_of(pid: int) -> set[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, port) of every socket the process listens on."""
    listening = _listening_sockets()
    return {listening[inode] for inode in _socket_inodes(pid) if inode in listening}


def _listener_pid(port: int) -> int:
    """The PID of the process listening on ``port`` (found through /proc, not the provider)."""
    inodes = {inode for inode, (_, p) in _listening_sockets().items() if p == port}
    assert inodes, f"nothing listens on port {port}"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _socket_inodes(int(proc.name)) & inodes:
            return int(proc.name)
    raise AssertionError(f"no process owns the listener on port {port}")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _gone(pid: int) -> bool:
    """True once the process no longer runs (absent, or a zombie awaiting its parent's wait)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


async def _eventually_stopped(provider: LocalCellProvider, cell_id: str) -> None:
    deadline = time.monotonic() + 10
    while await provider.status(cell_id) != CellStatus.STOPPED:
        assert time.monotonic() < deadline, f"cell {cell_id} still reported running"
        await asyncio.sleep(0.05)


async def _register_namespace(address: str, namespace: str) -> None:
    client = await Client.connect(address, namespace="default")
    await client.workflow_service.register_namespace(
        wsv1.RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )


async def _describe_namespace(address: str, namespace: str) -> str:
    client = await Client.connect(address, namespace="default")
    response = await client.workflow_service.describe_namespace(
        wsv1.DescribeNamespaceRequest(namespace=namespace)
    )
    name: str = response.namespace_info.name
    return name


@pytest.fixture
async def new_provider(tmp_path: Path) -> AsyncIterator[ProviderFactory]:
    """Providers over one base dir (as successive control-plane processes would be); every cell
    any of them started is stopped afterwards."""
    base_dir = tmp_path / "cells"
    providers: list[LocalCellProvider] = []

    def make(*, start_timeout: float = 60) -> LocalCellProvider:
        provider = LocalCellProvider(base_dir, start_timeout=start_timeout)
        providers.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in providers:
            await asyncio.gather(*(provider.stop(cell) for cell in provider.known_cells()))


@pytest.fixture
def provider(new_provider: ProviderFactory) -> LocalCellProvider:
    return new_provider()


@pytest.fixture
async def running_cell(provider: LocalCellProvider) -> Provisioned:
    cell = await _provision(provider, "acct1")
    await provider.start(cell.endpoint)
    return cell


async def test_provision_allocates_a_loopback_endpoint_once(
    new_provider: ProviderFactory,
) -> None:
    """The provider, not its caller, picks the cell's endpoint: distinct loopback ports,
    returned again (not re-allocated) by any provider on the same state, and nothing runs
    until the cell is started."""
    first, second = new_provider(), new_provider()
    endpoint = await first.provision("acct1")
    ports = first.ports("acct1")

    assert endpoint == CellEndpoint(
        "acct1",
        "local",
        f"127.0.0.1:{ports.grpc_port}",
        f"http://127.0.0.1:{ports.metrics_port}/metrics",
    )
    assert len({ports.grpc_port, ports.metrics_port, ports.http_port}) == 3
    assert await second.provision("acct1") == endpoint
    assert await first.provision("acct1") == endpoint
    assert await first.provision("acct2") != endpoint
    assert await first.status("acct1") == CellStatus.STOPPED


async def test_stored_endpoint_starts_the_cell_after_its_record_is_lost(tmp_path: Path) -> None:
    """The control plane's stored endpoint is the truth: a provider with none of the cell's
    files (a fresh state dir) starts it at that same address."""
    provisioner = LocalCellProvider(tmp_path / "old")
    endpoint = await provisioner.provision("acct1")
    fresh = LocalCellProvider(tmp_path / "new")
    try:
        await fresh.start(endpoint)
        assert fresh.endpoint("acct1") == endpoint
        assert await fresh.status("acct1") == CellStatus.RUNNING
    finally:
        await fresh.stop("acct1")


async def test_started_cell_is_running_at_its_loopback_address(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """After start the cell reports RUNNING at 127.0.0.1:<grpc port> and answers Temporal RPCs."""
    assert await provider.status("acct1") == CellStatus.RUNNING
    assert provider.address("acct1") == f"127.0.0.1:{running_cell.grpc_port}"

    client = await Client.connect(provider.address("acct1"), namespace="default")
    info = await client.workflow_service.get_system_info(wsv1.GetSystemInfoRequest())
    assert info.server_version


async def test_metrics_url_serves_prometheus_text(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """The metrics URL is the cell's metrics port and serves parseable Prometheus text."""
    url = provider.metrics_url("acct1")
    assert url == f"http://127.0.0.1:{running_cell.metrics_port}/metrics"

    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    assert families
    assert any(family.samples for family in families)


async def test_process_runs_with_cross_namespace_commands_disabled_on_its_own_db(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """The cell process is started with cross-namespace commands off, --ip 127.0.0.1 and its db."""
    pid = _listener_pid(running_cell.grpc_port)
    args = _cmdline(pid)
    joined = " ".join(args)

    assert "system.enableCrossNamespaceCommands=false" in args
    assert "--ip 127.0.0.1" in joined
    assert f"--port {running_cell.grpc_port}" in joined
    assert f"--db-filename {provider.cell_dir('acct1') / 'temporal.db'}" in joined
    assert (provider.cell_dir("acct1") / "temporal.db").is_file()


async def test_cell_listens_on_loopback_only(running_cell: Provisioned) -> None:
    """Every socket the cell listens on (gRPC, HTTP, metrics, internal) is bound to 127.0.0.1."""
    listens = _listens_of(_listener_pid(running_cell.grpc_port))

    assert (LOOPBACK, running_cell.grpc_port) in listens
    assert (LOOPBACK, running_cell.http_port) in listens
    assert (LOOPBACK, running_cell.metrics_port) in listens
    assert {address for address, _ in listens} == {LOOPBACK}


async def test_starting_a_running_cell_again_is_a_no_op(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """A second start of a running cell keeps the same process."""
    pid = _listener_pid(running_cell.grpc_port)

    await provider.start(running_cell.endpoint)

    assert _listener_pid(running_cell.grpc_port) == pid
    assert await provider.status("acct1") == CellStatus.RUNNING


async def test_new_provider_adopts_a_running_cell(
    new_provider: ProviderFactory, running_cell: Provisioned
) -> None:
    """A fresh provider on the same base dir (a restarted control plane) finds, starts (no-op)
    and can stop the cell that an earlier provider started."""
    pid = _listener_pid(running_cell.grpc_port)
    adopter = new_provider()

    assert adopter.known_cells() == ["acct1"]
    assert await adopter.status("acct1") == CellStatus.RUNNING
    assert adopter.address("acct1") == f"127.0.0.1:{running_cell.grpc_port}"
    await adopter.start(running_cell.endpoint)
    assert _listener_pid(running_cell.grpc_port) == pid

    await adopter.stop("acct1")

    assert _gone(pid)
    assert await adopter.status("acct1") == CellStatus.STOPPED


async def test_stop_ends_the_process_and_a_second_stop_is_a_no_op(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """Stop reports STOPPED, the process (and its listener) is gone; stopping again does nothing."""
    pid = _listener_pid(running_cell.grpc_port)

    await provider.stop("acct1")

    assert await provider.status("acct1") == CellStatus.STOPPED
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped, not a zombie
    assert all(port != running_cell.grpc_port for _, port in _listening_sockets().values())

    await provider.stop("acct1")

    assert await provider.status("acct1") == CellStatus.STOPPED


async def test_unknown_cell_is_stopped_and_has_no_address(provider: LocalCellProvider) -> None:
    """A cell never started reports STOPPED, stopping it is a no-op, and it has no address."""
    assert await provider.status("nobody") == CellStatus.STOPPED
    await provider.stop("nobody")

    with pytest.raises(CellError, match=r"^cell nobody is unknown to the local provider$"):
        provider.address("nobody")
    with pytest.raises(CellError, match=r"^cell nobody is unknown to the local provider$"):
        provider.metrics_url("nobody")


async def test_two_cells_have_separate_processes_ports_and_data(
    provider: LocalCellProvider,
) -> None:
    """Two cells run as two processes with their own ports and db; a namespace in one is not
    visible in the other."""
    spec_a, spec_b = await _provision(provider, "acct1"), await _provision(provider, "acct2")
    await asyncio.gather(provider.start(spec_a.endpoint), provider.start(spec_b.endpoint))

    pid_a, pid_b = _listener_pid(spec_a.grpc_port), _listener_pid(spec_b.grpc_port)
    assert pid_a != pid_b
    assert provider.address("acct1") != provider.address("acct2")
    db_a = str(provider.cell_dir("acct1") / "temporal.db")
    db_b = str(provider.cell_dir("acct2") / "temporal.db")
    assert db_a != db_b
    assert db_a in _cmdline(pid_a)
    assert db_b in _cmdline(pid_b)

    await _register_namespace(provider.address("acct1"), "orders.acct1")

    assert await _describe_namespace(provider.address("acct1"), "orders.acct1") == "orders.acct1"
    with pytest.raises(RPCError) as missing:
        await _describe_namespace(provider.address("acct2"), "orders.acct1")
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_killed_cell_is_stopped_and_restarts_with_its_ports_and_data(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """After SIGKILL the cell reports STOPPED; start brings it back on the same ports with the
    namespace registered before the crash."""
    await _register_namespace(provider.address("acct1"), "orders.acct1")
    pid = _listener_pid(running_cell.grpc_port)

    os.kill(pid, signal.SIGKILL)

    await _eventually_stopped(provider, "acct1")

    await provider.start(running_cell.endpoint)

    assert await provider.status("acct1") == CellStatus.RUNNING
    new_pid = _listener_pid(running_cell.grpc_port)
    assert new_pid != pid
    assert provider.address("acct1") == f"127.0.0.1:{running_cell.grpc_port}"
    assert (LOOPBACK, running_cell.metrics_port) in _listens_of(new_pid)
    assert (LOOPBACK, running_cell.http_port) in _listens_of(new_pid)
    assert await _describe_namespace(provider.address("acct1"), "orders.acct1") == "orders.acct1"


async def test_stale_record_never_signals_an_unrelated_process(
    provider: LocalCellProvider, running_cell: Provisioned
) -> None:
    """If the recorded PID now belongs to another program (PID reuse), the cell is STOPPED and
    stop leaves that program alone."""
    await provider.stop("acct1")
    bystander = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        record_path = provider.cell_dir("acct1") / "cell.json"
        record = json.loads(record_path.read_text())
        record["pid"] = bystander.pid
        record_path.write_text(json.dumps(record))

        assert await provider.status("acct1") == CellStatus.STOPPED
        await provider.stop("acct1")

        assert bystander.returncode is None
        assert not _gone(bystander.pid)
    finally:
        bystander.kill()
        await bystander.wait()


async def test_cell_that_cannot_bind_its_metrics_port_fails_with_the_reason(
    provider: LocalCellProvider,
) -> None:
    """When another process holds the cell's metrics port, start raises CellError quoting the
    server's bind error, and the cell stays STOPPED."""
    spec = await _provision(provider, "acct1")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", spec.metrics_port))
        squatter.listen()

        with pytest.raises(CellError) as failed:
            await provider.start(spec.endpoint)

    message = str(failed.value)
    assert message.startswith("cell acct1 exited during start:")
    assert f"can't set metrics port {spec.metrics_port}" in message
    assert "address already in use" in message
    assert await provider.status("acct1") == CellStatus.STOPPED


async def test_cell_that_cannot_bind_its_grpc_port_fails_fast_with_the_reason(
    new_provider: ProviderFactory,
) -> None:
    """When another process holds the cell's gRPC port, start fails within its start timeout
    with CellError saying the server exited and why."""
    provider = new_provider(start_timeout=2)
    spec = await _provision(provider, "acct1")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", spec.grpc_port))
        squatter.listen()

        with pytest.raises(CellError) as failed:
            await asyncio.wait_for(provider.start(spec.endpoint), timeout=6)

    assert str(failed.value).startswith("cell acct1 exited during start:")
    assert "address already in use" in str(failed.value)
