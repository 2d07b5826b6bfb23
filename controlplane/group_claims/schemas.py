from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

DEFAULT_CLAIM = "groups"


class GroupClaimMappingIn(BaseModel):
    idp_group: str = Field(
        description="A group as the identity provider names it in the claim or attribute "
        "(Okta: the group name; Entra ID: the group's object id; Keycloak: the group path)"
    )
    group_id: str = Field(description="The Stratus user group its members join")


class GroupClaimsSet(BaseModel):
    oidc_claim: str = Field(
        default=DEFAULT_CLAIM, description="The ID-token claim listing the user's groups"
    )
    saml_attribute: str = Field(
        default=DEFAULT_CLAIM, description="The assertion attribute listing the user's groups"
    )
    mappings: list[GroupClaimMappingIn] = Field(
        default_factory=list,
        description="IdP group → user group; an IdP group may map to several groups and "
        "several IdP groups to one",
    )


class GroupClaimMappingOut(BaseModel):
    idp_group: str
    group_id: str
    group_name: str


class GroupClaimsOut(BaseModel):
    account_id: str
    oidc_claim: str
    saml_attribute: str
    mappings: list[GroupClaimMappingOut]
    updated_at: dt.datetime
