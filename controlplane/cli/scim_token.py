"""``stratus scim-token``: the account's SCIM token (SCIM 2.0 provisioning from an IdP)."""

from __future__ import annotations

import typer

from controlplane.cli._context import Context

app = typer.Typer(
    no_args_is_help=True,
    help="The account's SCIM token, for an identity provider (Okta, Entra ID) to provision "
    "users and groups at <api>/scim/v2.",
)


@app.command("create")
def scim_token_create(ctx: typer.Context) -> None:
    """Create a SCIM token (printed once); a previous token stops working at once."""
    c = Context.of(ctx)
    created = c.call(lambda client: client.create_scim_token())
    c.emit(
        created,
        f"SCIM base URL: {created.scim_base_url}\nSCIM token (shown once): {created.token}",
    )


@app.command("get")
def scim_token_get(ctx: typer.Context) -> None:
    """Whether SCIM is on, and when its token was created and last used."""
    c = Context.of(ctx)
    state = c.call(lambda client: client.get_scim_token())
    if not state.exists:
        c.emit(state, "no SCIM token: SCIM provisioning is off")
        return
    used = state.last_used_at.isoformat() if state.last_used_at else "never"
    created = state.created_at.isoformat() if state.created_at else "?"
    c.emit(state, f"SCIM base URL: {state.scim_base_url}\ncreated: {created}\nlast used: {used}")


@app.command("delete")
def scim_token_delete(ctx: typer.Context) -> None:
    """Delete the SCIM token: SCIM provisioning stops at once."""
    c = Context.of(ctx)
    c.call(lambda client: client.delete_scim_token())
    c.emit({"deleted": True}, "SCIM token deleted: SCIM provisioning is off")
