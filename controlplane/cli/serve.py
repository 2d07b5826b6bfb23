"""``stratus serve api|gateway|worker`` and ``stratus migrate``: one role of Stratus in the
foreground, as a container or a unit runs it (``stratus up`` runs all of them on one machine).

Each role reads its one settings model (``ApiSettings``, ``WorkerSettings``,
``GatewaySettings``) from the environment, the same variables ``stratus up`` hands its
children, and optionally from ``--settings FILE`` (YAML or JSON, keys = the model's field
names). The environment wins over the file: a file shared by every replica, a variable for
what differs per replica.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


class Role(StrEnum):
    """A process role: the module ``stratus up`` runs for it."""

    api = "api"
    gateway = "gateway"
    worker = "worker"

    @property
    def module(self) -> str:
        return {
            Role.api: "controlplane.app",
            Role.gateway: "dataplane.gateway",
            Role.worker: "controlplane.worker",
        }[self]

    def settings_class(self) -> type[BaseSettings]:
        if self is Role.gateway:
            from dataplane.gateway import GatewaySettings

            return GatewaySettings
        from controlplane.config import ApiSettings, WorkerSettings

        return ApiSettings if self is Role.api else WorkerSettings


SettingsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="YAML or JSON file of settings (keys: the role's setting names); "
        "STRATUS_* environment variables override it",
        exists=True,
        dir_okay=False,
    ),
]


def _file_values(path: Path) -> dict[str, Any]:
    import yaml

    text = path.read_text()
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise typer.BadParameter(f"{path} is not valid YAML or JSON: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of setting names to values")
    return values


def apply_settings(role: Role, path: Path | None) -> BaseSettings:
    """Put the settings file's values into this process's environment where no variable is
    set already, and validate the role's settings from it (exit 2 naming what is wrong)."""
    from pydantic import ValidationError

    from controlplane.config import file_environment

    model = role.settings_class()
    if path is not None:
        try:
            environment = file_environment(model, _file_values(path))
        except ValueError as error:
            raise typer.BadParameter(f"{path}: {error}") from None
        for variable, value in environment.items():
            os.environ.setdefault(variable, value)
    try:
        return model()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        typer.echo(f"stratus serve {role}: settings invalid: {problems}", err=True)
        raise typer.Exit(2) from None


def serve(
    role: Annotated[Role, typer.Argument(help="api, gateway or worker")],
    settings: SettingsFileOption = None,
) -> None:
    """Run one role in the foreground (exactly the process stratus up runs for it)."""
    apply_settings(role, settings)
    sys.stdout.flush()
    # This process becomes the role's: its PID, signals and exit code are the role's own.
    os.execv(sys.executable, [sys.executable, "-m", role.module])  # noqa: S606 - no shell wanted


def migrate(settings: SettingsFileOption = None) -> None:
    """Apply the database's migrations, then exit (run once before rolling out API replicas
    started with STRATUS_MIGRATE_ON_START=false)."""
    from controlplane.config import ApiSettings
    from controlplane.kit.migrate import head_revisions
    from controlplane.kit.migrate import migrate as run_migrations

    api = apply_settings(Role.api, settings)
    assert isinstance(api, ApiSettings)
    if api.database_url is None:
        api.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    run_migrations(api.sqlalchemy_url)
    heads = ", ".join(sorted(head_revisions(api.sqlalchemy_url)))
    typer.echo(f"database at {heads}")


def bootstrap(settings: SettingsFileOption = None) -> None:
    """Make Stratus's first-start state without `stratus up`: migrate the database, then write
    secrets.key, operator.key and the gateway CA (pki/) into the data dir (all 0600). Idempotent:
    what exists is kept (an operator key still valid is not replaced)."""
    import asyncio

    from controlplane.bootstrap import bootstrap as make_first_start_state
    from controlplane.config import ApiSettings

    api = apply_settings(Role.api, settings)
    assert isinstance(api, ApiSettings)
    operator_key, pki = asyncio.run(make_first_start_state(api))
    heads = ", ".join(sorted(_heads(api.sqlalchemy_url)))
    typer.echo(f"database at {heads}")
    for path in (api.secrets_key_path, operator_key, pki.ca_cert, pki.ca_key):
        typer.echo(f"wrote {path}")
    typer.echo(
        "keep secrets.key and pki/gateway-ca.key in your secret store (docs/deploy.md); "
        "operator.key is the operator's API key"
    )


def _heads(url: str) -> set[str]:
    from controlplane.kit.migrate import head_revisions

    return set(head_revisions(url))
