"""A namespace's workload insights: the findings of the insights job over a window, through the
same service as ``GET /api/v1/namespaces/{id}/insights`` (its permission, its 404 for another
account's namespace, its refusal of a bad window)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request, Response

from auth import Action, Resource
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.console._workflows import list_url
from controlplane.insights import service
from controlplane.insights.findings import FindingKind, Window
from controlplane.kit.deps import SessionDep

router = APIRouter(include_in_schema=False)

# What each finding kind is called on the page (docs/insights.md describes each).
KIND_TITLES = {
    FindingKind.UNDER_PROVISIONED_WORKERS: "Too few workers",
    FindingKind.NO_POLLERS: "Work but no pollers",
    FindingKind.GREEDY_WORKERS: "Greedy pollers",
    FindingKind.UNUSED_QUEUE_POLLERS: "Pollers on an unused queue",
    FindingKind.STICKY_CACHE_TOO_SMALL: "Sticky cache too small",
    FindingKind.THROTTLING: "Throttled by the namespace's limits",
    FindingKind.ACTIVITY_FAILURE_STORM: "Activity failures and retries",
    FindingKind.ACTIVITY_WITHOUT_HEARTBEAT: "Long activity without heartbeats",
    FindingKind.WORKFLOW_TASK_FAILURES: "Workflow task failures",
    FindingKind.HISTORY_NEAR_LIMIT: "History near Temporal's limits",
    FindingKind.HOT_WORKFLOW: "Hot workflow",
    FindingKind.SHORT_TIMER_POLLING: "Polling loop of short timers",
    FindingKind.ACTION_SPEND: "Where the actions go",
}
WINDOW_TITLES = {Window.HOUR: "Last hour", Window.DAY: "Last 24 hours", Window.WEEK: "Last 7 days"}


def insights_url(namespace_id: str, window: Window, *, include_resolved: bool) -> str:
    params = {}
    if window is not Window.HOUR:
        params["window"] = window.value
    if include_resolved:
        params["include_resolved"] = "true"
    base = f"/namespaces/{quote(namespace_id, safe='')}/insights"
    return f"{base}?{urlencode(params)}" if params else base


def example_url(namespace_id: str, workflow_id: str) -> str:
    """The workflow browser, filtered to one workflow id."""
    escaped = workflow_id.replace("\\", "\\\\").replace('"', '\\"')
    return list_url(namespace_id, query=f'WorkflowId="{escaped}"')


@router.get("/namespaces/{namespace_id}/insights")
async def insights_page(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    window: Annotated[str, Query(max_length=16)] = "",
    include_resolved: bool = False,
) -> Response:
    """The namespace's findings over the window, most severe first."""
    insights = await service.get(
        session,
        viewer.principal,
        namespace_id,
        window=window,
        include_resolved=include_resolved,
    )
    return render(
        request,
        "insights.html",
        insights=insights,
        windows=list(Window),
        window_titles=WINDOW_TITLES,
        kind_titles={kind.value: title for kind, title in KIND_TITLES.items()},
        insights_url=insights_url,
        example_url=example_url,
        include_resolved=include_resolved,
        may_browse=viewer.may(
            Action.NAMESPACE_DATA_READ,
            Resource(insights.namespace.account_id, insights.namespace.id),
        ),
    )
