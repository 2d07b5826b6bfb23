"""SCIM JSON: users and groups as RFC 7643 resources, the discovery documents
(ServiceProviderConfig, ResourceTypes, Schemas) and ``attributes``/``excludedAttributes``."""

from __future__ import annotations

from typing import Any

from controlplane.models import User
from controlplane.scim.filters import CORE_GROUP, CORE_USER
from controlplane.scim.service import MAX_PAGE, GroupView

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS_URL = "https://stratus.dev/docs/teams#scim-provisioning"
# Returned whatever ``attributes`` asks (RFC 7643 §7, "returned": "always").
ALWAYS = frozenset({"id", "schemas", "meta"})


def _meta(kind: str, location: str, created: Any, updated: Any, version: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": created.isoformat(),
        "lastModified": updated.isoformat(),
        "location": location,
        "version": f'W/"{version}"',
    }


def user_resource(user: User, base: str) -> dict[str, Any]:
    location = f"{base}/Users/{user.id}"
    body: dict[str, Any] = {
        "schemas": [CORE_USER],
        "id": user.id,
        "userName": user.email,
        "active": user.active,
        "emails": [{"value": user.email, "type": "work", "primary": True}],
        "meta": _meta("User", location, user.created_at, user.updated_at, user.resource_version),
    }
    if user.external_id is not None:
        body["externalId"] = user.external_id
    if user.display_name is not None:
        body["displayName"] = user.display_name
    name = {
        key: value
        for key, value in (("givenName", user.given_name), ("familyName", user.family_name))
        if value is not None
    }
    if name:
        body["name"] = name
    return body


def group_resource(view: GroupView, base: str) -> dict[str, Any]:
    group = view.group
    location = f"{base}/Groups/{group.id}"
    body: dict[str, Any] = {
        "schemas": [CORE_GROUP],
        "id": group.id,
        "displayName": group.name,
        "meta": _meta(
            "Group", location, group.created_at, group.updated_at, group.resource_version
        ),
    }
    if group.external_id is not None:
        body["externalId"] = group.external_id
    if view.members:
        body["members"] = [
            {"value": user.id, "$ref": f"{base}/Users/{user.id}"} for user in view.members
        ]
    return body


def project(
    resource: dict[str, Any], attributes: str | None, excluded: str | None
) -> dict[str, Any]:
    """``resource`` with only the ``attributes`` asked for (and those always returned), or
    without the ``excluded`` ones (RFC 7644 §3.4.2.5). Names are top-level attributes or
    ``attribute.subAttribute`` (which keeps or drops the whole top-level attribute)."""

    def names(text: str) -> set[str]:
        found = set()
        for part in text.split(","):
            name = part.strip()
            for urn in (CORE_USER, CORE_GROUP):
                if name.lower().startswith(urn.lower() + ":"):
                    name = name[len(urn) + 1 :]
            if name:
                found.add(name.split(".")[0].lower())
        return found

    if attributes:
        wanted = names(attributes) | ALWAYS
        return {key: value for key, value in resource.items() if key.lower() in wanted}
    if excluded:
        dropped = names(excluded) - ALWAYS
        return {key: value for key, value in resource.items() if key.lower() not in dropped}
    return resource


def list_response(resources: list[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS_URL,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_PAGE},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "SCIM token",
                "description": "The account's SCIM token: POST /api/v1/scim-token",
                "documentationUri": DOCS_URL,
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def _attribute(
    name: str,
    *,
    kind: str = "string",
    required: bool = False,
    mutability: str = "readWrite",
    uniqueness: str = "none",
    multi: bool = False,
    case_exact: bool = False,
    description: str = "",
    sub: list[dict[str, Any]] | None = None,
    reference_types: list[str] | None = None,
) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": description,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    }
    if sub is not None:
        attribute["subAttributes"] = sub
    if reference_types is not None:
        attribute["referenceTypes"] = reference_types
    return attribute


USER_ATTRIBUTES = [
    _attribute(
        "userName",
        required=True,
        uniqueness="server",
        description="The user's email address (lowercased): the identity they sign in with.",
    ),
    _attribute(
        "name",
        kind="complex",
        description="The user's name.",
        sub=[_attribute("givenName"), _attribute("familyName")],
    ),
    _attribute("displayName", description="The name shown for the user."),
    _attribute(
        "active",
        kind="boolean",
        required=True,
        description="false deprovisions the user at once (sessions ended, API keys "
        "disabled, sign-in refused); omitted on create, the user is active.",
    ),
    _attribute(
        "emails",
        kind="complex",
        multi=True,
        mutability="readOnly",
        description="The user's email: always userName (primary).",
        sub=[
            _attribute("value", mutability="readOnly"),
            _attribute("type", mutability="readOnly"),
            _attribute("primary", kind="boolean", mutability="readOnly"),
        ],
    ),
]

GROUP_ATTRIBUTES = [
    _attribute(
        "displayName",
        required=True,
        uniqueness="server",
        description="The group's name, unique in the account.",
    ),
    _attribute(
        "members",
        kind="complex",
        multi=True,
        description="The group's users.",
        sub=[
            _attribute("value", mutability="immutable", description="A user's id."),
            _attribute(
                "$ref",
                kind="reference",
                mutability="immutable",
                reference_types=["User"],
                description="The user's URI.",
            ),
        ],
    ),
]


def schemas(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [SCHEMA_SCHEMA],
            "id": CORE_USER,
            "name": "User",
            "description": "A user of the account",
            "attributes": USER_ATTRIBUTES,
            "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{CORE_USER}"},
        },
        {
            "schemas": [SCHEMA_SCHEMA],
            "id": CORE_GROUP,
            "name": "Group",
            "description": "A user group of the account",
            "attributes": GROUP_ATTRIBUTES,
            "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{CORE_GROUP}"},
        },
    ]


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": name,
            "name": name,
            "endpoint": f"/{name}s",
            "description": f"The account's {name.lower()}s",
            "schema": schema,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{name}"},
        }
        for name, schema in (("User", CORE_USER), ("Group", CORE_GROUP))
    ]
