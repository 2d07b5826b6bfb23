"""The API's PostgreSQL server goes away: every request answers 503 problem+json naming the
database (never a 500), `/readyz` says not ready, `/healthz` stays alive."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from identity_support import assert_problem
from support import ApiAlone

from infra.postgres import run_postgres

pytestmark = pytest.mark.slow

GONE = {
    "the connection to the database was lost; retry",
    "the database cannot be reached; retry later",
}


def test_a_database_server_that_is_gone_answers_503_never_500(tmp_path: Path) -> None:
    server_running = run_postgres()
    server = server_running.__enter__()
    stopped = False
    try:
        api = ApiAlone(
            tmp_path / "api",
            extra_env={"STRATUS_DATABASE_URL": server.database_url(server.unique_database("gone"))},
        )
        api.start()
        try:
            key = api.new_tenant("Gone")
            headers = {"Authorization": f"Bearer {key}"}
            assert httpx.get(f"{api.url}/api/v1/namespaces", headers=headers).status_code == 200
            by_id = f"{api.url}/api/v1/namespaces/missing.nowhere"
            assert httpx.get(by_id, headers=headers).status_code == 404

            server_running.__exit__(None, None, None)  # stops the server by its PID
            stopped = True
            for method, path, body in (
                # The namespace read's own connection (kit.db.ServerReader) found dead.
                ("GET", "/api/v1/namespaces/missing.nowhere", None),
                ("GET", "/api/v1/namespaces", None),
                ("POST", "/api/v1/service-accounts", {"name": "ci", "account_role": "read"}),
                ("GET", "/api/v1/internal/gateway-routes", None),
            ):
                answer = httpx.request(
                    method,
                    api.url + path,
                    headers={"Authorization": f"Bearer {api.operator_key}"}
                    if "internal" in path
                    else headers,
                    json=body,
                )
                assert_problem(answer, 503, "storage-unavailable")
                # A pooled connection found dead says so; a new one that cannot connect says
                # the server cannot be reached.
                assert answer.json()["detail"] in GONE
            assert httpx.get(api.url + "/readyz").status_code == 503
            assert httpx.get(api.url + "/healthz").status_code == 200
            assert "Traceback" not in api.log_path.read_text()
        finally:
            api.stop()
    finally:
        if not stopped:
            server_running.__exit__(None, None, None)
