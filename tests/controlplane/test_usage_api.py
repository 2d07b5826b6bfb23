"""The usage API and ``stratus usage get``: the account's usage rows summed per namespace, UTC
day and kind, visible to owners and finance admins only, never another account's; bad ranges
and foreign namespaces are refused with problem+json."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from identity_support import assert_problem, user_with_key
from product_constants import PROBLEM
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.usage.repository import SystemUsageStore


def _hour(day: int, hour: int) -> dt.datetime:
    # Days of March and April 2026: long past, so the live meter never adds to them.
    return dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=day - 1, hours=hour)


async def _record(stratus: StratusUp, rows: list[tuple[str, dt.datetime, str, int]]) -> None:
    """Usage rows written through the meter's own writer, committed in the running Stratus's
    database (the meter only ever writes the current hour)."""
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            for namespace_id, hour_start, kind, quantity in rows:
                await SystemUsageStore(session).add_usage(
                    hour_start, {(namespace_id, kind): quantity}
                )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def accounts(stratus: StratusUp) -> tuple[Tenant, Tenant, str]:
    """Two tenants with usage on the same days; the first has a live namespace ``orders`` and
    usage left by a deleted namespace ``gone``. Returns (tenant, other tenant, orders id)."""
    tenant, other = new_tenant(stratus, "Metered"), new_tenant(stratus, "Elsewhere")
    orders = create_active_namespace(stratus, tenant, "orders")
    gone = f"gone.{tenant.account_id}"
    foreign = f"orders.{other.account_id}"
    asyncio.run(
        _record(
            stratus,
            [
                (orders, _hour(29, 23), "actions.workflow", 1),  # the day before the range
                (orders, _hour(30, 0), "actions.workflow", 3),
                (orders, _hour(30, 23), "actions.workflow", 4),
                (orders, _hour(30, 23), "actions.activity", 10),
                (orders, _hour(31, 0), "actions.workflow", 1),
                (gone, _hour(31, 10), "actions.signal", 2),
                (gone, _hour(31, 23), "actions.signal", 5),
                (orders, _hour(32, 0), "actions.workflow", 100),  # 1 April: after the range
                (foreign, _hour(30, 12), "actions.workflow", 1000),
            ],
        )
    )
    return tenant, other, orders


def _usage(response: Any) -> list[tuple[str, str, str, int]]:
    assert response.status_code == 200, response.text
    return [
        (u["date"], u["namespace_id"], u["kind"], u["quantity"]) for u in response.json()["usage"]
    ]


def test_owner_gets_daily_sums_of_its_own_namespaces(
    stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]
) -> None:
    """30 Mar: workflow 3 + 4 = 7, activity 10; 31 Mar: workflow 1, signal 2 + 5 = 7. The
    rows of 29 Mar and 1 Apr lie outside the range; the other account's are never shown."""
    tenant, _, orders = accounts
    gone = f"gone.{tenant.account_id}"
    with http(stratus, tenant.api_key) as client:
        response = client.get("/usage", params={"start": "2026-03-30", "end": "2026-03-31"})
    assert response.json()["start"] == "2026-03-30"
    assert response.json()["end"] == "2026-03-31"
    assert _usage(response) == [
        ("2026-03-30", orders, "actions.activity", 10),
        ("2026-03-30", orders, "actions.workflow", 7),
        ("2026-03-31", gone, "actions.signal", 7),
        ("2026-03-31", orders, "actions.workflow", 1),
    ]


def test_namespace_filter_includes_a_deleted_namespace_with_usage(
    stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]
) -> None:
    """``namespace_id`` narrows to one namespace, also one that only its usage rows remember."""
    tenant, _, orders = accounts
    gone = f"gone.{tenant.account_id}"
    with http(stratus, tenant.api_key) as client:
        only_orders = client.get(
            "/usage", params={"start": "2026-03-31", "end": "2026-04-01", "namespace_id": orders}
        )
        only_gone = client.get(
            "/usage", params={"start": "2026-03-01", "end": "2026-03-31", "namespace_id": gone}
        )
    assert _usage(only_orders) == [
        ("2026-03-31", orders, "actions.workflow", 1),
        ("2026-04-01", orders, "actions.workflow", 100),
    ]
    assert _usage(only_gone) == [("2026-03-31", gone, "actions.signal", 7)]


def test_single_day_range_and_empty_range(
    stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]
) -> None:
    """start = end is one day; a range without usage answers an empty list, not 404."""
    tenant, _, orders = accounts
    with http(stratus, tenant.api_key) as client:
        one_day = client.get("/usage", params={"start": "2026-03-29", "end": "2026-03-29"})
        empty = client.get("/usage", params={"start": "2025-01-01", "end": "2025-03-31"})
    assert _usage(one_day) == [("2026-03-29", orders, "actions.workflow", 1)]
    assert _usage(empty) == []


