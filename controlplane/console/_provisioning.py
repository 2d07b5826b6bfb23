"""Settings → Provisioning: the account's SCIM token (created with the token shown once,
revoked) and its group claims (the OIDC claim, the SAML attribute and the IdP group → user
group mappings; turned off).

Every read and write goes through ``controlplane.scim.tokens`` and
``controlplane.group_claims.service`` — what ``/api/v1/scim-token`` and
``/api/v1/group-claims`` call — so the policy, the validation (and its messages) and the audit
events are the API's own. The group claims service replaces the whole configuration; a form
here changes one part of it (the names, one mapping added or removed) and sends the rest as
it is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.console._people import _submit
from controlplane.console._session import CurrentViewer, Viewer
from controlplane.console._templates import render
from controlplane.group_claims import service as group_claims
from controlplane.group_claims.schemas import GroupClaimMappingIn, GroupClaimsSet
from controlplane.groups import service as groups
from controlplane.kit.authorization import require
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import InvalidField, NotFound, StratusError
from controlplane.scim import tokens as scim_tokens
from controlplane.scim.endpoints import scim_base_url

router = APIRouter(include_in_schema=False)

PAGE = "/settings/provisioning"
_NOTES = {
    "scim-revoked": "The SCIM token is revoked: provisioning stops until a new one is created.",
    "claims-saved": "Group claims are saved; they apply from each user's next sign-in.",
    "claims-off": "Group claims are off: sign-ins no longer change group memberships.",
}


def _require_either(viewer: Viewer) -> None:
    """The page is for who may manage either part; anyone else gets the policy's refusal."""
    if not viewer.may(Action.GROUP_CLAIMS_MANAGE):
        require(viewer.principal, Action.SCIM_TOKEN_MANAGE)


async def _claims(session: AsyncSession, viewer: Viewer) -> group_claims.GroupClaims | None:
    """The account's group claims; None when they are off."""
    try:
        return await group_claims.get(session, viewer.principal)
    except NotFound:
        return None


def _as_set(
    claims: group_claims.GroupClaims | None, mappings: list[GroupClaimMappingIn] | None = None
) -> GroupClaimsSet:
    """What ``PUT /api/v1/group-claims`` would be sent to keep ``claims`` as they are (the
    defaults when off), with ``mappings`` instead of theirs when given."""
    if claims is None:
        return GroupClaimsSet(mappings=mappings or [])
    return GroupClaimsSet(
        oidc_claim=claims.config.oidc_claim,
        saml_attribute=claims.config.saml_attribute,
        mappings=mappings
        if mappings is not None
        else [
            GroupClaimMappingIn(idp_group=mapping.idp_group, group_id=mapping.group_id)
            for mapping, _ in claims.mappings
        ],
    )


