from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pydantic import BaseModel

from controlplane.api_keys.schemas import ApiKeyOut
from controlplane.client import StratusAPIError, StratusClient
from controlplane.exports.schemas import ExportSinkOut, ExportSinkSet
from controlplane.invoices.schemas import InvoiceOut
from controlplane.namespaces.schemas import NamespaceOperation, NamespaceOut
from controlplane.quotas.schemas import AccountQuotasOut, AccountQuotasSet
from controlplane.quotas.service import MAX_QUOTA, Quota
from controlplane.service_accounts.schemas import ServiceAccountOut
from controlplane.users.schemas import UserOut

app = typer.Typer(no_args_is_help=True, help="Stratus: Temporal workflows as a service.")
account_app = typer.Typer(no_args_is_help=True, help="Accounts (operator).")
namespace_app = typer.Typer(no_args_is_help=True, help="Namespaces of your account.")
certs_app = typer.Typer(no_args_is_help=True, help="Create CAs and client certificates.")
operation_app = typer.Typer(no_args_is_help=True, help="Async operations.")
app.add_typer(account_app, name="account")
quotas_app = typer.Typer(
    no_args_is_help=True, help="Account quotas (the operator sets them; admins read their own)."
)
account_app.add_typer(quotas_app, name="quotas")
app.add_typer(namespace_app, name="namespace")
app.add_typer(certs_app, name="certs")
app.add_typer(operation_app, name="operation")
gateway_app = typer.Typer(no_args_is_help=True, help="Registered gateways (operator).")
app.add_typer(gateway_app, name="gateway")
usage_app = typer.Typer(no_args_is_help=True, help="Usage of your account (owner, finance admin).")
app.add_typer(usage_app, name="usage")
invoice_app = typer.Typer(
    no_args_is_help=True, help="Invoices of your account (owner, finance admin)."
)
app.add_typer(invoice_app, name="invoice")
billing_app = typer.Typer(
    no_args_is_help=True, help="Plans, credits and the export sink of your account."
)
app.add_typer(billing_app, name="billing")
export_sink_app = typer.Typer(
    no_args_is_help=True, help="Where usage (hourly) and finalized invoices are exported (S3)."
)
billing_app.add_typer(export_sink_app, name="export-sink")
user_app = typer.Typer(no_args_is_help=True, help="Users of your account and their roles.")
service_account_app = typer.Typer(
    no_args_is_help=True, help="Service accounts: account-wide or scoped to one namespace."
)
apikey_app = typer.Typer(no_args_is_help=True, help="API keys (the secret is shown once).")
app.add_typer(user_app, name="user")
app.add_typer(service_account_app, name="service-account")
app.add_typer(apikey_app, name="apikey")
client_ca_app = typer.Typer(
    no_args_is_help=True, help="CA certificates a namespace accepts for client certificates."
)
filters_app = typer.Typer(
    no_args_is_help=True,
    help="Which client certificates of the accepted CAs may use a namespace.",
)
namespace_app.add_typer(client_ca_app, name="accepted-client-ca")
namespace_app.add_typer(filters_app, name="certificate-filters")
auth_method_app = typer.Typer(
    no_args_is_help=True, help="How SDK clients authenticate: mTLS, API keys or either."
)
namespace_app.add_typer(auth_method_app, name="auth-method")


class AuthMethod(StrEnum):
    mtls = "mtls"
    api_key = "api_key"
    mtls_or_api_key = "mtls_or_api_key"


NamespaceOption = Annotated[str, typer.Option("--namespace", help="Namespace id (name.account)")]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the update is applied (FULFILLED)")
]


class Output(StrEnum):
    text = "text"
    json = "json"


@dataclass
class Context:
    api_url: str
    api_key: str | None
    output: Output

    def client(self) -> StratusClient:
        """Authenticated by --api-key, else by the session ``stratus login`` stored."""
        from controlplane.cli._session_store import load_session

        session = None if self.api_key else load_session(self.api_url)
        return StratusClient(
            self.api_url,
            self.api_key,
            session=(session.session_token, session.csrf_token) if session else None,
        )


@app.callback()
def _global(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(envvar="STRATUS_API_URL", help="Control-plane URL")
    ] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None, typer.Option(envvar="STRATUS_API_KEY", help="API key (Bearer)")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.text,
) -> None:
    ctx.obj = Context(api_url=api_url, api_key=api_key, output=output)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _emit(ctx: Context, model: BaseModel | dict[str, Any], text: str) -> None:
    if ctx.output is Output.json:
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(text)


def _api_error(error: StratusAPIError) -> NoReturn:
    field = f" (field: {error.field})" if error.field else ""
    _fail(f"{error.detail}{field} [{error.status} {error.type}]")


T = TypeVar("T")


