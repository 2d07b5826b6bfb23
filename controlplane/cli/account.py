"""``stratus account``: accounts and their quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.quotas.limits import MAX_QUOTA, Quota
from controlplane.states import AccountState

if TYPE_CHECKING:
    from controlplane.accounts.schemas import AccountDetailOut
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


def _account_line(account: AccountDetailOut) -> str:
    usage = account.usage_this_month
    return (
        f"{account.id}\t{account.name}\t{account.state}\t{account.owner_email or '-'}\t"
        f"namespaces={account.namespace_count}\tactions={usage.actions}\t"
        f"storage_byte_hours={usage.storage_byte_hours}\tamount={usage.amount_so_far}"
    )


def _account_text(account: AccountDetailOut) -> str:
    lines = [
        f"account {account.id} ({account.name}): {account.state}",
        f"  created: {account.created_at.isoformat()}",
        f"  owner: {account.owner_email or '-'}",
        f"  namespaces: {account.namespace_count}",
    ]
    if account.suspension_reason:
        lines.append(f"  suspended: {account.suspension_reason}")
    if account.data_removal_after is not None:
        lines.append(f"  data removed after: {account.data_removal_after.isoformat()}")
    usage = account.usage_this_month
    lines.append(
        f"  usage since {usage.month}: {usage.actions} actions, "
        f"{usage.storage_byte_hours} storage byte-hours, {usage.amount_so_far} so far"
    )
    return "\n".join(lines)


@app.command("list")
def account_list(
    ctx: typer.Context,
    state: Annotated[AccountState | None, typer.Option(help="Only accounts in this state")] = None,
    name: Annotated[str | None, typer.Option(help="Only names containing this")] = None,
    page_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Accounts per request (all pages are read)")
    ] = 100,
) -> None:
    """Operator: every account (all pages) with state, owner, namespaces and usage this month."""
    c = Context.of(ctx)
    accounts = c.call(
        lambda client: client.list_accounts(
            state=state.value if state else None, name=name, page_size=page_size
        )
    )
    from controlplane.accounts.schemas import AccountPage

    c.emit(
        AccountPage(accounts=accounts, next_page_token=""),
        "\n".join(_account_line(account) for account in accounts) or "no accounts",
    )


@app.command("get")
def account_get(
    ctx: typer.Context,
    account_id: Annotated[
        str | None, typer.Argument(help="Account id (operator); without it, your own account")
    ] = None,
) -> None:
    """Operator: one account. Others: their own account (id, name, state, plan)."""
    c = Context.of(ctx)
    if account_id is None:
        own = c.call(lambda client: client.get_own_account())
        suspended = f" ({own.suspension_reason})" if own.suspension_reason else ""
        c.emit(own, f"account {own.id} ({own.name}): {own.state}{suspended}, plan {own.plan}")
        return
    account = c.call(lambda client: client.get_account(account_id))
    c.emit(account, _account_text(account))


@app.command("suspend")
def account_suspend(
    ctx: typer.Context,
    account_id: str,
    reason: Annotated[str, typer.Option(help="Why; the account's users and workers see it")],
) -> None:
    """Operator: refuse the account's namespaces at the gateway and make its API read-only."""
    c = Context.of(ctx)
    account = c.call(lambda client: client.suspend_account(account_id, reason))
    c.emit(account, _account_text(account))


@app.command("resume")
def account_resume(ctx: typer.Context, account_id: str) -> None:
    """Operator: end an account's suspension."""
    c = Context.of(ctx)
    account = c.call(lambda client: client.resume_account(account_id))
    c.emit(account, _account_text(account))


@app.command("delete")
def account_delete(
    ctx: typer.Context,
    account_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the account is deleted")] = False,
) -> None:
    """Operator: delete an account: its namespaces are deleted, its cells' data removed after
    the retention; its audit trail stays."""
    c = Context.of(ctx)
    if not yes:
        fail(f"deleting account {account_id} deletes all its namespaces; add --yes to confirm")
    account = c.call(lambda client: client.delete_account(account_id))
    c.emit(account, _account_text(account))


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
    groups: QuotaOption = None,
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
        Quota.GROUPS: groups,
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
