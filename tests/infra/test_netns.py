"""The simulated network of the multi-host test (infra/netns.py): hosts reach each other over the
bridge and nothing else; a stopped host is gone (its processes killed, unreachable); leaving the
network kills what still runs in it and deletes every namespace, also when the body raised;
nothing is added to this machine's own namespace."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import wait_until

from infra.netns import simulated_network, unavailable_reason

# Answers "pong" to one TCP connection at a time on ADDRESS:PORT, forever.
_PONG = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], 7000))\n"
    "while True:\n"
    "    connection, _ = server.accept()\n"
    "    connection.sendall(b'pong')\n"
    "    connection.close()\n"
)
_PING = (
    "import socket, sys\n"
    "with socket.create_connection((sys.argv[1], 7000), timeout=1) as s:\n"
    "    print(s.recv(4).decode())\n"
)


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs network namespaces: {reason}")


def _own_namespace() -> tuple[str, str]:
    addresses = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True).stdout
    return addresses, routes


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    return {entry["name"] for entry in json.loads(listed or "[]")}


def test_hosts_talk_over_the_bridge_and_a_stopped_host_is_gone() -> None:
    before, namespaces_before = _own_namespace(), _namespaces()
    with simulated_network(["server", "client"]) as network:
        server, client = network["server"], network["client"]
        assert server.address != client.address
        assert network.subnet.network_address.packed[:1] == b"\x0a"
        pong = server.run([sys.executable, "-c", _PONG, server.address])
        wait_until(lambda: [listener.port for listener in server.listeners()] == [7000], 10)
        assert server.listeners()[0].address == server.address
        assert server.listeners()[0].pids == (pong.pid,)
        ping = client.check([sys.executable, "-c", _PING, server.address], timeout=30)
        assert ping.stdout == "pong\n"
        # Not from this machine's own namespace: the hosts' network is not routed here.
        outside = subprocess.run(
            [sys.executable, "-c", _PING, server.address], capture_output=True, text=True
        )
        assert outside.returncode != 0
        assert _own_namespace() == before

        server.stop()
        assert pong.poll() is not None
        assert server.pids() == []
        refused = client.check([sys.executable, "-c", _PING, server.address], timeout=30)
        assert refused.returncode != 0
        assert "timed out" in refused.stderr or "unreachable" in refused.stderr.lower()
    assert _namespaces() == namespaces_before


def test_leaving_after_a_failure_kills_every_process_and_deletes_the_namespaces() -> None:
    namespaces_before = _namespaces()
    started: list[int] = []
    with pytest.raises(RuntimeError, match="the test failed"):
        _fail_with_processes_running(started)
    assert len(started) == 2
    assert _namespaces() == namespaces_before
    for pid in started:
        assert not _alive(pid)


def _fail_with_processes_running(started: list[int]) -> None:
    with simulated_network(["h"]) as network:
        host = network["h"]
        host.run(["sleep", "600"])
        # A grandchild in a session of its own: killed by PID as a member of the namespace.
        host.run(["setsid", "-f", "sleep", "601"])
        wait_until(lambda: len(host.pids()) == 2, 10)
        started.extend(host.pids())
        raise RuntimeError("the test failed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
