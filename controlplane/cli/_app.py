from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel

from controlplane.client import StratusAPIError, StratusClient

app = typer.Typer(no_args_is_help=True, help="Stratus: Temporal workflows as a service.")
account_app = typer.Typer(no_args_is_help=True, help="Accounts (operator).")
namespace_app = typer.Typer(no_args_is_help=True, help="Namespaces of your account.")
certs_app = typer.Typer(no_args_is_help=True, help="Create CAs and client certificates.")
operation_app = typer.Typer(no_args_is_help=True, help="Async operations.")
app.add_typer(account_app, name="account")
app.add_typer(namespace_app, name="namespace")
app.add_typer(certs_app, name="certs")
app.add_typer(operation_app, name="operation")


class Output(StrEnum):
    text = "text"
    json = "json"


@dataclass
class Context:
    api_url: str
    api_key: str | None
    output: Output

    def client(self) -> StratusClient:
        return StratusClient(self.api_url, self.api_key)


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


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option(envvar="STRATUS_DATA_DIR", help="State directory")
    ] = Path(".stratus"),
    api_port: Annotated[int, typer.Option(envvar="STRATUS_API_PORT")] = 8080,
    gateway_port: Annotated[int, typer.Option(envvar="STRATUS_GATEWAY_PORT")] = 7233,
) -> None:
    """Run Stratus on the embedded default (SQLite + local cells) in the foreground."""
    from controlplane.config import Settings
    from controlplane.supervisor import up as run_up

    settings = Settings(data_dir=data_dir, api_port=api_port, gateway_port=gateway_port)
    raise typer.Exit(run_up(settings))


@account_app.command("create")
def account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Display name")],
    owner_email: Annotated[str, typer.Option(help="Email of the account owner")],
) -> None:
    """Create an account and its owner (needs the operator key). Prints the owner's API key once."""
    c: Context = ctx.obj
    try:
        with c.client() as client:
            created = client.create_account(name, owner_email)
    except StratusAPIError as error:
        _api_error(error)
    _emit(
        c,
        created,
        f"account {created.account.id} created for {created.owner.email}\n"
        f"owner API key (shown once): {created.owner_api_key.token}",
    )


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
    try:
        with c.client() as client:
            namespaces = client.list_namespaces()
    except StratusAPIError as error:
        _api_error(error)
    lines = [f"{ns.id}\t{ns.state}\tretention={ns.retention_days}d" for ns in namespaces.namespaces]
    _emit(c, namespaces, "\n".join(lines) or "no namespaces")


@namespace_app.command("get")
def namespace_get(ctx: typer.Context, namespace_id: str) -> None:
    c: Context = ctx.obj
    try:
        with c.client() as client:
            namespace = client.get_namespace(namespace_id)
    except StratusAPIError as error:
        _api_error(error)
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


@operation_app.command("get")
def operation_get(ctx: typer.Context, operation_id: str) -> None:
    c: Context = ctx.obj
    try:
        with c.client() as client:
            operation = client.get_operation(operation_id)
    except StratusAPIError as error:
        _api_error(error)
    _emit(c, operation, f"{operation.id}\t{operation.operation_type}\t{operation.state}")


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
