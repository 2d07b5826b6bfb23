"""The account's group claims over HTTP and the CLI: owners and admins set, read and turn off
the mapping of IdP groups to user groups (audited); every bad name, value, cap and foreign or
unknown group is refused with its exact problem. What sign-in does with it is tested with the
real IdPs (tests/controlplane/oidc/test_group_claims_oidc.py, saml/test_saml_sign_in.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from group_support import create_group
from identity_support import assert_problem, user_with_key
from support import StratusUp, Tenant, http, new_tenant

from controlplane.group_claims.service import asserted_groups

# HTTP only: the SQL behind it runs on PostgreSQL in the SAML sign-in test.
pytestmark = pytest.mark.sqlite_only


@dataclass(frozen=True)
class Setup:
    tenant: Tenant
    eng: str
    ops: str
    foreign: str
    developer_key: str


@pytest.fixture(scope="module")
def setup(stratus: StratusUp) -> Setup:
    tenant = new_tenant(stratus, "Claimco")
    other = new_tenant(stratus, "Claimother")
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@claimco.example", "developer")
    return Setup(
        tenant=tenant,
        eng=create_group(stratus, tenant.account_id, "eng", account_role="developer"),
        ops=create_group(stratus, tenant.account_id, "ops"),
        foreign=create_group(stratus, other.account_id, "eng"),
        developer_key=developer_key,
    )


def test_put_get_delete_round_trip_is_audited(stratus: StratusUp, setup: Setup) -> None:
    """PUT replaces the whole configuration: one IdP group may map to several groups and
    several IdP groups to one; a repeated pair counts once. DELETE turns it off (then 404)."""
    body = {
        "oidc_claim": "https://claims.example/groups",
        "saml_attribute": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "mappings": [
            {"idp_group": "eng-oncall", "group_id": setup.eng},
            {"idp_group": "eng-oncall", "group_id": setup.ops},
            {"idp_group": "platform", "group_id": setup.ops},
            {"idp_group": "platform", "group_id": setup.ops},
        ],
    }
    with http(stratus, setup.tenant.api_key) as client:
        assert_problem(client.get("/group-claims"), 404, "not-found")
        put = client.put("/group-claims", json=body)
        assert put.status_code == 200, put.text
        got = client.get("/group-claims").json()
        assert got == put.json()
        assert got["oidc_claim"] == body["oidc_claim"]
        assert got["saml_attribute"] == body["saml_attribute"]
        assert [(m["idp_group"], m["group_name"]) for m in got["mappings"]] == [
            ("eng-oncall", "eng"),
            ("eng-oncall", "ops"),
            ("platform", "ops"),
        ]
        # Replaced whole: the defaults and one mapping left.
        replaced = client.put(
            "/group-claims", json={"mappings": [{"idp_group": "eng", "group_id": setup.eng}]}
        ).json()
        assert (replaced["oidc_claim"], replaced["saml_attribute"]) == ("groups", "groups")
        assert [m["idp_group"] for m in replaced["mappings"]] == ["eng"]
        assert client.delete("/group-claims").status_code == 204
        assert_problem(client.get("/group-claims"), 404, "not-found")
        assert_problem(client.delete("/group-claims"), 404, "not-found")
        events = client.get("/audit-logs", params={"page_size": 10}).json()["audit_logs"]
    actions = [e["action"] for e in events if e["action"].startswith("group_claims.")]
    assert actions[:3] == ["group_claims.delete", "group_claims.update", "group_claims.update"]
    first = next(e for e in events if e["action"] == "group_claims.update")
    assert first["details"]["mappings"] == [{"idp_group": "eng", "group_id": setup.eng}]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"oidc_claim": ""}, "oidc_claim"),
        ({"oidc_claim": "my groups"}, "oidc_claim"),
        ({"oidc_claim": "g" * 257}, "oidc_claim"),
        ({"saml_attribute": "groups\n"}, "saml_attribute"),
        ({"saml_attribute": "grüppen"}, "saml_attribute"),
        ({"mappings": [{"idp_group": "", "group_id": "ENG"}]}, "mappings[0].idp_group"),
        ({"mappings": [{"idp_group": "x" * 257, "group_id": "ENG"}]}, "mappings[0].idp_group"),
        ({"mappings": [{"idp_group": "eng\x1b", "group_id": "ENG"}]}, "mappings[0].idp_group"),
        ({"mappings": [{"idp_group": "eng\u202e", "group_id": "ENG"}]}, "mappings[0].idp_group"),
        ({"mappings": [{"idp_group": f"g{i}", "group_id": "ENG"} for i in range(501)]}, "mappings"),
    ],
    ids=[
        "empty-claim",
        "claim-with-space",
        "claim-too-long",
        "attribute-with-newline",
        "attribute-not-ascii",
        "empty-idp-group",
        "idp-group-too-long",
        "idp-group-escape",
        "idp-group-bidi",
        "too-many-mappings",
    ],
)
def test_bad_configuration_is_refused(
    stratus: StratusUp, setup: Setup, change: dict[str, Any], field: str
) -> None:
    body = {"mappings": [{"idp_group": "eng", "group_id": "ENG"}], **change}
    text = json.dumps(body).replace('"ENG"', json.dumps(setup.eng))
    with http(stratus, setup.tenant.api_key) as client:
        response = client.put(
            "/group-claims", content=text, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "invalid-field")
        assert response.json()["field"] == field
        assert_problem(client.get("/group-claims"), 404, "not-found")


def test_another_accounts_group_answers_as_an_unknown_one(stratus: StratusUp, setup: Setup) -> None:
    with http(stratus, setup.tenant.api_key) as client:
        answers = []
        for group_id in (setup.foreign, "zz-unknown"):
            response = client.put(
                "/group-claims",
                json={
                    "mappings": [
                        {"idp_group": "eng", "group_id": setup.eng},
                        {"idp_group": "eng", "group_id": group_id},
                    ]
                },
            )
            assert_problem(response, 404, "not-found")
            assert response.json()["field"] == "mappings[1].group_id"
            assert group_id in response.json()["detail"]
            answers.append(response.json()["detail"].replace(group_id, "<id>"))
        assert answers[0] == answers[1]
        assert_problem(client.get("/group-claims"), 404, "not-found")


def test_a_developer_may_not_read_or_set_group_claims(stratus: StratusUp, setup: Setup) -> None:
    with http(stratus, setup.developer_key) as client:
        for response in (
            client.get("/group-claims"),
            client.put("/group-claims", json={"mappings": []}),
            client.delete("/group-claims"),
        ):
            assert_problem(response, 403, "forbidden")


def test_cli_sets_reads_and_turns_off_group_claims(stratus: StratusUp, setup: Setup) -> None:
    key = setup.tenant.api_key
    result = stratus.cli(
        "--output", "json", "group-claims", "set", "--oidc-claim", "roles",
        "--map", f"eng-oncall={setup.eng}", "--map", f"a=b={setup.ops}", api_key=key,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["oidc_claim"] == "roles"
    assert [(m["idp_group"], m["group_id"]) for m in claims["mappings"]] == [
        ("a=b", setup.ops),
        ("eng-oncall", setup.eng),
    ]
    shown = stratus.cli("group-claims", "get", api_key=key)
    assert f"eng-oncall\t→ eng ({setup.eng})" in shown.stdout
    bad = stratus.cli("group-claims", "set", "--map", "no-separator", api_key=key)
    assert bad.returncode == 2
    assert "is not IDP_GROUP=GROUP_ID" in bad.stderr
    unknown = stratus.cli("group-claims", "set", "--map", "eng=zz-unknown", api_key=key)
    assert unknown.returncode == 1
    assert "no group 'zz-unknown' in this account" in unknown.stderr
    assert stratus.cli("group-claims", "delete", api_key=key).returncode == 0
    gone = stratus.cli("group-claims", "get", api_key=key)
    assert gone.returncode == 1
    assert "group claims are not configured" in gone.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eng", ["eng"]),
        (["eng", "ops"], ["eng", "ops"]),
        (["eng", 7, None, {"name": "x"}, ["nested"], "", "x" * 257], ["eng"]),
        ({"eng": True}, []),
        (42, []),
        (None, []),
        ([f"g{i}" for i in range(5000)] + ["eng"], [f"g{i}" for i in range(1000)]),
    ],
    ids=["one-string", "list", "odd-items", "object", "number", "absent", "too-many"],
)
def test_what_a_claim_value_asserts(value: object, expected: list[str]) -> None:
    """A list of strings or one string; anything else is no group; past 1,000 values the rest
    is not read, so a hostile IdP cannot make a sign-in do unbounded work."""
    assert asserted_groups(value) == expected
