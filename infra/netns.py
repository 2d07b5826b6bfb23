"""A simulated network of hosts on one Linux machine, for multi-host tests: network namespaces
joined by veth pairs to a bridge (iproute2's ``ip netns``, ``ip link``), as root.

:func:`simulated_network` builds, under names that carry a per-run random suffix (parallel or
leftover runs never clash):

- a *switch*: a network namespace holding a Linux bridge, so nothing is added to the machine's
  own namespace — no interface, address or route of the host is touched;
- one network namespace per host, its ``eth0`` one end of a veth pair whose other end is a port
  of the bridge, with a private address in a random ``10.23x.y.0/24`` that no address or route of
  the machine's own namespace overlaps, and its loopback up.

:meth:`Host.run` starts a process inside a host (``ip netns exec``), :meth:`Host.stop` is a host
failure (every process in the host killed, its bridge port down), and leaving the context kills
every process still in a host by PID (``ip netns pids``) and deletes the namespaces (with them
the veths and the bridge), also when the test failed. :func:`unavailable_reason` says why no
network can be built here (not root, no ``CAP_NET_ADMIN``, no iproute2), for a clear skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Host", "Listener", "Network", "simulated_network", "unavailable_reason"]

BRIDGE = "br0"
# Private /24s the network picks from (the first one no address or route of this machine's own
# namespace overlaps).
_CANDIDATE_NETWORKS = [
    ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
    for second in range(231, 240)
    for third in range(256)
]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, stdin=subprocess.DEVNULL
    )


def unavailable_reason() -> str | None:
    """Why a simulated network cannot be built on this machine (None: it can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    probe = f"stratus-probe-{secrets.token_hex(4)}"
    added = _ip("netns", "add", probe, check=False)
    if added.returncode != 0:
        return (
            f"`ip netns add` is not permitted here ({added.stderr.strip()}): the multi-host "
            "test needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN"
        )
    try:
        link = _ip("-n", probe, "link", "add", "probe0", "type", "bridge", check=False)
        if link.returncode != 0:
            return f"cannot create a bridge in a network namespace ({link.stderr.strip()})"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine's own namespace has an address in or a route to."""
    used: list[ipaddress.IPv4Network] = []
    for entry in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for address in entry.get("addr_info", []):
            used.append(
                ipaddress.IPv4Network(f"{address['local']}/{address['prefixlen']}", strict=False)
            )
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "")
        if destination in ("", "default"):
            continue
        with contextlib.suppress(ValueError):
            used.append(ipaddress.IPv4Network(destination, strict=False))
    return used


