"""For every route that takes an id, account A's owner on account B's ids answers exactly as
for ids that do not exist: 404 not-found (or the policy's 403 where the route is not A's to
call at all), and B's resources are untouched. The same holds for every id A sends in a query
string or a request body. The routes and fields come from the app and its OpenAPI schema, so a
new route or id field is covered (or fails here until it gets a sample request)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from billing_support import bill
from identity_support import expiry, service_account_with_key
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant

from controlplane.app import PUBLIC_PATHS, create_app
from controlplane.config import Settings
from controlplane.kit.db import utcnow
from controlplane.route_policy import decision, route_actions

APP = create_app(Settings(), run_migrations=False)
ROUTES = [
    route
    for route in route_actions(APP)
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
    ("GET", "/api/v1/namespaces/{namespace_id}/export-sink"): None,
    ("PUT", "/api/v1/namespaces/{namespace_id}/export-sink"): {
        "bucket": "history-bucket",
        "access_key_id": "key",
        "secret_access_key": "secret",
    },
    ("DELETE", "/api/v1/namespaces/{namespace_id}/export-sink"): None,
    ("POST", "/api/v1/namespaces/{namespace_id}/export-sink/validate"): None,
    ("GET", "/api/v1/namespaces/{namespace_id}/insights"): None,
    ("POST", "/api/v1/namespaces/{namespace_id}/tags"): {"tags_to_upsert": {"team": "x"}},
    ("GET", "/api/v1/operations/{operation_id}"): None,
    ("GET", "/api/v1/groups/{group_id}"): None,
    ("POST", "/api/v1/groups/{group_id}"): {"description": "x"},
    ("DELETE", "/api/v1/groups/{group_id}"): None,
    ("GET", "/api/v1/groups/{group_id}/members"): None,
    ("POST", "/api/v1/groups/{group_id}/members"): {"add": []},
    ("POST", "/api/v1/namespaces/{namespace_id}/groups/{group_id}/access"): {"permission": "read"},
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
    ("POST", "/api/v1/namespaces/{namespace_id}/service-accounts/{service_account_id}/access"): {
        "permission": "read"
    },
    ("POST", "/api/v1/users/{user_id}/invitation"): None,
    ("GET", "/api/v1/accounts/{account_id}"): None,
    ("POST", "/api/v1/accounts/{account_id}/suspend"): {"reason": "x"},
    ("POST", "/api/v1/accounts/{account_id}/resume"): None,
    ("DELETE", "/api/v1/accounts/{account_id}"): None,
    ("POST", "/api/v1/accounts/{account_id}/plan"): {"plan": "business"},
    ("POST", "/api/v1/accounts/{account_id}/credits"): {"amount": "1.00", "description": "x"},
    ("GET", "/api/v1/accounts/{account_id}/quotas"): None,
    ("POST", "/api/v1/accounts/{account_id}/quotas"): {"namespaces": 5},
    ("DELETE", "/api/v1/internal/gateways/{gateway_id}"): None,
    ("GET", "/api/v1/cells/{cell_id}"): None,
    ("POST", "/api/v1/cells/{cell_id}/drain"): None,
    ("POST", "/api/v1/cells/{cell_id}/undrain"): None,
    ("DELETE", "/api/v1/cells/{cell_id}"): None,
}


# Id fields outside the path that name nothing another account owns: an idempotency key each
# account chooses for itself, an export sink's S3 credential.
NOT_REFERENCES = frozenset({"async_operation_id", "access_key_id"})

# Every id field a request carries outside its path: (method, path, "query" | "body", field,
# dotted when nested) → (the kind of id it names, a request that passes validation with the
# id, as {"params": ...} or {"json": ...}), so the answer is about the id only.
ID_FIELDS: dict[tuple[str, str, str, str], tuple[str, Callable[[str], dict[str, Any]]]] = {
    ("GET", "/api/v1/usage", "query", "namespace_id"): (
        "namespace_id",
        lambda value: {
            "params": {
                "namespace_id": value,
                "start": str(utcnow().date()),
                "end": str(utcnow().date()),
            }
        },
    ),
    ("GET", "/api/v1/metrics", "query", "namespace_id"): (
        "namespace_id",
        lambda value: {"params": {"namespace_id": value}},
    ),
    ("POST", "/api/v1/service-accounts", "body", "namespace_scope.namespace_id"): (
        "namespace_id",
        lambda value: {
            "json": {
                "name": "cross-tenant",
                "namespace_scope": {"namespace_id": value, "permission": "read"},
            }
        },
    ),
    ("GET", "/api/v1/api-keys", "query", "owner_id"): (
        "service_account_id",
        lambda value: {"params": {"owner_id": value}},
    ),
    ("POST", "/api/v1/api-keys", "body", "owner_id"): (
        "service_account_id",
        lambda value: {
            "json": {
                "display_name": "cross-tenant",
                "expiry": expiry(),
                "owner_type": "service_account",
                "owner_id": value,
            }
        },
    ),
    ("PUT", "/api/v1/group-claims", "body", "mappings.group_id"): (
        "group_id",
        lambda value: {"json": {"mappings": [{"idp_group": "eng", "group_id": value}]}},
    ),
}


def _properties(schema: dict[str, Any], components: dict[str, Any]) -> Iterator[str]:
    """Every property of a JSON schema, nested ones dotted."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    for alternative in schema.get("anyOf", []) + schema.get("allOf", []):
        yield from _properties(alternative, components)
    if "items" in schema:  # a list's elements: their fields are the list's, dotted
        yield from _properties(schema["items"], components)
    for name, sub in schema.get("properties", {}).items():
        yield name
        yield from (f"{name}.{nested}" for nested in _properties(sub, components))


