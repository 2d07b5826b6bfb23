"""Which invited user a verified email signs in as, given IdPs bound to accounts (pure rules;
the end-to-end flow is in test_oidc_sign_in.py)."""

from __future__ import annotations

import pytest

from controlplane.config import OidcProvider
from controlplane.kit.errors import StratusError
from controlplane.models.user import User
from controlplane.sign_in.service import _match_user

SHARED = OidcProvider(name="shared", issuer="https://idp.example", client_id="c", client_secret="s")
ACME = OidcProvider(
    name="acme",
    issuer="https://login.acme.example",
    client_id="c",
    client_secret="s",
    account_id="acme1",
)
PROVIDERS = [SHARED, ACME]


def _user(account_id: str) -> User:
    return User(
        id=f"u-{account_id}", account_id=account_id, email="a@x.example", account_role="owner"
    )


def _refusal(users: list[User], provider: OidcProvider, hint: str | None = None) -> str:
    with pytest.raises(StratusError) as refused:
        _match_user(users, provider, PROVIDERS, hint)
    return refused.value.slug


def test_account_with_its_own_idp_refuses_the_shared_one() -> None:
    assert _refusal([_user("acme1")], SHARED) == "idp-not-allowed"
    assert _match_user([_user("acme1")], ACME, PROVIDERS, None).account_id == "acme1"


def test_bound_idp_signs_into_its_account_only() -> None:
    assert _refusal([_user("other")], ACME) == "not-invited"


def test_several_accounts_need_a_choice() -> None:
    users = [_user("one11"), _user("two22")]
    assert _refusal(users, SHARED) == "account-ambiguous"
    assert _match_user(users, SHARED, PROVIDERS, "two22").account_id == "two22"
    assert _refusal(users, SHARED, "nope") == "not-invited"