def _call(c: Context, action: Callable[[StratusClient], T]) -> T:
    """Run one API call with the context's client; an API error exits with its problem."""
    try:
        with c.client() as client:
            return action(client)
    except StratusAPIError as error:
        _api_error(error)


@app.command()
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


@account_app.command("create")
def account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name")],
    owner_email: Annotated[str, typer.Option(help="Email of the account owner")],
) -> None:
    """Create an account and its owner (needs the operator key). Prints the owner's API key once."""
    c: Context = ctx.obj
    created = _call(c, lambda client: client.create_account(name, owner_email))
    _emit(
        c,
        created,
        f"account {created.account.id} created for {created.owner.email}\n"
        f"owner API key (shown once): {created.owner_api_key.token}",
    )


AccountOption = Annotated[
    str | None, typer.Option("--account", help="Account id (default: your own account)")
]


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
        _fail("give --account (the operator key belongs to no account)")
    return own


@quotas_app.command("get")
def quotas_get(ctx: typer.Context, account_id: AccountOption = None) -> None:
    """Show an account's quotas and how much of each is used."""
    c: Context = ctx.obj
    quotas = _call(c, lambda client: client.get_account_quotas(_account_of(client, account_id)))
    _emit(c, quotas, _quotas_text(quotas))


QuotaOption = Annotated[int | None, typer.Option(min=0, max=MAX_QUOTA)]


@quotas_app.command("set")
def quotas_set(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Option("--account", help="Account id")],
    namespaces: QuotaOption = None,
    users: QuotaOption = None,
    service_accounts: QuotaOption = None,
    api_keys_per_principal: QuotaOption = None,
    concurrent_operations: QuotaOption = None,
    reset: Annotated[
        list[Quota] | None, typer.Option(help="Restore this quota's default (repeatable)")
    ] = None,
) -> None:
    """Operator: set an account's quotas (those not given keep their value)."""
    c: Context = ctx.obj
    given = {
        Quota.NAMESPACES: namespaces,
        Quota.USERS: users,
        Quota.SERVICE_ACCOUNTS: service_accounts,
        Quota.API_KEYS_PER_PRINCIPAL: api_keys_per_principal,
        Quota.CONCURRENT_OPERATIONS: concurrent_operations,
    }
    changes: dict[str, int | None] = {q.value: v for q, v in given.items() if v is not None}
    for quota in reset or []:
        if quota.value in changes:
            _fail(f"--{quota.value.replace('_', '-')} and --reset {quota.value} contradict")
        changes[quota.value] = None
    if not changes:
        _fail("give at least one quota to set or --reset")
    body = AccountQuotasSet.model_validate(changes)
    quotas = _call(c, lambda client: client.set_account_quotas(account_id, body))
    _emit(c, quotas, _quotas_text(quotas))


@namespace_app.command("create")
def namespace_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Namespace name")],
    ca_cert: Annotated[Path, typer.Option(help="PEM bundle of accepted client CAs")],
    retention_days: Annotated[int, typer.Option(help="Retention, 1-90 days")] = 30,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the namespace is ACTIVE")
    ] = False,
) -> None:
    """Create a namespace; with --wait, follow its operation to the end."""
    c: Context = ctx.obj
    try:
        pem = ca_cert.read_text()
    except OSError as error:
        _fail(f"cannot read --ca-cert {ca_cert}: {error.strerror}")
    try:
        with c.client() as client:
            created = client.create_namespace(name, pem, retention_days=retention_days)
            operation = created.async_operation
            if wait:
                operation = client.wait_for_operation(
                    operation.id,
                    on_change=lambda op: typer.echo(f"  operation {op.id}: {op.state}", err=True),
                )
                namespace = client.get_namespace(created.namespace.id)
                created = created.model_copy(
                    update={"namespace": namespace, "async_operation": operation}
                )
    except StratusAPIError as error:
        _api_error(error)
    _emit(
        c,
        created,
        f"namespace {created.namespace.id}: {created.namespace.state} "
        f"(operation {operation.id}: {operation.state})",
    )
    if operation.state == "FAILED":
        _fail(f"operation failed: {operation.failure_reason}")


@namespace_app.command("list")
def namespace_list(ctx: typer.Context) -> None:
    c: Context = ctx.obj
    namespaces = _call(c, lambda client: client.list_namespaces())
    lines = [f"{ns.id}\t{ns.state}\tretention={ns.retention_days}d" for ns in namespaces.namespaces]
    _emit(c, namespaces, "\n".join(lines) or "no namespaces")


@namespace_app.command("get")
def namespace_get(ctx: typer.Context, namespace_id: str) -> None:
    c: Context = ctx.obj
    namespace = _call(c, lambda client: client.get_namespace(namespace_id))
    _emit(
        c,
        namespace,
        f"{namespace.id}\t{namespace.state}\tretention={namespace.retention_days}d\t"
        f"resource_version={namespace.resource_version}",
    )


