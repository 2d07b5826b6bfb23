"""``stratus account``: accounts and their quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.quotas.limits import MAX_QUOTA, Quota

if TYPE_CHECKING:
    from controlplane.client import StratusClient
    from controlplane.quotas.schemas import AccountQuotasOut

app = typer.Typer(no_args_is_help=True, help="Accounts (operator).")
quotas_app = typer.Typer(
    no_args_is_help=True, help="Account quotas (the operator sets them; admins read their own)."
)
app.add_typer(quotas_app, name="quotas")

AccountOption = Annotated[
    str | None, typer.Option("--account", help="Account id (default: your own account)")
]
QuotaOption = Annotated[int | None, typer.Option(min=0, max=MAX_QUOTA)]


@app.command("create")
def account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name")],
    owner_email: Annotated[str, typer.Option(help="Email of the account owner")],
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Keep the owner's API key in the CLI's config (0600, replacing a stored "
            "login session) instead of printing it; later commands use it when no --api-key "
            "or STRATUS_API_KEY is given",
        ),
    ] = False,
) -> None:
    """Create an account and its owner (needs the operator key). Prints the owner's API key
    once, or with --save keeps it for the next commands."""
    from controlplane.cli._session_store import StoredApiKey, save_api_key

    c = Context.of(ctx)
    created = c.call(lambda client: client.create_account(name, owner_email))
    account = f"account {created.account.id} created for {created.owner.email}"
    if not save:
        c.emit(created, f"{account}\nowner API key (shown once): {created.owner_api_key.token}")
        return
    path = save_api_key(
        StoredApiKey(
            api_url=c.api_url,
            api_key=created.owner_api_key.token,
            email=created.owner.email,
            account_id=created.account.id,
        )
    )
    c.emit(
        created,
        f"{account}\nowner API key saved in {path}; commands without --api-key or "
        "STRATUS_API_KEY now act as the owner",
    )


def _quotas_text(quotas: AccountQuotasOut) -> str:
    lines = [f"quotas of account {quotas.account_id}:"]
    for quota in quotas.quotas:
        origin = "default" if quota.is_default else "set by operator"
        lines.append(f"  {quota.quota.value}: {quota.usage} used of {quota.limit} ({origin})")
    return "\n".join(lines)


def _account_of(client: StratusClient, account_id: str | None) -> str:
    if account_id is not None:
        return account_id
    own = client.current_identity().account_id
    if own is None:
        fail("give --account (the operator key belongs to no account)")
    return own


@quotas_app.command("get")
def quotas_get(ctx: typer.Context, account_id: AccountOption = None) -> None:
    """Show an account's quotas and how much of each is used."""
    c = Context.of(ctx)
    quotas = c.call(lambda client: client.get_account_quotas(_account_of(client, account_id)))
    c.emit(quotas, _quotas_text(quotas))


@quotas_app.command("set")
def quotas_set(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Option("--account", help="Account id")],
    namespaces: QuotaOption = None,
    users: QuotaOption = None,
    service_accounts: QuotaOption = None,
    api_keys_per_principal: QuotaOption = None,
    concurrent_operations: QuotaOption = None,
    tags_per_namespace: QuotaOption = None,
    reset: Annotated[
        list[Quota] | None, typer.Option(help="Restore this quota's default (repeatable)")
    ] = None,
) -> None:
    """Operator: set an account's quotas (those not given keep their value)."""
    c = Context.of(ctx)
    given = {
        Quota.NAMESPACES: namespaces,
        Quota.USERS: users,
        Quota.SERVICE_ACCOUNTS: service_accounts,
        Quota.API_KEYS_PER_PRINCIPAL: api_keys_per_principal,
        Quota.CONCURRENT_OPERATIONS: concurrent_operations,
        Quota.TAGS_PER_NAMESPACE: tags_per_namespace,
    }
    changes: dict[str, int | None] = {q.value: v for q, v in given.items() if v is not None}
    for quota in reset or []:
        if quota.value in changes:
            fail(f"--{quota.value.replace('_', '-')} and --reset {quota.value} contradict")
        changes[quota.value] = None
    if not changes:
        fail("give at least one quota to set or --reset")
    from controlplane.quotas.schemas import AccountQuotasSet

    body = AccountQuotasSet.model_validate(changes)
    quotas = c.call(lambda client: client.set_account_quotas(account_id, body))
    c.emit(quotas, _quotas_text(quotas))