async def _page(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    note: str | None = None,
    error: StratusError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    _require_either(viewer)
    may_scim = viewer.may(Action.SCIM_TOKEN_MANAGE)
    may_claims = viewer.may(Action.GROUP_CLAIMS_MANAGE)
    claims = await _claims(session, viewer) if may_claims else None
    shown = _as_set(claims)
    return render(
        request,
        "provisioning.html",
        status_code=error.status if error else 200,
        note=note,
        error=error,
        may_scim=may_scim,
        scim_token=await scim_tokens.get(session, viewer.principal) if may_scim else None,
        scim_base_url=scim_base_url(request),
        may_claims=may_claims,
        claims=claims,
        groups=await groups.list_all(session, viewer.principal)
        if may_claims and viewer.may(Action.GROUP_READ)
        else [],
        values={
            "oidc_claim": shown.oidc_claim,
            "saml_attribute": shown.saml_attribute,
            "idp_group": "",
            "group_id": "",
            **(values or {}),
        },
    )


@router.get(PAGE)
async def provisioning_page(
    request: Request, viewer: CurrentViewer, session: SessionDep, note: str | None = None
) -> Response:
    return await _page(request, viewer, session, note=_NOTES.get(note or ""))


# SCIM token ---------------------------------------------------------------------------------


@router.post(f"{PAGE}/scim-token")
async def scim_token_create(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    """Create the account's SCIM token (the previous one stops working), as
    ``POST /api/v1/scim-token`` does, and show it on this answer: the only time it is shown;
    it is never put in a URL, a redirect or a later page."""
    row, token = await scim_tokens.create(session, viewer.principal)
    response = render(
        request,
        "scim_token_created.html",
        status_code=201,
        created_at=row.created_at,
        scim_base_url=scim_base_url(request),
        token=token,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _confirm(
    request: Request, heading: str, explanation: str, *, action: str, label: str
) -> Response:
    """The confirmation page of one of this page's deletions (POSTs to ``action``)."""
    return render(
        request,
        "confirm.html",
        error=None,
        tabs=[],
        heading=heading,
        explanation=explanation,
        action=action,
        hidden={},
        confirm_label=label,
        cancel=PAGE,
    )


async def _delete(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    delete: Callable[[AsyncSession, Principal], Awaitable[None]],
    *,
    note: str,
) -> Response:
    """Run one of this page's deletions through its service, as its API route does; back to
    the page with ``note``, or the page with the service's refusal."""
    return await _submit(
        session,
        partial(delete, session, viewer.principal),
        done=lambda _: f"{PAGE}?note={note}",
        form=partial(_page, request, viewer, session),
    )


@router.get(f"{PAGE}/scim-token/revoke")
async def scim_token_revoke_confirm(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    if await scim_tokens.get(session, viewer.principal) is None:
        raise NotFound("the account has no SCIM token")
    return _confirm(
        request,
        "Revoke the SCIM token?",
        "The identity provider's provisioning stops at once: its requests are refused "
        "until a new token is created and given to it. Users and groups stay as they are.",
        action=f"{PAGE}/scim-token/revoke",
        label="Revoke token",
    )


@router.post(f"{PAGE}/scim-token/revoke")
async def scim_token_revoke(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    """Delete the token (SCIM off), as ``DELETE /api/v1/scim-token`` does."""
    return await _delete(request, viewer, session, scim_tokens.delete, note="scim-revoked")


# Group claims -------------------------------------------------------------------------------


async def _put_claims(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    body: GroupClaimsSet,
    *,
    values: dict[str, str],
    new_mapping: int | None = None,
) -> Response:
    """``PUT /api/v1/group-claims`` with ``body``; a refusal shows on the page, on the form
    field it names (``new_mapping``: the index of the mapping the form added)."""
    fields = {"oidc_claim": "oidc_claim", "saml_attribute": "saml_attribute"}
    if new_mapping is not None:
        fields[f"mappings[{new_mapping}].idp_group"] = "idp_group"
        fields[f"mappings[{new_mapping}].group_id"] = "group_id"

    async def put() -> group_claims.GroupClaims:
        return await group_claims.put(session, viewer.principal, body)

    return await _submit(
        session,
        put,
        done=lambda _: f"{PAGE}?note=claims-saved",
        form=partial(_page, request, viewer, session, values=values),
        fields=fields,
    )


@router.post(f"{PAGE}/group-claims")
async def group_claims_names(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    oidc_claim: Annotated[str, Form()] = "",
    saml_attribute: Annotated[str, Form()] = "",
) -> Response:
    """Set the claim and attribute names (turning group claims on, without mappings, when they
    are off); the mappings stay."""
    current = _as_set(await _claims(session, viewer))
    body = current.model_copy(update={"oidc_claim": oidc_claim, "saml_attribute": saml_attribute})
    values = {"oidc_claim": oidc_claim, "saml_attribute": saml_attribute}
    return await _put_claims(request, viewer, session, body, values=values)


@router.post(f"{PAGE}/group-claims/mappings")
async def group_claims_add_mapping(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    idp_group: Annotated[str, Form()] = "",
    group_id: Annotated[str, Form()] = "",
) -> Response:
    """Add one mapping (turning group claims on, with the default names, when they are off)."""
    current = _as_set(await _claims(session, viewer))
    added = GroupClaimMappingIn(idp_group=idp_group, group_id=group_id)
    body = current.model_copy(update={"mappings": [*current.mappings, added]})
    return await _put_claims(
        request,
        viewer,
        session,
        body,
        values={"idp_group": idp_group, "group_id": group_id},
        new_mapping=len(current.mappings),
    )


@router.post(f"{PAGE}/group-claims/mappings/remove")
async def group_claims_remove_mapping(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    idp_group: Annotated[str, Form()] = "",
    group_id: Annotated[str, Form()] = "",
) -> Response:
    """Remove one mapping; the rest stays."""
    claims = await _claims(session, viewer)
    current = _as_set(claims)
    kept = [m for m in current.mappings if (m.idp_group, m.group_id) != (idp_group, group_id)]
    if claims is None or len(kept) == len(current.mappings):
        return await _submit(
            session,
            partial(_no_such_mapping, idp_group),
            done=lambda _: PAGE,
            form=partial(_page, request, viewer, session),
        )
    body = current.model_copy(update={"mappings": kept})
    return await _put_claims(request, viewer, session, body, values={})


async def _no_such_mapping(idp_group: str) -> None:
    raise InvalidField(f"no mapping of the IdP group {idp_group!r} to that group (any more)")


@router.get(f"{PAGE}/group-claims/delete")
async def group_claims_delete_confirm(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    await group_claims.get(session, viewer.principal)  # the policy, and 404 when off
    return _confirm(
        request,
        "Turn group claims off?",
        "Sign-ins stop changing group memberships, and the claim, attribute and mappings "
        "are deleted. Memberships already made from the identity provider's groups stay "
        "until removed.",
        action=f"{PAGE}/group-claims/delete",
        label="Turn off group claims",
    )


@router.post(f"{PAGE}/group-claims/delete")
async def group_claims_delete(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    """Delete the configuration, as ``DELETE /api/v1/group-claims`` does."""
    return await _delete(request, viewer, session, group_claims.delete, note="claims-off")