@namespace_app.command("delete")
def namespace_delete(
    ctx: typer.Context,
    namespace_id: str,
    wait: Annotated[bool, typer.Option("--wait")] = False,
) -> None:
    c: Context = ctx.obj
    try:
        with c.client() as client:
            result = client.delete_namespace(namespace_id)
            operation = result.async_operation
            if wait:
                operation = client.wait_for_operation(
                    operation.id,
                    on_change=lambda op: typer.echo(f"  operation {op.id}: {op.state}", err=True),
                )
    except StratusAPIError as error:
        _api_error(error)
    _emit(c, operation, f"namespace {namespace_id}: delete {operation.state}")


def _wait_and_emit(
    c: Context,
    client: StratusClient,
    result: NamespaceOperation,
    wait: bool,
    *,
    reread: bool = True,
) -> None:
    """Follow the operation when asked, then print the namespace and its operation (as
    ``namespace create`` does); a FAILED operation exits non-zero. ``reread=False`` keeps the
    namespace as the write returned it (the operator cannot read tenants' namespaces)."""
    operation = result.async_operation
    if wait:
        operation = client.wait_for_operation(
            operation.id,
            on_change=lambda op: typer.echo(f"  operation {op.id}: {op.state}", err=True),
        )
        namespace = client.get_namespace(result.namespace.id) if reread else result.namespace
        result = result.model_copy(update={"namespace": namespace, "async_operation": operation})
    _emit(
        c,
        result,
        f"namespace {result.namespace.id}: {result.namespace.state} "
        f"(operation {operation.id}: {operation.state})",
    )
    if operation.state == "FAILED":
        _fail(f"operation failed: {operation.failure_reason}")


class _NoChange(Exception):
    """The requested change is already in place: nothing to update."""


def _update(
    c: Context,
    namespace_id: str,
    wait: bool,
    change: Callable[[NamespaceOut], dict[str, Any]],
) -> None:
    """Read the namespace, compute the change from what was read, and update it with the
    resource_version read: a concurrent change is refused (409), never overwritten."""
    try:
        with c.client() as client:
            namespace = client.get_namespace(namespace_id)
            try:
                fields = change(namespace)
            except _NoChange as nothing:
                _emit(c, namespace, f"namespace {namespace_id}: {nothing}, nothing to update")
                return
            result = client.update_namespace(
                namespace_id, resource_version=namespace.resource_version, **fields
            )
            _wait_and_emit(c, client, result, wait)
    except StratusAPIError as error:
        _api_error(error)


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as error:
        _fail(f"cannot read --ca-cert {path}: {error.strerror}")
    except ValueError as error:
        _fail(f"--ca-cert {path} holds no readable PEM certificate: {error}")
    return certificates


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _bundle_pem(certificates: list[x509.Certificate]) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates)


@namespace_app.command("update")
def namespace_update(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    retention_days: Annotated[int, typer.Option(help="Retention, 1-90 days")],
    wait: WaitOption = False,
) -> None:
    """Change a namespace's retention."""
    _update(ctx.obj, namespace_id, wait, lambda _: {"retention_days": retention_days})


@namespace_app.command("set-limits")
def namespace_set_limits(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    requests_per_second: Annotated[int, typer.Option(help="Requests/s, 1-100000")],
    actions_per_second: Annotated[int, typer.Option(help="Actions/s, 1-100000")],
    wait: WaitOption = False,
) -> None:
    """Operator: set a namespace's rate limits (enforced by the gateway)."""
    c: Context = ctx.obj
    try:
        with c.client() as client:
            result = client.set_namespace_limits(
                namespace_id,
                requests_per_second=requests_per_second,
                actions_per_second=actions_per_second,
            )
            _wait_and_emit(c, client, result, wait, reread=False)
    except StratusAPIError as error:
        _api_error(error)


@auth_method_app.command("set")
def auth_method_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    method: Annotated[AuthMethod, typer.Option("--method", help="mtls, api_key, mtls_or_api_key")],
    wait: WaitOption = False,
) -> None:
    """Choose which gateway endpoint may serve the namespace (mTLS, API key, or both)."""
    _update(ctx.obj, namespace_id, wait, lambda _: {"auth_method": method.value})


