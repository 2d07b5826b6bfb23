"""The workflow browser of a namespace: a list (visibility query, status filter, paging) and a
run's detail (input, result, pending activities, event history). Read-only; every read goes
through ``controlplane.workflows.service``, which applies the gateway's check and reaches the
namespace's cell by its route."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from controlplane.console._csp import CONTENT_SECURITY_POLICY
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import InvalidField, StratusError
from controlplane.namespaces import spec
from controlplane.workflows import service
from controlplane.workflows.service import CellChannels, NamespaceNotServed, WorkflowsUnavailable

router = APIRouter(include_in_schema=False)

DEFAULT_PAGE_SIZE = 25
DEFAULT_HISTORY_PAGE_SIZE = 50


async def _channels(request: Request) -> CellChannels:
    channels: CellChannels = request.app.state.cell_channels
    return channels


def list_url(namespace_id: str, **params: str | int) -> str:
    """The list's address with ``params`` (empty ones and default page sizes left out)."""
    kept = {
        name: value
        for name, value in params.items()
        if value != "" and not (name == "page_size" and value == DEFAULT_PAGE_SIZE)
    }
    base = f"/namespaces/{quote(namespace_id, safe='')}/workflows"
    return f"{base}?{urlencode(kept)}" if kept else base


def run_url(namespace_id: str, workflow_id: str, run_id: str, **params: str | int) -> str:
    """A run's address (the workflow id may hold slashes: the route takes it as a path)."""
    kept = {
        name: value
        for name, value in params.items()
        if value != "" and not (name == "history_page_size" and value == DEFAULT_HISTORY_PAGE_SIZE)
    }
    base = (
        f"/namespaces/{quote(namespace_id, safe='')}/workflows/"
        f"{quote(workflow_id, safe='/')}/{quote(run_id, safe='')}"
    )
    return f"{base}?{urlencode(kept)}" if kept else base


ChannelsDep = Annotated[CellChannels, Depends(_channels)]
# Free text from the address bar: bounded here, checked by the service.
_Text = Annotated[str, Query(max_length=4096)]


@router.get("/namespaces/{namespace_id}/workflows")
async def workflow_list(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    channels: ChannelsDep,
    query: _Text = "",
    status: Annotated[str, Query(max_length=32)] = "",
    page: _Text = "",
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Response:
    """One page of the namespace's workflows; errors in the search show next to its fields, a
    namespace that cannot be browsed now says why."""
    namespace = await service.namespace_for_reading(session, viewer.principal, namespace_id)
    error: StratusError | None = None
    listing = None
    try:
        listing = await service.list_workflows(
            session,
            viewer.principal,
            channels,
            namespace_id=namespace.id,
            query=query,
            status=status,
            page=page,
            page_size=page_size,
        )
    except (InvalidField, NamespaceNotServed, WorkflowsUnavailable) as refused:
        error = refused
    search: dict[str, str | int] = {"query": query, "status": status, "page_size": page_size}
    next_url = (
        list_url(namespace.id, **search, page=listing.next_page)
        if listing is not None and listing.next_page
        else None
    )
    return render(
        request,
        "workflows.html",
        status_code=error.status if error else 200,
        namespace=namespace,
        listing=listing,
        error=error,
        query=query,
        status=status,
        statuses=service.STATUSES,
        page_size=page_size,
        default_page_size=DEFAULT_PAGE_SIZE,
        first_url=list_url(namespace.id, **search) if page else None,
        next_url=next_url,
        run_url=run_url,
    )


@router.get("/namespaces/{namespace_id}/workflows/{workflow_id:path}/{run_id}")
async def workflow_detail(
    request: Request,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    channels: ChannelsDep,
    history_page: _Text = "",
    history_page_size: int = DEFAULT_HISTORY_PAGE_SIZE,
) -> Response:
    """A workflow run and one page of its event history."""
    detail = await service.describe_workflow(
        session,
        viewer.principal,
        channels,
        namespace_id=namespace_id,
        workflow_id=workflow_id,
        run_id=run_id,
        history_page=history_page,
        history_page_size=history_page_size,
    )
    codec_origin = spec.codec_origin(detail.namespace.codec_server)
    response = render(
        request,
        "workflow_detail.html",
        detail=detail,
        codec_server=detail.namespace.codec_server,
        list_url=list_url(detail.namespace.id),
        first_url=(
            run_url(detail.namespace.id, workflow_id, run_id, history_page_size=history_page_size)
            if history_page
            else None
        ),
        next_url=(
            run_url(
                detail.namespace.id,
                workflow_id,
                run_id,
                history_page=detail.history.next_page,
                history_page_size=history_page_size,
            )
            if detail.history.next_page
            else None
        ),
    )
    if codec_origin is not None:
        # This page alone may reach the namespace's codec server (validated: scheme, host and
        # port only, no character that could end the directive).
        response.headers["Content-Security-Policy"] = (
            f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {codec_origin}"
        )
    return response
