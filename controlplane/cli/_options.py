"""Option types more than one command group takes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Protocol

import typer

NamespaceOption = Annotated[str, typer.Option("--namespace", help="Namespace id (name.account)")]


class PermissionChoice(StrEnum):
    """A namespace permission, or ``none`` to remove it."""

    admin = "admin"
    write = "write"
    read = "read"
    none = "none"

    @property
    def granted(self) -> str | None:
        """The permission to give, None for ``none`` (remove it)."""
        return None if self is PermissionChoice.none else self.value


# ``--permission`` of the commands that set a user's, group's or service account's permission
# on one namespace.
PermissionOption = Annotated[
    PermissionChoice, typer.Option(help="admin, write, read, or none to remove")
]


PageSizeOption = Annotated[
    int,
    typer.Option("--page-size", min=1, max=1000, help="Rows per request while following the pages"),
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Stop after this many rows (default: all)")
]

# Where a sink writes (usage export, audit log, history export): the same options everywhere.
SinkBucketOption = Annotated[str, typer.Option("--bucket")]
SinkAccessKeyIdOption = Annotated[
    str, typer.Option("--access-key-id", envvar="STRATUS_SINK_ACCESS_KEY_ID")
]
SinkSecretOption = Annotated[
    str,
    typer.Option(
        "--secret-access-key", envvar="STRATUS_SINK_SECRET_ACCESS_KEY", help="Stored encrypted"
    ),
]
SinkPrefixOption = Annotated[str, typer.Option("--prefix")]
SinkRegionOption = Annotated[str, typer.Option("--region")]
SinkEndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint other than AWS")
]


class SinkTarget(Protocol):
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def endpoint_url(self) -> str | None: ...
    @property
    def access_key_id(self) -> str: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_error_at(self) -> object: ...


def sink_target_text(sink: SinkTarget) -> str:
    """``s3://bucket/prefix (endpoint, region), key ID``."""
    endpoint = sink.endpoint_url or "AWS"
    return f"s3://{sink.bucket}/{sink.prefix} ({endpoint}, {sink.region}), key {sink.access_key_id}"


def sink_error_text(sink: SinkTarget) -> str:
    """A line with the sink's last error, or nothing."""
    return f"\nlast error ({sink.last_error_at}): {sink.last_error}" if sink.last_error else ""