@client_ca_app.command("list")
def client_ca_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The accepted CA certificates: SHA-256 fingerprint, subject, expiry."""
    c: Context = ctx.obj
    namespace = _call(c, lambda client: client.get_namespace(namespace_id))
    certificates = x509.load_pem_x509_certificates(namespace.accepted_client_ca.encode())
    rows = [
        {
            "sha256": _fingerprint(cert),
            "subject": cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
        for cert in certificates
    ]
    text = "\n".join(f"{r['sha256']}\t{r['subject']}\tnot_after={r['not_after']}" for r in rows)
    _emit(c, {"namespace_id": namespace_id, "accepted_client_ca": rows}, text)


@client_ca_app.command("add")
def client_ca_add(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    ca_cert: Annotated[Path, typer.Option(help="PEM file with the CA certificates to add")],
    wait: WaitOption = False,
) -> None:
    """Accept the CAs of FILE too (rotation: add the new CA, move clients, remove the old)."""
    added = _read_certificates(ca_cert)

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        current = x509.load_pem_x509_certificates(namespace.accepted_client_ca.encode())
        known = {_fingerprint(cert) for cert in current}
        new = [cert for cert in added if _fingerprint(cert) not in known]
        if not new:
            raise _NoChange(f"every CA of {ca_cert} is already accepted")
        return {"accepted_client_ca": _bundle_pem(current + new)}

    _update(ctx.obj, namespace_id, wait, change)


@client_ca_app.command("remove")
def client_ca_remove(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    ca_cert: Annotated[Path, typer.Option(help="PEM file with the CA certificates to remove")],
    wait: WaitOption = False,
) -> None:
    """Stop accepting the CAs of FILE (matched by SHA-256 fingerprint). The last CA cannot be
    removed: add its successor first."""
    removed = {_fingerprint(cert) for cert in _read_certificates(ca_cert)}

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        current = x509.load_pem_x509_certificates(namespace.accepted_client_ca.encode())
        kept = [cert for cert in current if _fingerprint(cert) not in removed]
        if len(kept) == len(current):
            raise _NoChange(f"no CA of {ca_cert} is accepted")
        if not kept:
            _fail(
                f"refusing to remove the last accepted CA of {namespace_id}; "
                "add its successor first (accepted-client-ca add)"
            )
        return {"accepted_client_ca": _bundle_pem(kept)}

    _update(ctx.obj, namespace_id, wait, change)


@client_ca_app.command("set")
def client_ca_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    ca_cert: Annotated[Path, typer.Option(help="PEM bundle that replaces the accepted CAs")],
    wait: WaitOption = False,
) -> None:
    """Replace the accepted CAs with the bundle in FILE."""
    try:
        pem = ca_cert.read_text()
    except OSError as error:
        _fail(f"cannot read --ca-cert {ca_cert}: {error.strerror}")
    _update(ctx.obj, namespace_id, wait, lambda _: {"accepted_client_ca": pem})


_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def _parse_filter(text: str) -> dict[str, object]:
    """``common_name=worker-*,organization=Acme\\, Inc.`` → a filter object (``\\,`` is a
    literal comma); the API validates the keys and values."""
    parsed: dict[str, object] = {}
    for part in _UNESCAPED_COMMA.split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            _fail(f"--filter {text!r}: expected key=value[,key=value...]")
        parsed[key.strip()] = value.replace("\\,", ",")
    return parsed


def _format_filter(certificate_filter: dict[str, str]) -> str:
    escaped = {key: value.replace(",", "\\,") for key, value in certificate_filter.items()}
    return ",".join(f"{key}={value}" for key, value in escaped.items())


@filters_app.command("list")
def filters_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The namespace's certificate filters, one per line."""
    c: Context = ctx.obj
    namespace = _call(c, lambda client: client.get_namespace(namespace_id))
    text = "\n".join(_format_filter(f) for f in namespace.certificate_filters)
    _emit(
        c,
        {"namespace_id": namespace_id, "certificate_filters": namespace.certificate_filters},
        text or "no filters: every certificate of the accepted CAs is admitted",
    )


@filters_app.command("set")
def filters_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    filters: Annotated[
        list[str],
        typer.Option(
            "--filter",
            help="key=value[,key=value...] with keys common_name, organization, "
            "organizational_unit, subject_alternative_name; repeat for more filters (a "
            "certificate matching any of them is admitted)",
        ),
    ],
    wait: WaitOption = False,
) -> None:
    """Replace the certificate filters."""
    parsed = [_parse_filter(text) for text in filters]
    _update(ctx.obj, namespace_id, wait, lambda _: {"certificate_filters": parsed})


@filters_app.command("clear")
def filters_clear(
    ctx: typer.Context, namespace_id: NamespaceOption, wait: WaitOption = False
) -> None:
    """Remove every filter: all certificates of the accepted CAs are admitted again."""

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if not namespace.certificate_filters:
            raise _NoChange("no filters are set")
        return {"certificate_filters": []}

    _update(ctx.obj, namespace_id, wait, change)


@operation_app.command("get")
def operation_get(ctx: typer.Context, operation_id: str) -> None:
    c: Context = ctx.obj
    operation = _call(c, lambda client: client.get_operation(operation_id))
    _emit(c, operation, f"{operation.id}\t{operation.operation_type}\t{operation.state}")


