"""The per-process cache of verified API keys: a change that ends or narrows a credential is
refused at once by the API process that committed it (even with a long TTL), and by another
API process on the same database within its TTL; the TTL, the key's expiry and the size bound
hold with an injected clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from identity_support import assert_problem, expiry
from support import ApiAlone, wait_until

from auth import Principal, PrincipalKind
from controlplane.api_keys import service as api_keys
from controlplane.api_keys.cache import CredentialCache
from controlplane.config import Settings
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import Namespace, User
from controlplane.states import NamespaceState

# A: long enough that only the revocation, never the TTL, can explain a refusal at once.
TTL_A = 60
TTL_B = 2


@dataclass
class Apis:
    a: ApiAlone
    b: ApiAlone
    owner_key: str
    account_id: str

    def client(self, api: ApiAlone, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}
        )

    def status(self, api: ApiAlone, key: str, path: str = "/current-identity") -> int:
        with self.client(api, key) as client:
            return client.get(path).status_code

    def owner(self) -> httpx.Client:
        return self.client(self.a, self.owner_key)


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apis]:
    """Two API processes on one SQLite database."""
    data_dir = tmp_path_factory.mktemp("credential-cache")
    a = ApiAlone(data_dir, extra_env={"STRATUS_CREDENTIAL_CACHE_SECONDS": str(TTL_A)})
    b = ApiAlone(data_dir, extra_env={"STRATUS_CREDENTIAL_CACHE_SECONDS": str(TTL_B)})
    try:
        a.start()
        b.start()
        owner_key = a.new_tenant("Cache")
        with httpx.Client(headers={"Authorization": f"Bearer {owner_key}"}) as client:
            account_id = client.get(a.url + "/api/v1/current-identity").json()["account_id"]
        yield Apis(a, b, owner_key, account_id)
    finally:
        b.stop()
        a.stop()


def _database(apis: Apis) -> str:
    return Settings(data_dir=apis.a.data_dir).sqlalchemy_url


async def _store(apis: Apis, action: Any) -> Any:
    engine = create_engine(_database(apis))
    results = []
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            results.append(await action(session))
    finally:
        await engine.dispose()
    return results[0]


def _user_key(apis: Apis, user_id: str) -> str:
    """A key of an invited user, as if they had signed in and created one."""

    async def issue(session: Any) -> str:
        user = await session.get(User, user_id)
        _, token = await api_keys.issue_user_key(
            session, user, display_name="signed in", lifetime=dt.timedelta(days=1)
        )
        return token

    token: str = asyncio.run(_store(apis, issue))
    return token


def _namespace(apis: Apis, name: str) -> str:
    """A namespace row (this API has no worker to provision one; nothing acts on it)."""
    namespace_id = f"{name}.{apis.account_id}"

    async def add(session: Any) -> None:
        session.add(
            Namespace(
                id=namespace_id,
                account_id=apis.account_id,
                name=name,
                retention_days=7,
                accepted_client_ca="",
                state=NamespaceState.ACTIVE,
                resource_version=str(uuid.uuid4()),
            )
        )

    asyncio.run(_store(apis, add))
    return namespace_id


def _new_key(apis: Apis, **body: Any) -> tuple[str, str]:
    with apis.owner() as owner:
        created = owner.post("/api-keys", json={"display_name": "k", "expiry": expiry(), **body})
    assert created.status_code == 201, created.text
    return created.json()["token"], created.json()["api_key"]["id"]


def _invite(apis: Apis, email: str, role: str) -> dict[str, Any]:
    with apis.owner() as owner:
        response = owner.post("/users", json={"email": email, "account_role": role})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def test_disable_on_one_process_refuses_there_at_once_and_on_the_other_within_its_ttl(
    apis: Apis,
) -> None:
    token, key_id = _new_key(apis)
    assert apis.status(apis.a, token) == 200
    assert apis.status(apis.b, token) == 200
    with apis.owner() as owner:
        assert owner.post(f"/api-keys/{key_id}/disable").json()["disabled"] is True
    disabled = time.monotonic()
    with apis.client(apis.a, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")

    wait_until(lambda: apis.status(apis.b, token) == 401, timeout=TTL_B + 30)
    with apis.client(apis.b, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")
    print(f"B refused {time.monotonic() - disabled:.2f} s after the disable (TTL {TTL_B} s)")


def test_deleted_key_is_refused_at_once(apis: Apis) -> None:
    token, key_id = _new_key(apis)
    assert apis.status(apis.a, token) == 200
    with apis.owner() as owner:
        assert owner.delete(f"/api-keys/{key_id}").status_code == 204
    with apis.client(apis.a, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


def test_deleted_users_key_is_refused_at_once(apis: Apis) -> None:
    user = _invite(apis, "leaver@cache.example", "developer")
    token = _user_key(apis, user["id"])
    assert apis.status(apis.a, token) == 200
    with apis.owner() as owner:
        assert owner.delete(f"/users/{user['id']}").status_code == 204
    with apis.client(apis.a, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


def test_narrowed_role_is_refused_at_once(apis: Apis) -> None:
    user = _invite(apis, "demoted@cache.example", "admin")
    token = _user_key(apis, user["id"])
    with apis.client(apis.a, token) as client:
        assert client.get("/users").status_code == 200
    with apis.owner() as owner:
        demoted = owner.post(
            f"/users/{user['id']}",
            json={"resource_version": user["resource_version"], "account_role": "read"},
        )
        assert demoted.status_code == 200, demoted.text
    with apis.client(apis.a, token) as client:
        response = client.post("/users", json={"email": "x@cache.example", "account_role": "read"})
        assert_problem(response, 403, "forbidden")


def test_removed_namespace_permission_is_refused_at_once(apis: Apis) -> None:
    namespace_id = _namespace(apis, "cached")
    reader = _invite(apis, "reader@cache.example", "read")
    token = _user_key(apis, reader["id"])
    access = f"/namespaces/{namespace_id}/users/{reader['id']}/access"
    with apis.owner() as owner:
        assert owner.post(access, json={"permission": "read"}).status_code == 200
    assert apis.status(apis.a, token, f"/namespaces/{namespace_id}") == 200
    with apis.owner() as owner:
        assert owner.post(access, json={"permission": None}).status_code == 200
    with apis.client(apis.a, token) as client:
        assert_problem(client.get(f"/namespaces/{namespace_id}"), 404, "not-found")


def test_deleted_service_accounts_key_is_refused_at_once(apis: Apis) -> None:
    with apis.owner() as owner:
        created = owner.post("/service-accounts", json={"name": "ci", "account_role": "developer"})
        assert created.status_code == 201, created.text
    service_account_id = created.json()["id"]
    token, _ = _new_key(apis, owner_type="service_account", owner_id=service_account_id)
    assert apis.status(apis.a, token) == 200
    with apis.owner() as owner:
        assert owner.delete(f"/service-accounts/{service_account_id}").status_code == 204
    with apis.client(apis.a, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


# The cache itself, with an injected clock.

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PRINCIPAL = Principal(
    kind=PrincipalKind.USER, id="u1", account_id="acct1", account_role="read", display="user:x"
)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> dt.datetime:
        return self.at


def test_an_entry_lives_for_the_ttl_and_never_past_its_keys_expiry() -> None:
    clock = Clock()
    cache = CredentialCache(1.0, now=clock)
    cache.put("token-a", PRINCIPAL, None, generation=cache.generation)
    cache.put("token-b", PRINCIPAL, T0 + dt.timedelta(seconds=0.5), generation=cache.generation)
    clock.at = T0 + dt.timedelta(seconds=0.5) - dt.timedelta(microseconds=1)
    assert cache.get("token-a") is PRINCIPAL
    assert cache.get("token-b") is PRINCIPAL
    clock.at = T0 + dt.timedelta(seconds=0.5)
    assert cache.get("token-b") is None
    clock.at = T0 + dt.timedelta(seconds=1) - dt.timedelta(microseconds=1)
    assert cache.get("token-a") is PRINCIPAL
    clock.at = T0 + dt.timedelta(seconds=1)
    assert cache.get("token-a") is None
    assert len(cache) == 0


def test_zero_ttl_keeps_nothing_and_the_size_is_bounded_least_recent_first() -> None:
    off = CredentialCache(0)
    off.put("token", PRINCIPAL, None, generation=off.generation)
    assert off.get("token") is None

    cache = CredentialCache(60, max_entries=2, now=Clock())
    for token in ("one", "two"):
        cache.put(token, PRINCIPAL, None, generation=cache.generation)
    assert cache.get("one") is PRINCIPAL  # "two" is now the least recently used
    cache.put("three", PRINCIPAL, None, generation=cache.generation)
    assert len(cache) == 2
    assert cache.get("two") is None
    assert cache.get("one") is PRINCIPAL
    assert cache.get("three") is PRINCIPAL


def test_a_read_that_began_before_a_revocation_is_not_kept() -> None:
    cache = CredentialCache(60, now=Clock())
    began = cache.generation
    cache.clear()  # a revocation committed while the read was in flight
    cache.put("token", PRINCIPAL, None, generation=began)
    assert cache.get("token") is None


def test_the_token_itself_is_never_held() -> None:
    cache = CredentialCache(60, now=Clock())
    token = "stratus_abcdefghijkl_" + "S" * 43
    cache.put(token, PRINCIPAL, None, generation=cache.generation)
    assert token.encode() not in b"".join(cache._entries)
