"""``STRATUS_CELL_PROVIDER=external`` with dedicated placement and no registered cell: a
namespace create is refused 503 ``no-cell-capacity`` over HTTP, nothing stored, never a local
cell made instead (the API alone: the refusal comes before any workflow is started; that the
worker makes no local cell either is in ``test_shared_cell_e2e.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from identity_support import assert_problem
from support import ApiAlone

from auth import generate_ca

pytestmark = pytest.mark.slow  # it runs the API as its own process


@pytest.fixture
def external_api(tmp_path: Path) -> Iterator[ApiAlone]:
    api = ApiAlone(
        tmp_path / "data",
        extra_env={"STRATUS_CELL_PROVIDER": "external", "STRATUS_CELL_PLACEMENT": "dedicated"},
    )
    try:
        api.start()
        yield api
    finally:
        api.stop()


def test_dedicated_create_without_a_registered_cell_is_503(external_api: ApiAlone) -> None:
    owner = {"Authorization": f"Bearer {external_api.new_tenant('NoCellYet')}"}
    with httpx.Client(base_url=external_api.url + "/api/v1", headers=owner, timeout=30) as client:
        account_id = client.get("/current-identity").json()["account_id"]
        refused = client.post(
            "/namespaces",
            json={
                "name": "orders",
                "retention_days": 1,
                "accepted_client_ca": generate_ca("NoCellYet CA").cert_pem.decode(),
            },
        )
        assert_problem(refused, 503, "no-cell-capacity")
        assert refused.json()["detail"] == (
            "no registered dedicated cell is free for this account (the operator registers "
            "cells with `stratus cell register --placement dedicated`)"
        )
        assert client.get(f"/namespaces/orders.{account_id}").status_code == 404
        assert client.get("/namespaces").json()["namespaces"] == []
    operator = {"Authorization": f"Bearer {external_api.operator_key}"}
    with httpx.Client(base_url=external_api.url + "/api/v1", headers=operator) as client:
        assert client.get("/cells").json()["cells"] == []