@gateway_app.command("list")
def gateway_list(ctx: typer.Context) -> None:
    """Registered gateways: a namespace becomes ACTIVE only once every one serves it."""
    c: Context = ctx.obj
    listed = _call(c, lambda client: client.list_gateways())
    rows = [
        f"{g.id}\tversion {g.applied_version}\tlast seen {g.last_seen_at.isoformat()}"
        + (f"\tnot serving {','.join(g.rejected)}" if g.rejected else "")
        for g in listed.gateways
    ]
    _emit(c, listed, "\n".join(rows) or "no gateway registered")


@gateway_app.command("deregister")
def gateway_deregister(ctx: typer.Context, gateway_id: str) -> None:
    """Stop waiting for a gateway that is gone for good (it registers again if it polls)."""
    c: Context = ctx.obj
    _call(c, lambda client: client.deregister_gateway(gateway_id))
    _emit(c, {"deregistered": gateway_id}, f"gateway {gateway_id} deregistered")


@certs_app.command("generate-ca")
def certs_generate_ca(
    ctx: typer.Context,
    common_name: Annotated[str, typer.Option(help="Subject CN of the CA")],
    out_dir: Annotated[Path, typer.Option(help="Writes ca.pem and ca.key here")],
    valid_days: Annotated[int, typer.Option()] = 365,
) -> None:
    """Create a CA for your namespace's client certificates."""
    from auth import generate_ca
    from controlplane.bootstrap import _write_private

    ca = generate_ca(common_name, valid_days=valid_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ca.pem").write_bytes(ca.cert_pem)
    _write_private(out_dir / "ca.key", ca.key_pem)
    c: Context = ctx.obj
    paths = {"cert": str(out_dir / "ca.pem"), "key": str(out_dir / "ca.key")}
    _emit(c, paths, f"wrote {paths['cert']} and {paths['key']}")


@certs_app.command("generate-leaf")
def certs_generate_leaf(
    ctx: typer.Context,
    ca_dir: Annotated[Path, typer.Option(help="Directory with ca.pem and ca.key")],
    common_name: Annotated[str, typer.Option(help="Subject CN of the client certificate")],
    out_dir: Annotated[Path, typer.Option(help="Writes client.pem and client.key here")],
    valid_days: Annotated[int, typer.Option()] = 90,
) -> None:
    """Issue a client certificate signed by your CA."""
    from auth import KeyPair, generate_leaf
    from controlplane.bootstrap import _write_private

    try:
        ca = KeyPair((ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca.key").read_bytes())
        leaf = generate_leaf(ca, common_name, valid_days=valid_days)
    except (OSError, ValueError, TypeError) as error:
        _fail(f"cannot use the CA in {ca_dir}: {error}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "client.pem").write_bytes(leaf.cert_pem)
    _write_private(out_dir / "client.key", leaf.key_pem)
    c: Context = ctx.obj
    paths = {"cert": str(out_dir / "client.pem"), "key": str(out_dir / "client.key")}
    _emit(c, paths, f"wrote {paths['cert']} and {paths['key']}")


class AccountRoleChoice(StrEnum):
    owner = "owner"
    admin = "admin"
    developer = "developer"
    finance_admin = "finance_admin"
    read = "read"
    metrics_read = "metrics_read"


class PermissionChoice(StrEnum):
    admin = "admin"
    write = "write"
    read = "read"
    none = "none"


UserArgument = Annotated[str, typer.Argument(help="The user's id or email")]
_DURATION_RE = re.compile(r"^(\d+)([hdwy])$")
_DURATION_UNITS = {"h": 1 / 24, "d": 1, "w": 7, "y": 365}


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``4w``, ``1y`` → a timedelta (a year is 365 days)."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        _fail(f"--duration {text!r}: expected a number and a unit h, d, w or y (e.g. 90d)")
    return dt.timedelta(days=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def _resolve_user(client: StratusClient, user: str) -> UserOut:
    if "@" not in user:
        return client.get_user(user)
    email = user.strip().lower()
    for candidate in client.list_users().users:
        if candidate.email == email:
            return candidate
    _fail(f"no user with email {email} in this account")


def _user_line(user: UserOut) -> str:
    permissions = ",".join(f"{p.namespace_id}={p.permission}" for p in user.namespace_permissions)
    return f"{user.id}\t{user.email}\t{user.account_role}\t{permissions or '-'}"


@user_app.command("invite")
def user_invite(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="The user's email (matched at sign-in)")],
    account_role: Annotated[AccountRoleChoice, typer.Option(help="Account role")],
) -> None:
    """Invite a user to your account with an account role."""
    c: Context = ctx.obj
    user = _call(c, lambda client: client.invite_user(email, account_role.value))
    _emit(c, user, f"invited {user.email} as {user.account_role} (user {user.id})")


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """Users: id, email, account role, namespace permissions."""
    c: Context = ctx.obj
    users = _call(c, lambda client: client.list_users())
    _emit(c, users, "\n".join(_user_line(user) for user in users.users) or "no users")


@user_app.command("set-account-role")
def user_set_account_role(
    ctx: typer.Context,
    user: UserArgument,
    account_role: Annotated[AccountRoleChoice, typer.Option(help="New account role")],
) -> None:
    """Change a user's account role (the last owner cannot be demoted)."""
    c: Context = ctx.obj
    try:
        with c.client() as client:
            current = _resolve_user(client, user)
            updated = client.update_user(
                current.id,
                resource_version=current.resource_version,
                account_role=account_role.value,
            )
    except StratusAPIError as error:
        _api_error(error)
    _emit(c, updated, f"{updated.email}: {updated.account_role}")


@user_app.command("set-namespace-permissions")
def user_set_namespace_permissions(
    ctx: typer.Context,
    user: UserArgument,
    namespace_id: NamespaceOption,
    permission: Annotated[
        PermissionChoice, typer.Option(help="admin, write, read, or none to remove")
    ],
) -> None:
    """Set a user's permission on one namespace."""
    c: Context = ctx.obj
    value = None if permission is PermissionChoice.none else permission.value
    updated = _call(
        c,
        lambda client: client.set_namespace_access(
            namespace_id, _resolve_user(client, user).id, value
        ),
    )
    _emit(c, updated, _user_line(updated))


@user_app.command("delete")
def user_delete(ctx: typer.Context, user: UserArgument) -> None:
    """Remove a user with their API keys and namespace permissions."""
    c: Context = ctx.obj
    try:
        with c.client() as client:
            target = _resolve_user(client, user)
            client.delete_user(target.id)
    except StratusAPIError as error:
        _api_error(error)
    _emit(c, {"deleted": target.id}, f"deleted user {target.email}")


def _service_account_line(sa: ServiceAccountOut) -> str:
    if sa.namespace_scope is not None:
        scope = f"{sa.namespace_scope.namespace_id}={sa.namespace_scope.permission}"
    else:
        scope = f"account:{sa.account_role}"
    return f"{sa.id}\t{sa.name}\t{scope}"


@service_account_app.command("create")
def service_account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name in the account")],
    account_role: Annotated[AccountRoleChoice, typer.Option(help="Account role (not owner)")],
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create an account-wide service account."""
    c: Context = ctx.obj
    sa = _call(
        c,
        lambda client: client.create_service_account(
            name, description=description, account_role=account_role.value
        ),
    )
    _emit(c, sa, f"service account {sa.name} created: {sa.id}")


@service_account_app.command("create-scoped")
def service_account_create_scoped(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name in the account")],
    namespace_id: NamespaceOption,
    permission: Annotated[PermissionChoice, typer.Option(help="admin, write or read")],
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a service account scoped to one namespace."""
    c: Context = ctx.obj
    if permission is PermissionChoice.none:
        _fail("--permission must be admin, write or read")
    sa = _call(
        c,
        lambda client: client.create_service_account(
            name,
            description=description,
            namespace_id=namespace_id,
            namespace_permission=permission.value,
        ),
    )
    _emit(c, sa, f"service account {sa.name} created: {sa.id}")


@service_account_app.command("list")
def service_account_list(ctx: typer.Context) -> None:
    c: Context = ctx.obj
    service_accounts = _call(c, lambda client: client.list_service_accounts())
    lines = [_service_account_line(sa) for sa in service_accounts.service_accounts]
    _emit(c, service_accounts, "\n".join(lines) or "no service accounts")


@service_account_app.command("delete")
def service_account_delete(ctx: typer.Context, service_account_id: str) -> None:
    """Remove a service account and its API keys."""
    c: Context = ctx.obj
    _call(c, lambda client: client.delete_service_account(service_account_id))
    _emit(c, {"deleted": service_account_id}, f"deleted service account {service_account_id}")


def _key_line(key: ApiKeyOut) -> str:
    state = "disabled" if key.disabled else "enabled"
    expires = key.expires_at.isoformat() if key.expires_at else "never"
    return f"{key.id}\t{key.display_name}\t{key.owner_type}:{key.owner_id}\t{state}\t{expires}"


@apikey_app.command("create")
def apikey_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name")],
    duration: Annotated[str, typer.Option(help="Lifetime, e.g. 90d, 12h, 4w, 1y (max 2y)")],
    service_account_id: Annotated[
        str | None, typer.Option(help="Create the key for this service account (admins)")
    ] = None,
) -> None:
    """Create an API key; the secret is printed once."""
    c: Context = ctx.obj
    expiry = dt.datetime.now(dt.UTC) + parse_duration(duration)
    created = _call(
        c, lambda client: client.create_api_key(name, expiry, service_account_id=service_account_id)
    )
    _emit(
        c,
        created,
        f"API key {created.api_key.id} (expires {expiry.date().isoformat()})\n"
        f"token (shown once): {created.token}",
    )


@apikey_app.command("list")
def apikey_list(ctx: typer.Context) -> None:
    c: Context = ctx.obj
    keys = _call(c, lambda client: client.list_api_keys())
    _emit(c, keys, "\n".join(_key_line(key) for key in keys.api_keys) or "no API keys")


@apikey_app.command("disable")
def apikey_disable(ctx: typer.Context, api_key_id: str) -> None:
    """Stop a key from working (at once); enable brings it back."""
    c: Context = ctx.obj
    key = _call(c, lambda client: client.disable_api_key(api_key_id))
    _emit(c, key, _key_line(key))


@apikey_app.command("enable")
def apikey_enable(ctx: typer.Context, api_key_id: str) -> None:
    c: Context = ctx.obj
    key = _call(c, lambda client: client.enable_api_key(api_key_id))
    _emit(c, key, _key_line(key))


@apikey_app.command("delete")
def apikey_delete(ctx: typer.Context, api_key_id: str) -> None:
    c: Context = ctx.obj
    _call(c, lambda client: client.delete_api_key(api_key_id))
    _emit(c, {"deleted": api_key_id}, f"deleted API key {api_key_id}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


@usage_app.command("get")
def usage_get(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First UTC day, YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="Last UTC day, YYYY-MM-DD (inclusive, at most 90 days)")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Only this namespace id (name.account)")
    ] = None,
) -> None:
    """Usage per namespace, UTC day and billable kind."""
    c: Context = ctx.obj
    usage = _call(c, lambda client: client.get_usage(start, end, namespace_id=namespace))
    lines = [f"{u.date}\t{u.namespace_id}\t{u.kind}\t{u.quantity}" for u in usage.usage]
    _emit(c, usage, "\n".join(lines) or f"no usage from {usage.start} to {usage.end}")


class InvoiceFormat(StrEnum):
    json = "json"
    csv = "csv"


def _invoice_text(invoice: InvoiceOut) -> str:
    lines = [
        f"invoice {invoice.id}  {invoice.period_start} to {invoice.period_end}  {invoice.status}",
        f"plan {invoice.plan}, prices {invoice.price_book_version}, in {invoice.currency}",
    ]
    lines += [f"  {line.amount:>12}  {line.description}" for line in invoice.lines]
    lines.append(f"  {invoice.subtotal:>12}  subtotal")
    lines += [
        f"  {-applied.amount:>12}  credit {applied.credit_id}"
        for applied in invoice.credit_applications
    ]
    lines.append(f"  {invoice.total:>12}  total")
    lines += [f"  {-note.amount:>12}  credit note: {note.reason}" for note in invoice.credit_notes]
    lines.append(f"  {invoice.amount_due:>12}  amount due")
    if invoice.usage:
        lines.append("usage by namespace:")
        lines += [f"  {u.namespace_id}\t{u.kind}\t{u.quantity}\t{u.amount}" for u in invoice.usage]
    return "\n".join(lines)


@invoice_app.command("list")
def invoice_list(ctx: typer.Context) -> None:
    """The account's invoices, newest month first."""
    c: Context = ctx.obj
    invoices = _call(c, lambda client: client.list_invoices())
    lines = [
        f"{i.id}\t{i.period_start:%Y-%m}\t{i.status}\t{i.amount_due} {i.currency}"
        for i in invoices.invoices
    ]
    _emit(c, invoices, "\n".join(lines) or "no invoices yet")


@invoice_app.command("get")
def invoice_get(ctx: typer.Context, invoice_id: str) -> None:
    """One invoice: charges, credits, credit notes and usage per namespace."""
    c: Context = ctx.obj
    invoice = _call(c, lambda client: client.get_invoice(invoice_id))
    _emit(c, invoice, _invoice_text(invoice))


@invoice_app.command("download")
def invoice_download(
    ctx: typer.Context,
    invoice_id: str,
    file_format: Annotated[InvoiceFormat, typer.Option("--format")] = InvoiceFormat.json,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output)")
    ] = None,
) -> None:
    """The invoice as JSON or FOCUS-style CSV."""
    c: Context = ctx.obj
    body = _call(c, lambda client: client.download_invoice(invoice_id, file_format=file_format))
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)
        typer.echo(f"wrote {out} ({len(body)} bytes)", err=True)


