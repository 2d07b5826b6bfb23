"""Every role as its own process: ``stratus serve api|gateway|worker`` on a data dir bootstrapped
as ``stratus up`` does, each reporting readiness as its dependencies come up — the gateway's
gRPC health NOT_SERVING until the API gives it routes, the worker's and the API's ``/readyz``
503 until the system cell answers — plus the settings file and ``stratus migrate``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import STRATUS, free_port, wait_until

from controlplane.kit.migrate import head_revisions
from dataplane.cells import dev_server_command
from infra.cell_frontend import run_cell_frontend
from infra.probes import NOT_SERVING, SERVING, gateway_health

pytestmark = pytest.mark.slow


def _clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return env | variables


class _Processes:
    """Processes the test starts, each logging to its own file, stopped with SIGTERM."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def alive(self, name: str) -> bool:
        if self.started[name].poll() is not None:
            raise AssertionError(f"{name} exited:\n{self.log(name)}")
        return True

    def stop(self, name: str) -> int:
        process = self.started.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise

    def stop_all(self) -> None:
        for name in list(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(name)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[_Processes]:
    started = _Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_each_role_runs_alone_and_turns_ready_when_its_dependencies_answer(
    tmp_path: Path, processes: _Processes
) -> None:
    """Gateway first (NOT_SERVING: no routes), worker (alive, /readyz 503: no system cell), API
    from a settings file whose port the environment overrides (/readyz 503 naming the system
    cell; the gateway turns SERVING), then the system cell: the API's and the worker's /readyz
    turn 200. Each stops on SIGTERM with exit code 0."""
    data_dir = tmp_path / "data"
    system_port, api_port, worker_health_port = free_port(), free_port(), free_port()
    gateway_port, gateway_key_port = free_port(), free_port()
    system_address = f"127.0.0.1:{system_port}"
    shared = {"STRATUS_DATA_DIR": str(data_dir), "STRATUS_SYSTEM_CELL_ADDRESS": system_address}
    subprocess.run(
        [STRATUS, "bootstrap"],
        env=_clean_env(**shared),
        check=True,
        capture_output=True,
        timeout=120,
    )
    pki = data_dir / "pki"
    ca_pem = (pki / "gateway-ca.pem").read_bytes()
    api_url = f"http://127.0.0.1:{api_port}"

    processes.start(
        "gateway",
        [STRATUS, "serve", "gateway"],
        _clean_env(
            STRATUS_GATEWAY_PORT=str(gateway_port),
            STRATUS_GATEWAY_API_KEY_PORT=str(gateway_key_port),
            STRATUS_GATEWAY_CERT=str(pki / "gateway.pem"),
            STRATUS_GATEWAY_KEY=str(pki / "gateway.key"),
            STRATUS_GATEWAY_CA=str(pki / "gateway-ca.pem"),
            STRATUS_GATEWAY_CA_KEY=str(pki / "gateway-ca.key"),
            STRATUS_GATEWAY_API_URL=api_url,
            STRATUS_GATEWAY_API_KEY=(data_dir / "operator.key").read_text().strip(),
        ),
    )
    wait_until(
        lambda: (
            processes.alive("gateway") and gateway_health(gateway_key_port, ca_pem) == NOT_SERVING
        ),
        60,
    )

    processes.start(
        "worker",
        [STRATUS, "serve", "worker"],
        _clean_env(**shared, STRATUS_WORKER_HEALTH_PORT=str(worker_health_port)),
    )
    worker_url = f"http://127.0.0.1:{worker_health_port}"
    wait_until(lambda: processes.alive("worker") and _status(worker_url + "/healthz") == 200, 60)
    assert _status(worker_url + "/readyz") == 503

    # The file names a port nobody listens on; the environment's port wins.
    settings_file = tmp_path / "api.yaml"
    settings_file.write_text(
        f"data_dir: {data_dir}\nsystem_cell_address: '{system_address}'\n"
        f"api_port: {free_port()}\nmigrate_on_start: false\n"
    )
    processes.start(
        "api",
        [STRATUS, "serve", "api", "--settings", str(settings_file)],
        _clean_env(STRATUS_API_PORT=str(api_port)),
    )
    wait_until(lambda: processes.alive("api") and _status(api_url + "/healthz") == 200, 60)
    not_ready = httpx.get(api_url + "/readyz")
    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"] == "application/problem+json"
    assert not_ready.json()["detail"] == f"the system cell at {system_address} does not answer"
    wait_until(lambda: gateway_health(gateway_key_port, ca_pem) == SERVING, 30)
    assert _status(worker_url + "/readyz") == 503

    _start_dev_server(processes, "system-cell", system_port)
    wait_until(lambda: _status(api_url + "/readyz") == 200, 90)
    wait_until(lambda: _status(worker_url + "/readyz") == 200, 90)
    # The effective settings line shows the file's and the environment's values merged.
    announced = next(
        line
        for line in processes.log("api").splitlines()
        if line.startswith("effective settings: api ")
    )
    effective = json.loads(announced.removeprefix("effective settings: api "))
    assert (effective["api_port"], effective["migrate_on_start"]) == (api_port, False)

    assert processes.stop("gateway") == 0, processes.log("gateway")
    assert processes.stop("worker") == 0, processes.log("worker")
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught (as under `stratus up`).
    assert processes.stop("api") in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in processes.log("api")
    assert "alembic" not in processes.log("api"), "/readyz must not migrate (nor log as if)"


def _start_dev_server(processes: _Processes, name: str, port: int) -> None:
    processes.start(
        name,
        dev_server_command("127.0.0.1", port, http_port=free_port(), metrics_port=free_port()),
        _clean_env(),
    )


def test_api_and_worker_reach_a_system_cluster_that_demands_mtls(
    tmp_path: Path, processes: _Processes
) -> None:
    """The system cluster behind a TLS terminator that demands a client certificate (nginx
    stream, ssl_verify_client on): with system_cell_tls_* the API's and the worker's /readyz
    turn 200 and the worker runs its periodic jobs there; an API given the wrong CA stays 503
    naming the system cell."""
    data_dir = tmp_path / "data"
    system_port = free_port()
    _start_dev_server(processes, "system-cell", system_port)
    with run_cell_frontend(f"127.0.0.1:{system_port}") as frontend:
        shared = {
            "STRATUS_DATA_DIR": str(data_dir),
            "STRATUS_SYSTEM_CELL_ADDRESS": frontend.address,
            "STRATUS_SYSTEM_CELL_TLS_CA": str(frontend.path("server-ca.pem")),
            "STRATUS_SYSTEM_CELL_TLS_CERT": str(frontend.path("client.pem")),
            "STRATUS_SYSTEM_CELL_TLS_KEY": str(frontend.path("client.key")),
            "STRATUS_SYSTEM_CELL_SERVER_NAME": frontend.server_name,
            "STRATUS_RECONCILE_INTERVAL_SECONDS": "1",
        }
        bootstrapped = subprocess.run(
            [STRATUS, "bootstrap"], env=_clean_env(**shared), capture_output=True, timeout=120
        )
        assert bootstrapped.returncode == 0, bootstrapped.stderr
        api_port, wrong_port, worker_health_port = free_port(), free_port(), free_port()
        processes.start(
            "api", [STRATUS, "serve", "api"], _clean_env(**shared, STRATUS_API_PORT=str(api_port))
        )
        processes.start(
            "worker",
            [STRATUS, "serve", "worker"],
            _clean_env(**shared, STRATUS_WORKER_HEALTH_PORT=str(worker_health_port)),
        )
        wrong_ca = shared | {"STRATUS_SYSTEM_CELL_TLS_CA": str(frontend.path("client-ca.pem"))}
        processes.start(
            "api-wrong-ca",
            [STRATUS, "serve", "api"],
            _clean_env(**wrong_ca, STRATUS_API_PORT=str(wrong_port), STRATUS_MIGRATE_ON_START="0"),
        )
        api_url, worker_url = (
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{worker_health_port}",
        )
        wait_until(lambda: processes.alive("api") and _status(api_url + "/readyz") == 200, 90)
        wait_until(lambda: processes.alive("worker") and _status(worker_url + "/readyz") == 200, 90)
        wait_until(lambda: "periodic job reconcile ran" in processes.log("worker"), 60)

        wrong_url = f"http://127.0.0.1:{wrong_port}"
        wait_until(
            lambda: processes.alive("api-wrong-ca") and _status(wrong_url + "/healthz") == 200, 60
        )
        refused = httpx.get(wrong_url + "/readyz")
        assert refused.status_code == 503
        assert refused.json()["detail"] == (
            f"the system cell at {frontend.address} does not answer"
        )
        processes.stop_all()


def test_system_cluster_tls_settings_go_together(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    run = subprocess.run(
        [STRATUS, "migrate"],
        env=_clean_env(STRATUS_DATA_DIR=str(tmp_path), STRATUS_SYSTEM_CELL_TLS_CA=str(ca)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert (
        "system_cell_tls_ca, system_cell_tls_cert and system_cell_tls_key go together "
        "(only system_cell_tls_ca set)"
    ) in run.stderr


def test_a_settings_file_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    """A misspelt setting stops the role before it starts (exit 2), naming the key."""
    settings_file = tmp_path / "worker.json"
    settings_file.write_text(json.dumps({"data_dir": str(tmp_path), "metering_intervall": 5}))
    result = subprocess.run(
        [STRATUS, "serve", "worker", "--settings", str(settings_file)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a setting of WorkerSettings: metering_intervall" in result.stderr


def test_migrate_brings_an_empty_database_to_head(tmp_path: Path) -> None:
    """``stratus migrate`` (production: once before rolling out API replicas) creates the
    schema and names the revisions it reached; a second run changes nothing."""
    env = _clean_env(STRATUS_DATA_DIR=str(tmp_path / "data"))
    first = subprocess.run(
        [STRATUS, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'stratus.db'}"
    assert first.stdout == f"database at {', '.join(sorted(head_revisions(url)))}\n"
    again = subprocess.run(
        [STRATUS, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert again.stdout == first.stdout
    assert (tmp_path / "data" / "stratus.db").exists()
