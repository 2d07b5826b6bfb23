"""Option types more than one command group takes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

NamespaceOption = Annotated[str, typer.Option("--namespace", help="Namespace id (name.account)")]


class PermissionChoice(StrEnum):
    """A namespace permission, or ``none`` to remove it."""

    admin = "admin"
    write = "write"
    read = "read"
    none = "none"


PageSizeOption = Annotated[
    int,
    typer.Option("--page-size", min=1, max=1000, help="Rows per request while following the pages"),
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Stop after this many rows (default: all)")
]