@invoice_app.command("credit-note")
def invoice_credit_note(
    ctx: typer.Context,
    invoice_id: str,
    amount: Annotated[str, typer.Option(help="Decimal amount, e.g. 12.50")],
    reason: Annotated[str, typer.Option(help="Why the invoice is corrected")],
) -> None:
    """Operator: correct a finalized invoice with a credit note."""
    c: Context = ctx.obj
    note = _call(
        c, lambda client: client.create_credit_note(invoice_id, amount=amount, reason=reason)
    )
    _emit(c, note, f"credit note {note.id}: {note.amount} on invoice {note.invoice_id}")


@billing_app.command("plan")
def billing_plan(ctx: typer.Context) -> None:
    """The account's plan today and its plan changes."""
    c: Context = ctx.obj
    plan = _call(c, lambda client: client.get_plan())
    history = [f"  from {p.effective_from}: {p.plan}" for p in plan.history]
    default = " (default)" if plan.is_default else ""
    _emit(c, plan, "\n".join([f"plan {plan.plan}{default}", *history]))


@billing_app.command("set-plan")
def billing_set_plan(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="Account id")],
    plan: Annotated[str, typer.Option(help="Plan of the price book")],
    effective_from: Annotated[
        str | None, typer.Option(help="First UTC day on the plan, YYYY-MM-DD (default today)")
    ] = None,
) -> None:
    """Operator: put an account on a plan."""
    c: Context = ctx.obj
    day = _parse_day(effective_from, "--effective-from") if effective_from else None
    result = _call(c, lambda client: client.set_account_plan(account, plan, effective_from=day))
    _emit(c, result, f"account {account}: plan {result.plan}")


