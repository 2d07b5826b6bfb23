"""Settings: the account's SAML sign-in (IdP metadata upload, this account's SP metadata to
download) and the installation's OIDC providers (read-only). Reads and writes go through
``controlplane.saml.service``, as the API's SAML routes do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from auth import Action
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import InvalidField, StratusError
from controlplane.saml import service as saml
from controlplane.saml.endpoints import SAML_METADATA_TYPE
from controlplane.saml.service_provider import SpUrls
from controlplane.sign_in.relying_party import RelyingParty

router = APIRouter(include_in_schema=False)

# IdP metadata is a few KiB (a certificate or two); more is refused unread.
MAX_METADATA_BYTES = 256 * 1024
_NOTES = {"saml-saved": "The SAML identity provider is saved."}


def _sp_urls(request: Request, account_id: str) -> SpUrls:
    # As the API's SAML routes: from the configured public URL, never the Host header.
    return SpUrls.for_account(request.app.state.settings.public_base_url, account_id)


async def _settings_page(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    *,
    note: str | None = None,
    error: StratusError | None = None,
    pasted: str = "",
) -> Response:
    account_id = viewer.principal.account_id
    relying_party: RelyingParty = request.app.state.relying_party
    return render(
        request,
        "settings.html",
        status_code=error.status if error else 200,
        idp=await saml.configured_idp(session, viewer.principal),
        sp=_sp_urls(request, account_id) if account_id else None,
        may_configure=viewer.may(Action.SAML_CONFIGURE),
        # The installation's IdPs and this account's own (never another account's).
        oidc_providers=[
            provider
            for provider in relying_party.providers
            if provider.account_id in (None, account_id)
        ],
        note=note,
        error=error,
        pasted=pasted,
    )


@router.get("/settings")
async def settings_page(
    request: Request, viewer: CurrentViewer, session: SessionDep, note: str | None = None
) -> Response:
    return await _settings_page(request, viewer, session, note=_NOTES.get(note or ""))


@router.get("/settings/saml/sp-metadata.xml")
async def sp_metadata_download(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    """This account's SP metadata, the same XML as ``/api/v1/auth/saml/{account}/metadata``,
    as a file to upload to the IdP."""
    account_id = viewer.principal.account_id
    if account_id is None:
        raise InvalidField("the operator has no account, so no SAML service provider")
    xml = await saml.sp_metadata(session, account_id, _sp_urls(request, account_id))
    return Response(
        xml,
        media_type=SAML_METADATA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="stratus-sp-{account_id}.xml"'},
    )


@router.post("/settings/saml")
async def saml_upload(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    metadata_xml: Annotated[str, Form()] = "",
    metadata_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Set (or replace) the account's IdP from its metadata: an uploaded file or pasted XML."""
    try:
        xml = metadata_xml
        if metadata_file is not None and metadata_file.filename:
            data = await metadata_file.read(MAX_METADATA_BYTES + 1)
            if len(data) > MAX_METADATA_BYTES:
                raise InvalidField(
                    f"the metadata file is larger than {MAX_METADATA_BYTES // 1024} KiB",
                    field="metadata_xml",
                )
            try:
                xml = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidField(
                    "the metadata file is not UTF-8 XML", field="metadata_xml"
                ) from None
        if not xml.strip():
            raise InvalidField(
                "choose the IdP's metadata file or paste its XML", field="metadata_xml"
            )
        await saml.configure_idp(session, viewer.principal, metadata_xml=xml)
    except StratusError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()
        return await _settings_page(request, viewer, session, error=refused, pasted=metadata_xml)
    return RedirectResponse("/settings?note=saml-saved", status_code=303)
