"""``stratus group-claims``: which IdP groups (OIDC claim, SAML attribute) become which user
groups at sign-in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context

if TYPE_CHECKING:
    from controlplane.group_claims.schemas import GroupClaimsOut

app = typer.Typer(
    no_args_is_help=True,
    help="Map the groups your identity provider asserts at sign-in to Stratus user groups.",
)


def _text(claims: GroupClaimsOut) -> str:
    lines = [f"OIDC claim {claims.oidc_claim!r}, SAML attribute {claims.saml_attribute!r}"]
    lines += [f"{m.idp_group}\t→ {m.group_name} ({m.group_id})" for m in claims.mappings]
    if not claims.mappings:
        lines.append("no mappings: every sign-in removes the user's idp memberships")
    return "\n".join(lines)


def _pair(value: str) -> tuple[str, str]:
    idp_group, separator, group_id = value.rpartition("=")
    if not separator or not idp_group or not group_id:
        raise typer.BadParameter(f"{value!r} is not IDP_GROUP=GROUP_ID", param_hint="--map")
    return idp_group, group_id


@app.command("get")
def group_claims_get(ctx: typer.Context) -> None:
    """The claim, the attribute and the mappings."""
    c = Context.of(ctx)
    claims = c.call(lambda client: client.get_group_claims())
    c.emit(claims, _text(claims))


@app.command("set")
def group_claims_set(
    ctx: typer.Context,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="IDP_GROUP=GROUP_ID",
            help="IDP_GROUP=GROUP_ID (repeat; an IdP group may map to several groups)",
        ),
    ] = None,
    oidc_claim: Annotated[
        str, typer.Option(help="The ID-token claim listing the user's groups")
    ] = "groups",
    saml_attribute: Annotated[
        str, typer.Option(help="The assertion attribute listing the user's groups")
    ] = "groups",
) -> None:
    """Replace the whole configuration (mappings not given are removed)."""
    pairs = [_pair(value) for value in mapping or []]
    c = Context.of(ctx)
    claims = c.call(
        lambda client: client.set_group_claims(
            pairs, oidc_claim=oidc_claim, saml_attribute=saml_attribute
        )
    )
    c.emit(claims, _text(claims))


@app.command("delete")
def group_claims_delete(ctx: typer.Context) -> None:
    """Turn group claims off: sign-ins no longer change memberships."""
    c = Context.of(ctx)
    c.call(lambda client: client.delete_group_claims())
    c.emit({"deleted": True}, "group claims turned off")
