"""``stratus apikey``: API keys of users and service accounts."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import LimitOption, PageSizeOption
from controlplane.states import ApiKeyState

if TYPE_CHECKING:
    from controlplane.api_keys.schemas import ApiKeyOut

app = typer.Typer(no_args_is_help=True, help="API keys (the secret is shown once).")

_DURATION_RE = re.compile(r"^(\d+)([hdwy])$")
_DURATION_UNITS = {"h": 1 / 24, "d": 1, "w": 7, "y": 365}


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``4w``, ``1y`` → a timedelta (a year is 365 days)."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        fail(f"--duration {text!r}: expected a number and a unit h, d, w or y (e.g. 90d)")
    return dt.timedelta(days=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def _key_line(key: ApiKeyOut) -> str:
    state = "disabled" if key.disabled else "enabled"
    expires = key.expires_at.isoformat() if key.expires_at else "never"
    return f"{key.id}\t{key.display_name}\t{key.owner_type}:{key.owner_id}\t{state}\t{expires}"


@app.command("create")
def apikey_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name")],
    duration: Annotated[str, typer.Option(help="Lifetime, e.g. 90d, 12h, 4w, 1y (max 2y)")],
    service_account_id: Annotated[
        str | None, typer.Option(help="Create the key for this service account (admins)")
    ] = None,
) -> None:
    """Create an API key; the secret is printed once."""
    c = Context.of(ctx)
    expiry = dt.datetime.now(dt.UTC) + parse_duration(duration)
    created = c.call(
        lambda client: client.create_api_key(name, expiry, service_account_id=service_account_id)
    )
    c.emit(
        created,
        f"API key {created.api_key.id} (expires {expiry.date().isoformat()})\n"
        f"token (shown once): {created.token}",
    )


@app.command("list")
def apikey_list(
    ctx: typer.Context,
    owner_id: Annotated[str | None, typer.Option(help="Only this owner's keys")] = None,
    state: Annotated[ApiKeyState | None, typer.Option(help="Only enabled or disabled keys")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """API keys, newest first (every page unless --limit)."""
    c = Context.of(ctx)
    keys = c.call(
        lambda client: list(
            client.iter_api_keys(
                owner_id=owner_id,
                state=state.value if state else None,
                page_size=page_size,
                limit=limit,
            )
        )
    )
    c.emit_rows("api_keys", keys, "\n".join(_key_line(key) for key in keys) or "no API keys")


@app.command("disable")
def apikey_disable(ctx: typer.Context, api_key_id: str) -> None:
    """Stop a key from working (at once); enable brings it back."""
    c = Context.of(ctx)
    key = c.call(lambda client: client.disable_api_key(api_key_id))
    c.emit(key, _key_line(key))


@app.command("enable")
def apikey_enable(ctx: typer.Context, api_key_id: str) -> None:
    c = Context.of(ctx)
    key = c.call(lambda client: client.enable_api_key(api_key_id))
    c.emit(key, _key_line(key))


@app.command("delete")
def apikey_delete(ctx: typer.Context, api_key_id: str) -> None:
    c = Context.of(ctx)
    c.call(lambda client: client.delete_api_key(api_key_id))
    c.emit({"deleted": api_key_id}, f"deleted API key {api_key_id}")