@billing_app.command("credits")
def billing_credits(ctx: typer.Context) -> None:
    """The account's prepaid credits."""
    c: Context = ctx.obj
    credits = _call(c, lambda client: client.list_credits())
    lines = [
        f"{credit.id}\t{credit.remaining}/{credit.amount}\t"
        f"{credit.expires_at.date() if credit.expires_at else 'no expiry'}\t{credit.description}"
        for credit in credits.credits
    ]
    _emit(c, credits, "\n".join(lines) or "no credits")


@billing_app.command("grant-credit")
def billing_grant_credit(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="Account id")],
    amount: Annotated[str, typer.Option(help="Decimal amount, e.g. 250.00")],
    description: Annotated[str, typer.Option(help="Shown on invoices")],
    expires_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: never)")] = None,
) -> None:
    """Operator: grant an account a prepaid credit."""
    c: Context = ctx.obj
    day = _parse_day(expires_on, "--expires-on") if expires_on else None
    credit = _call(
        c,
        lambda client: client.grant_credit(
            account, amount=amount, description=description, expires_on=day
        ),
    )
    _emit(c, credit, f"credit {credit.id}: {credit.amount} for account {credit.account_id}")


def _sink_text(sink: ExportSinkOut) -> str:
    through = sink.usage_exported_through or "nothing yet"
    error = f"\nlast error ({sink.last_error_at}): {sink.last_error}" if sink.last_error else ""
    endpoint = sink.endpoint_url or "AWS"
    return (
        f"s3://{sink.bucket}/{sink.prefix} ({endpoint}, {sink.region}), key {sink.access_key_id}"
        f"\nusage exported from {sink.export_from} through {through}{error}"
    )


