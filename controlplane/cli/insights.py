"""``stratus insights``: where a namespace's workload has a bottleneck (docs/insights.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context

if TYPE_CHECKING:
    from controlplane.insights.schemas import FindingOut, InsightsOut


def insights(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Option("--namespace", help="The namespace id (name.account)")],
    window: Annotated[str, typer.Option(help="What the evidence covers: 1h, 24h or 7d")] = "1h",
    include_resolved: Annotated[
        bool, typer.Option("--include-resolved", help="Also list findings resolved in 7 days")
    ] = False,
) -> None:
    """The namespace's findings (bottlenecks, failing activities, costly patterns), most severe
    first, with the numbers behind each and what to do about it."""
    c = Context.of(ctx)
    found = c.call(
        lambda client: client.get_insights(
            namespace, window=window, include_resolved=include_resolved
        )
    )
    c.emit(found, _text(found))


def _text(found: InsightsOut) -> str:
    analysis = found.analysis
    if analysis.analysed_at is None:
        status = f"not analysed over {found.window.value} yet (the job runs every few minutes)"
    else:
        calls = sum(analysis.calls.values())
        status = f"analysed {analysis.analysed_at:%Y-%m-%d %H:%M:%S} UTC, {calls} calls to the cell"
        if analysis.error:
            status += f"; last analysis failed: {analysis.error}"
    lines = [f"{found.namespace_id}, last {found.window.value}: {status}"]
    if not found.findings:
        lines.append("no findings")
    for finding in found.findings:
        lines += _finding(finding)
    return "\n".join(lines)


def _finding(finding: FindingOut) -> list[str]:
    state = f"resolved {finding.resolved_at:%Y-%m-%d %H:%M}" if finding.resolved_at else "active"
    lines = [
        "",
        f"{finding.severity.value.upper()}  {finding.kind.value}  "
        f"{finding.subject.kind.value} {finding.subject.name}  ({state})",
        "  evidence: "
        + ", ".join(f"{key}={value}" for key, value in sorted(finding.evidence.items())),
    ]
    if finding.examples:
        lines.append("  examples: " + ", ".join(finding.examples))
    lines.append(f"  do: {finding.recommendation}")
    lines.append(
        f"  first seen {finding.first_seen:%Y-%m-%d %H:%M}, "
        f"last seen {finding.last_seen:%Y-%m-%d %H:%M} UTC"
    )
    return lines