def _free_network() -> ipaddress.IPv4Network:
    used = _networks_in_use()
    candidates = list(_CANDIDATE_NETWORKS)
    # Random, so that two runs at once rarely even pick the same /24 (they could: the networks
    # live in separate namespaces and never meet).
    start = secrets.randbelow(len(candidates))
    for candidate in candidates[start:] + candidates[:start]:
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free /24 in 10.231.0.0-10.239.255.255 on this machine")


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket inside a host."""

    address: str
    port: int
    pids: tuple[int, ...]


@dataclass
class Host:
    """One simulated host: a network namespace with one address on the switch."""

    name: str
    namespace: str
    address: str
    # The bridge's end of this host's veth pair (inside the switch's namespace).
    port: str
    switch: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` as run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` inside this host in a session of its own, its output appended to
        ``log`` (with ``stdout`` given, e.g. a pipe, only its stderr); the process is killed
        with the host."""
        with contextlib.ExitStack() as stack:
            logged: IO[bytes] | int = subprocess.DEVNULL
            if log is not None:
                logged = stack.enter_context(log.open("ab"))
            process = subprocess.Popen(
                self.command(args),
                env=dict(env) if env is not None else None,
                stdin=stdin,
                stdout=logged if stdout is None else stdout,
                stderr=logged,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def check(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside this host to the end; its output captured as text."""
        return subprocess.run(
            self.command(args),
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def pids(self) -> list[int]:
        """Every process living in this host's network namespace."""
        listed = _ip("netns", "pids", self.namespace, check=False).stdout
        return [int(pid) for pid in listed.split()]

    def listeners(self) -> list[Listener]:
        """The TCP sockets listening inside this host, with the PIDs that hold them."""
        output = self.check(["ss", "-Hltnp"], timeout=30)
        found: list[Listener] = []
        for line in output.stdout.splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            address, _, port = fields[3].rpartition(":")
            pids = tuple(
                int(part.split("=", 1)[1].rstrip(")"))
                for part in line.split(",")
                if part.startswith("pid=")
            )
            found.append(Listener(address.strip("[]"), int(port), pids))
        return found

    def kill_all(self) -> None:
        """Kill every process in this host by PID (SIGKILL: nothing gets to clean up) and reap
        the ones this host started."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for process in self.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.2)
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def stop(self) -> None:
        """A host failure: every process in it killed, its port on the switch down."""
        self.kill_all()
        _ip("-n", self.switch, "link", "set", self.port, "down")


@dataclass
class Network:
    """A switch and its hosts (see :func:`simulated_network`)."""

    subnet: ipaddress.IPv4Network
    switch: str
    hosts: dict[str, Host]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]


def _add_host(network: Network, suffix: str, index: int, name: str, address: str) -> None:
    namespace, port, switch = f"stratus-{suffix}-{name}", f"p{index}", network.switch
    _ip("netns", "add", namespace)
    # Known to the network before it is wired, so a failure below still deletes it.
    network.hosts[name] = Host(
        name=name, namespace=namespace, address=address, port=port, switch=switch
    )
    _ip(
        "-n",
        switch,
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        namespace,
    )
    _ip("-n", switch, "link", "set", port, "master", BRIDGE, "up")
    _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
    _ip("-n", namespace, "link", "set", "eth0", "up")
    _ip("-n", namespace, "link", "set", "lo", "up")


def _wait_reachable(network: Network, timeout: float) -> None:
    """Until every host's link is up (a fresh bridge port forwards after a moment)."""
    deadline = time.monotonic() + timeout
    for host in network.hosts.values():
        while True:
            state = json.loads(_ip("-j", "-n", host.namespace, "link", "show", "eth0").stdout)
            if state and "LOWER_UP" in state[0].get("flags", []):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"link of host {host.name} not up")
            time.sleep(0.02)


@contextlib.contextmanager
def simulated_network(names: Sequence[str]) -> Iterator[Network]:
    """A switch and one host per name (in order: ``.2``, ``.3``, ... of a free /24); on exit
    every process in a host is killed by PID and every namespace deleted."""
    suffix = secrets.token_hex(3)
    subnet = _free_network()
    switch = f"stratus-{suffix}-switch"
    network = Network(subnet=subnet, switch=switch, hosts={})
    _ip("netns", "add", switch)
    try:
        _ip("-n", switch, "link", "add", BRIDGE, "type", "bridge")
        # No spanning tree, no forwarding delay: ports forward as soon as they are up.
        _ip("-n", switch, "link", "set", BRIDGE, "type", "bridge", "stp_state", "0")
        _ip("-n", switch, "link", "set", BRIDGE, "type", "bridge", "forward_delay", "0")
        _ip("-n", switch, "link", "set", BRIDGE, "up")
        for index, name in enumerate(names):
            address = str(subnet.network_address + 2 + index)
            _add_host(network, suffix, index, name, address)
        _wait_reachable(network, 10.0)
        yield network
    finally:
        # Clients first, the database last: fewer errors logged by what is still running.
        for host in reversed(network.hosts.values()):
            with contextlib.suppress(Exception):
                host.kill_all()
            _ip("netns", "del", host.namespace, check=False)
        _ip("netns", "del", switch, check=False)