def _id_fields_outside_the_path() -> set[tuple[str, str, str, str]]:
    spec = APP.openapi()
    components = spec["components"]["schemas"]
    found = set()
    for path, operations in spec["paths"].items():
        if path in PUBLIC_PATHS:
            continue
        for method, operation in operations.items():
            fields = [
                ("query", parameter["name"])
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "query"
            ]
            for content in operation.get("requestBody", {}).get("content", {}).values():
                fields += [("body", name) for name in _properties(content["schema"], components)]
            for where, name in fields:
                last = name.rsplit(".", 1)[-1]
                if last.endswith("_id") and last not in NOT_REFERENCES:
                    found.add((method.upper(), path, where, name))
    return found


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
        group_id = client.post("/groups", json={"name": "shared-name"}).json()["id"]
        operation_id = client.get("/operations").json()["operations"][0]["id"]
        invoice_id = client.get("/invoices").json()["invoices"][0]["id"]
    return Ids(
        tenant,
        {
            "namespace_id": namespace_id,
            "user_id": identity["id"],
            "service_account_id": service_account["id"],
            "group_id": group_id,
            "api_key_id": identity["api_key_id"],
            "operation_id": operation_id,
            "invoice_id": invoice_id,
            "account_id": tenant.account_id,
            # Gateways belong to the operator: no tenant has one; any id is foreign.
            "gateway_id": f"gw-{tenant.account_id}",
            # Cells too: B's local cell is as foreign to A as any other.
            "cell_id": f"cell-{tenant.account_id}",
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


def test_every_id_field_outside_the_path_has_a_sample_request() -> None:
    """The schema's id fields in query strings and bodies are exactly those sampled below."""
    assert _id_fields_outside_the_path() == set(ID_FIELDS), (
        "add a sample request for each new id field to ID_FIELDS (or, if it names nothing an "
        "account owns, to NOT_REFERENCES)"
    )


@pytest.mark.parametrize("field", ID_FIELDS, ids=lambda f: f"{f[0]} {f[1]} {f[2]}:{f[3]}")
def test_another_accounts_ids_in_queries_and_bodies_answer_as_unknown_ids(
    stratus: StratusUp, accounts: tuple[Ids, Ids], field: tuple[str, str, str, str]
) -> None:
    """B's id in the field answers exactly as an unknown id (404 not-found, same field); A's
    own id passes, so the refusal is about whose id it is."""
    alpha, bravo = accounts
    method, path, _, _ = field
    kind, request = ID_FIELDS[field]
    path = path.format(**alpha.ids).removeprefix("/api/v1")
    with http(stratus, alpha.tenant.api_key) as client:
        foreign = client.request(method, path, **request(bravo.ids[kind]))
        unknown = client.request(method, path, **request("zz-unknown"))
        assert (foreign.status_code, foreign.json()["type"].rsplit("/", 1)[1]) == (
            404,
            "not-found",
        ), foreign.text
        assert (unknown.status_code, unknown.json()["type"]) == (
            foreign.status_code,
            foreign.json()["type"],
        )
        assert foreign.json().get("field") == unknown.json().get("field")
        own = client.request(method, path, **request(alpha.ids[kind]))
        assert own.status_code < 300, own.text


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_a_scim_token_reaches_no_other_accounts_user(
    stratus: StratusUp, accounts: tuple[Ids, Ids], method: str
) -> None:
    """A's SCIM token on B's user answers as on an unknown id (SCIM 404); the token alone names
    the account, so no path or body can point it elsewhere."""
    alpha, bravo = accounts
    with http(stratus, alpha.tenant.api_key) as client:
        token = client.post("/scim-token").json()["token"]
    body = {
        "PUT": {"userName": "taken@bravo.example"},
        "PATCH": {"Operations": [{"op": "replace", "path": "active", "value": False}]},
    }.get(method)
    with httpx.Client(
        base_url=stratus.api_url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as scim:
        foreign = scim.request(method, f"/Users/{bravo.ids['user_id']}", json=body)
        unknown = scim.request(method, "/Users/does-not-exist", json=body)
    assert foreign.status_code == unknown.status_code == 404, foreign.text
    assert foreign.headers["content-type"] == "application/scim+json"
    assert (
        foreign.json()["detail"].replace(bravo.ids["user_id"], "does-not-exist")
        == (unknown.json()["detail"])
    )


def test_a_scim_tokens_search_finds_no_other_accounts_users_or_groups(
    stratus: StratusUp, accounts: tuple[Ids, Ids]
) -> None:
    """A's ``POST /scim/v2/.search`` lists A's users and groups only: B's group of the same
    name and B's user are in no answer, even when the filter names them."""
    alpha, bravo = accounts
    with http(stratus, alpha.tenant.api_key) as client:
        token = client.post("/scim-token").json()["token"]
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    with httpx.Client(
        base_url=stratus.api_url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as scim:
        everything = scim.post("/.search", json=search).json()
        named = scim.post("/.search", json={**search, "filter": 'displayName eq "shared-name"'})
        by_id = [
            scim.post("/.search", json={**search, "filter": f'id eq "{bravo.ids[kind]}"'})
            for kind in ("user_id", "group_id")
        ]
    found = {row["id"] for row in everything["Resources"]}
    assert everything["totalResults"] == len(found)
    assert {alpha.ids["user_id"], alpha.ids["group_id"]} <= found
    assert not found & {bravo.ids["user_id"], bravo.ids["group_id"]}
    assert [row["id"] for row in named.json()["Resources"]] == [alpha.ids["group_id"]]
    assert [response.json()["totalResults"] for response in by_id] == [0, 0]


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
        group = client.get(f"/groups/{bravo.ids['group_id']}").json()
        assert (group["name"], group["description"]) == ("shared-name", "")
        assert group["namespace_permissions"] == []
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
