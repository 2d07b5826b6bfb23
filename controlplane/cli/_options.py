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
