"""For every route that takes an id, account A's owner on account B's ids answers exactly as
for ids that do not exist: 404 not-found (or the policy's 403 where the route is not A's to
call at all), and B's resources are untouched. The routes come from the app, so a new route
with an id is covered (or fails here until it gets a sample body)."""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from billing_support import bill
from identity_support import expiry, service_account_with_key
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from controlplane.app import PUBLIC_PATHS, create_app
from controlplane.config import Settings
from controlplane.kit.db import utcnow
from controlplane.kit.route_policy import decision, route_actions

ROUTES = [
    route
    for route in route_actions(create_app(Settings(), run_migrations=False))
    if "{" in route.path and route.path not in PUBLIC_PATHS and route.action is not None
]

# A body that passes validation, so the answer is about the ids only.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/api/v1/namespaces/{namespace_id}"): None,
    ("POST", "/api/v1/namespaces/{namespace_id}"): {"resource_version": "x", "retention_days": 7},
    ("DELETE", "/api/v1/namespaces/{namespace_id}"): None,
    ("POST", "/api/v1/namespaces/{namespace_id}/limits"): {
        "requests_per_second": 10,
        "actions_per_second": 10,
    },
    ("POST", "/api/v1/namespaces/{namespace_id}/users/{user_id}/access"): {"permission": "admin"},
    ("GET", "/api/v1/operations/{operation_id}"): None,
    ("GET", "/api/v1/users/{user_id}"): None,
    ("POST", "/api/v1/users/{user_id}"): {"resource_version": "x", "account_role": "read"},
    ("DELETE", "/api/v1/users/{user_id}"): None,
    ("GET", "/api/v1/service-accounts/{service_account_id}"): None,
    ("POST", "/api/v1/service-accounts/{service_account_id}"): {"resource_version": "x"},
    ("DELETE", "/api/v1/service-accounts/{service_account_id}"): None,
    ("GET", "/api/v1/api-keys/{api_key_id}"): None,
    ("POST", "/api/v1/api-keys/{api_key_id}/disable"): None,
    ("POST", "/api/v1/api-keys/{api_key_id}/enable"): None,
    ("DELETE", "/api/v1/api-keys/{api_key_id}"): None,
    ("GET", "/api/v1/invoices/{invoice_id}"): None,
    ("GET", "/api/v1/invoices/{invoice_id}/download"): None,
    ("POST", "/api/v1/invoices/{invoice_id}/credit-notes"): {"amount": "1.00", "reason": "x"},
    ("POST", "/api/v1/accounts/{account_id}/plan"): {"plan": "business"},
    ("POST", "/api/v1/accounts/{account_id}/credits"): {"amount": "1.00", "description": "x"},
    ("GET", "/api/v1/accounts/{account_id}/quotas"): None,
    ("POST", "/api/v1/accounts/{account_id}/quotas"): {"namespaces": 5},
    ("DELETE", "/api/v1/internal/gateways/{gateway_id}"): None,
}


@dataclass
class Ids:
    tenant: Tenant
    ids: dict[str, str]


def _ids(stratus: StratusUp, name: str) -> Ids:
    tenant = new_tenant(stratus, name)
    namespace_id = create_active_namespace(stratus, tenant, "shared-name")
    service_account, _ = service_account_with_key(
        stratus, tenant.api_key, {"name": "ci", "account_role": "developer"}
    )
    asyncio.run(bill(stratus, now=utcnow(), account_ids=[tenant.account_id]))
    with http(stratus, tenant.api_key) as client:
        identity = client.get("/current-identity").json()
        operation_id = client.get("/operations").json()["operations"][0]["id"]
        invoice_id = client.get("/invoices").json()["invoices"][0]["id"]
    return Ids(
        tenant,
        {
            "namespace_id": namespace_id,
            "user_id": identity["id"],
            "service_account_id": service_account["id"],
            "api_key_id": identity["api_key_id"],
            "operation_id": operation_id,
            "invoice_id": invoice_id,
            "account_id": tenant.account_id,
            # Gateways belong to the operator: no tenant has one; any id is foreign.
            "gateway_id": f"gw-{tenant.account_id}",
        },
    )


@pytest.fixture(scope="module")
def accounts(stratus: StratusUp) -> tuple[Ids, Ids]:
    return _ids(stratus, "Alpha"), _ids(stratus, "Bravo")


def test_every_route_with_an_id_has_a_sample_body() -> None:
    missing = [(r.method, r.path) for r in ROUTES if (r.method, r.path) not in BODIES]
    assert not missing, f"add a valid body for {missing} to BODIES"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_another_accounts_ids_answer_as_unknown_ids(
    stratus: StratusUp, accounts: tuple[Ids, Ids], route: Any
) -> None:
    alpha, bravo = accounts
    names = re.findall(r"\{([^}]+)\}", route.path)
    body = BODIES[(route.method, route.path)]
    owner_allowed = decision("owner", route.action) != "denied"
    with http(stratus, alpha.tenant.api_key) as client:
        # Each id from B in turn (the others A's own), then all of B's.
        for foreign in itertools.product((False, True), repeat=len(names)):
            if not any(foreign):
                continue
            values = {
                name: (bravo if is_foreign else alpha).ids[name]
                for name, is_foreign in zip(names, foreign, strict=True)
            }
            path = route.path.format(**values).removeprefix("/api/v1")
            response = client.request(route.method, path, json=body)
            unknown = client.request(
                route.method,
                route.path.format(**dict.fromkeys(names, "zz-unknown")).removeprefix("/api/v1"),
                json=body,
            )
            expected = (404, "not-found") if owner_allowed else (403, "forbidden")
            assert (response.status_code, response.json()["type"].rsplit("/", 1)[1]) == expected, (
                values,
                response.text,
            )
            assert response.status_code == unknown.status_code
            assert response.json()["type"] == unknown.json()["type"]


def test_bravo_is_untouched(stratus: StratusUp, accounts: tuple[Ids, Ids]) -> None:
    """After every attempt above (run first in this module), B's key, namespace, service
    account and user are as they were."""
    _, bravo = accounts
    with http(stratus, bravo.tenant.api_key) as client:
        assert client.get("/current-identity").status_code == 200
        namespace = client.get(f"/namespaces/{bravo.ids['namespace_id']}").json()
        assert namespace["state"] == "ACTIVE"
        assert namespace["retention_days"] == 7
        assert client.get(f"/service-accounts/{bravo.ids['service_account_id']}").status_code == 200
        user = client.get(f"/users/{bravo.ids['user_id']}").json()
        assert user["account_role"] == "owner"
        assert user["namespace_permissions"] == []
        key = client.get(f"/api-keys/{bravo.ids['api_key_id']}").json()
        assert key["disabled"] is False
        assert (
            client.post(
                "/api-keys", json={"display_name": "still mine", "expiry": expiry()}
            ).status_code
            == 201
        )
