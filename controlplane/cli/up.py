"""``stratus up``: the embedded default in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def up(
    data_dir: Annotated[
        Path, typer.Option(envvar="STRATUS_DATA_DIR", help="State directory")
    ] = Path(".stratus"),
    api_port: Annotated[int, typer.Option(envvar="STRATUS_API_PORT")] = 8080,
    gateway_port: Annotated[int, typer.Option(envvar="STRATUS_GATEWAY_PORT")] = 7233,
    gateway_api_key_port: Annotated[
        int, typer.Option(envvar="STRATUS_GATEWAY_API_KEY_PORT", help="0 disables it")
    ] = 7234,
) -> None:
    """Run Stratus on the embedded default (SQLite + local cells) in the foreground."""
    from controlplane.config import Settings
    from controlplane.supervisor import up as run_up

    settings = Settings(
        data_dir=data_dir,
        api_port=api_port,
        gateway_port=gateway_port,
        gateway_api_key_port=gateway_api_key_port,
    )
    raise typer.Exit(run_up(settings))
