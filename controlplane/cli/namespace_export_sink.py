"""``stratus namespace export-sink``: where a namespace's closed workflow histories are exported
(S3), the export's progress, and a probe of the sink."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import (
    NamespaceOption,
    SinkAccessKeyIdOption,
    SinkBucketOption,
    SinkEndpointOption,
    SinkPrefixOption,
    SinkRegionOption,
    SinkSecretOption,
    sink_error_text,
    sink_target_text,
)

if TYPE_CHECKING:
    from controlplane.history_exports.schemas import HistoryExportSinkOut

app = typer.Typer(
    no_args_is_help=True,
    help="Where the namespace's closed workflow histories are exported (S3, hourly).",
)


def _sink_text(sink: HistoryExportSinkOut) -> str:
    until = sink.exported_until or "nothing yet"
    error = sink_error_text(sink)
    return (
        sink_target_text(sink) + f"\nruns closed from {sink.export_from}: exported until {until}, "
        f"{sink.exported_count} runs{error}"
    )


@app.command("get")
def export_sink_get(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The sink and the export's progress."""
    c = Context.of(ctx)
    sink = c.call(lambda client: client.get_history_export_sink(namespace_id))
    c.emit(sink, _sink_text(sink))


@app.command("set")
def export_sink_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    bucket: SinkBucketOption,
    access_key_id: SinkAccessKeyIdOption,
    secret_access_key: SinkSecretOption,
    prefix: SinkPrefixOption = "",
    region: SinkRegionOption = "us-east-1",
    endpoint_url: SinkEndpointOption = None,
    export_from: Annotated[
        str | None, typer.Option(help="First UTC day of closed runs, YYYY-MM-DD (default today)")
    ] = None,
) -> None:
    """Create or replace the namespace's history export sink."""
    from controlplane.history_exports.schemas import HistoryExportSinkSet

    day = None
    if export_from is not None:
        try:
            day = dt.date.fromisoformat(export_from)
        except ValueError:
            fail(f"--export-from must be a date as YYYY-MM-DD, got {export_from!r}", code=2)
    c = Context.of(ctx)
    body = HistoryExportSinkSet(
        bucket=bucket,
        prefix=prefix,
        region=region,
        endpoint_url=endpoint_url,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        export_from=day,
    )
    sink = c.call(lambda client: client.set_history_export_sink(namespace_id, body))
    c.emit(sink, _sink_text(sink))


@app.command("delete")
def export_sink_delete(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """Stop exporting: the sink and its progress are removed (objects already written stay)."""
    c = Context.of(ctx)
    c.call(lambda client: client.delete_history_export_sink(namespace_id))
    c.emit({"deleted": True}, "export sink deleted")


@app.command("validate")
def export_sink_validate(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """Write and delete a probe object in the sink; exit 1 with S3's error if that fails."""
    c = Context.of(ctx)
    probe = c.call(lambda client: client.validate_history_export_sink(namespace_id))
    text = f"ok: wrote and deleted {probe.probe_key}" if probe.ok else f"failed: {probe.error}"
    c.emit(probe, text)
    if not probe.ok:
        raise typer.Exit(1)
