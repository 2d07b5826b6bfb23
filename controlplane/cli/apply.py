"""``stratus apply -f FILE`` and ``stratus export``: an account's namespaces, users, groups,
service accounts and sinks as one versioned file (docs/teams.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli._context import Context, Output, fail


def apply(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The spec file (apiVersion: stratus/v1)")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and write nothing")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Also delete what the file's lists no longer name"),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking")] = False,
    wait: Annotated[
        bool,
        typer.Option(help="Wait until new and changed namespaces are ACTIVE (grants need it)"),
    ] = True,
) -> None:
    """Make the account match FILE: validate the whole file, print the plan (create, update,
    delete per object with its changed fields), then apply it. A second apply of the same
    file plans no changes."""
    from controlplane import declarative

    c = Context.of(ctx)
    try:
        spec = declarative.load(file)
    except declarative.SpecError as error:
        fail(f"{file} is not a valid spec:\n" + "\n".join(error.problems))
    with c.connected() as client:
        try:
            planned = client.plan(spec, prune=prune, wait=wait)
        except declarative.SpecError as error:
            fail(f"{file} cannot be applied:\n" + "\n".join(error.problems))
        if c.output is Output.json and (dry_run or planned.empty):
            typer.echo(json.dumps(planned.as_dict() | {"applied": False}, indent=2))
            return
        if c.output is not Output.json:
            typer.echo(planned.text())
        if dry_run or planned.empty:
            return
        if not yes:
            if not sys.stdin.isatty():
                fail("give --yes to apply without a terminal (or --dry-run to only plan)")
            typer.confirm("Apply this plan?", abort=True)
        try:
            result = declarative.execute(planned)
        except (declarative.ApplyConflict, declarative.ApplyFailed) as error:
            fail(str(error))
        done = f"Applied: {len(result.applied)} object(s) changed."
        if c.output is Output.json:
            typer.echo(json.dumps(planned.as_dict() | {"applied": True}, indent=2))
        else:
            typer.echo(done)


def export(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Write here (default: standard output)"),
    ] = None,
) -> None:
    """Write the account's namespaces, users, groups, service accounts and sinks as a file
    for stratus apply. Secrets are never written: sinks name ${ENV} variables instead."""
    from controlplane import declarative

    c = Context.of(ctx)
    document = c.call(lambda client: client.export())
    text = declarative.dump(document)
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text)
        typer.echo(f"wrote {file}", err=True)