def test_finance_admin_reads_usage_other_roles_are_forbidden(
    stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]
) -> None:
    """Usage is billing data: the owner and finance admins read it; admin, developer, read and
    metrics_read get 403 forbidden."""
    tenant, _, orders = accounts
    params = {"start": "2026-03-31", "end": "2026-03-31", "namespace_id": orders}
    _, finance_key = user_with_key(
        stratus, tenant.api_key, "money@metered.example", "finance_admin"
    )
    with http(stratus, finance_key) as client:
        assert _usage(client.get("/usage", params=params)) == [
            ("2026-03-31", orders, "actions.workflow", 1)
        ]
    for role in ("admin", "developer", "read", "metrics_read"):
        _, key = user_with_key(stratus, tenant.api_key, f"{role}@metered.example", role)
        with http(stratus, key) as client:
            assert_problem(client.get("/usage", params=params), 403, "forbidden")


MARCH = {"start": "2026-03-01", "end": "2026-03-31"}


@pytest.mark.parametrize(
    ("params", "status", "problem", "field"),
    [
        ({"start": "2026-03-31", "end": "2026-03-30"}, 400, "invalid-field", "end"),
        # 1 Jan .. 1 Apr is 91 days; 1 Jan .. 31 Mar (90 days) is allowed.
        ({"start": "2026-01-01", "end": "2026-04-01"}, 400, "invalid-field", "end"),
        ({"start": "2026-3-1", "end": "2026-03-31"}, 400, "invalid-field", "start"),
        ({"start": "2026-03-01", "end": "2026-02-30"}, 400, "invalid-field", "end"),
        ({"start": "yesterday", "end": "2026-03-31"}, 400, "invalid-field", "start"),
        ({"start": "2026-03-01T00:00:00", "end": "2026-03-31"}, 400, "invalid-field", "start"),
        ({"end": "2026-03-31"}, 400, "invalid-field", "start"),
        ({"start": "2026-03-01"}, 400, "invalid-field", "end"),
        ({**MARCH, "namespace_id": "FOREIGN"}, 404, "not-found", None),
        ({**MARCH, "namespace_id": "UNKNOWN"}, 404, "not-found", None),
    ],
)  # fmt: skip
def test_bad_usage_queries_are_refused(
    stratus: StratusUp,
    accounts: tuple[Tenant, Tenant, str],
    params: dict[str, str],
    status: int,
    problem: str,
    field: str | None,
) -> None:
    """Each refusal names its problem type and field; another account's namespace (with usage)
    is not found, exactly like one that never existed."""
    tenant, other, _ = accounts
    if params.get("namespace_id") == "FOREIGN":
        params = {**params, "namespace_id": f"orders.{other.account_id}"}
    elif params.get("namespace_id") == "UNKNOWN":
        params = {**params, "namespace_id": f"nope.{tenant.account_id}"}
    with http(stratus, tenant.api_key) as client:
        response = client.get("/usage", params=params)
    assert_problem(response, status, problem)
    assert response.json().get("field") == field


def test_ninety_days_is_the_longest_range(
    stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]
) -> None:
    tenant, _, _ = accounts
    with http(stratus, tenant.api_key) as client:
        response = client.get("/usage", params={"start": "2026-01-01", "end": "2026-03-31"})
    assert response.status_code == 200, response.text


def test_cli_usage_get(stratus: StratusUp, accounts: tuple[Tenant, Tenant, str]) -> None:
    """``stratus usage get`` prints a header naming the columns and units, then one line per
    day, namespace and kind (or JSON); an API refusal exits 1 with the problem."""
    tenant, _, orders = accounts
    text = stratus.cli(
        "usage", "get", "--start", "2026-03-30", "--end", "2026-03-30", api_key=tenant.api_key
    )
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "DATE (UTC)\tNAMESPACE\tKIND\tQUANTITY\tUNIT",
        f"2026-03-30\t{orders}\tactions.activity\t10\tactions",
        f"2026-03-30\t{orders}\tactions.workflow\t7\tactions",
    ]
    as_json = stratus.cli(
        "--output", "json", "usage", "get", "--start", "2026-03-31", "--end", "2026-03-31",
        "--namespace", orders, api_key=tenant.api_key,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["usage"] == [
        {"date": "2026-03-31", "namespace_id": orders, "kind": "actions.workflow", "quantity": 1}
    ]
    refused = stratus.cli(
        "usage", "get", "--start", "2026-03-31", "--end", "2026-03-01", api_key=tenant.api_key
    )
    assert refused.returncode == 1
    assert f"(field: end) [400 {PROBLEM}invalid-field]" in refused.stderr