@export_sink_app.command("get")
def export_sink_get(ctx: typer.Context) -> None:
    c: Context = ctx.obj
    sink = _call(c, lambda client: client.get_export_sink())
    _emit(c, sink, _sink_text(sink))


@export_sink_app.command("set")
def export_sink_set(
    ctx: typer.Context,
    bucket: Annotated[str, typer.Option()],
    access_key_id: Annotated[str, typer.Option(envvar="STRATUS_SINK_ACCESS_KEY_ID")],
    secret_access_key: Annotated[
        str, typer.Option(envvar="STRATUS_SINK_SECRET_ACCESS_KEY", help="Stored encrypted")
    ],
    prefix: Annotated[str, typer.Option()] = "",
    region: Annotated[str, typer.Option()] = "us-east-1",
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint other than AWS")
    ] = None,
    export_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today)")] = None,
) -> None:
    """Create or replace the account's export sink."""
    c: Context = ctx.obj
    body = ExportSinkSet(
        bucket=bucket,
        prefix=prefix,
        region=region,
        endpoint_url=endpoint_url,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        export_from=_parse_day(export_from, "--export-from") if export_from else None,
    )
    sink = _call(c, lambda client: client.set_export_sink(body))
    _emit(c, sink, _sink_text(sink))


@export_sink_app.command("delete")
def export_sink_delete(ctx: typer.Context) -> None:
    c: Context = ctx.obj
    _call(c, lambda client: client.delete_export_sink())
    _emit(c, {"deleted": True}, "export sink deleted")


def _parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} must be a date as YYYY-MM-DD, got {value!r}", code=2)
