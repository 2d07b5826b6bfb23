"""``stratus namespace``: namespaces, their accepted client CAs, certificate filters, auth
method and rate limits."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from auth import AuthMethod
from controlplane.cli import namespace_export_sink
from controlplane.cli._context import Context, fail
from controlplane.cli._options import LimitOption, NamespaceOption, PageSizeOption
from controlplane.cli.certs import data_dir, default_namespace_certs_dir, write_namespace_certs

if TYPE_CHECKING:
    from cryptography import x509

    from controlplane.client import StratusClient
    from controlplane.namespaces.schemas import NamespaceOperation, NamespaceOut

app = typer.Typer(no_args_is_help=True, help="Namespaces of your account.")
client_ca_app = typer.Typer(
    no_args_is_help=True, help="CA certificates a namespace accepts for client certificates."
)
filters_app = typer.Typer(
    no_args_is_help=True,
    help="Which client certificates of the accepted CAs may use a namespace.",
)
auth_method_app = typer.Typer(
    no_args_is_help=True, help="How SDK clients authenticate: mTLS, API keys or either."
)
app.add_typer(client_ca_app, name="accepted-client-ca")
app.add_typer(filters_app, name="certificate-filters")
app.add_typer(auth_method_app, name="auth-method")
app.add_typer(namespace_export_sink.app, name="export-sink")


WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the update is applied (FULFILLED)")
]


def _report_state(operation_id: str, state: str) -> None:
    typer.echo(f"  operation {operation_id}: {state}", err=True)


@app.command("create")
def namespace_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Namespace name")],
    ca_cert: Annotated[
        Path | None, typer.Option(help="PEM bundle of accepted client CAs (or --generate-certs)")
    ] = None,
    generate_certs: Annotated[
        bool,
        typer.Option(
            "--generate-certs",
            help="Create a CA and a client certificate it signs, accept that CA, and print the "
            "command that runs docs/examples/worker.py with them",
        ),
    ] = False,
    certs_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --generate-certs: where to write them (a git-ignored directory); "
            "default: <data dir>/certs/<namespace id>, the data dir being STRATUS_DATA_DIR or "
            ".stratus if it exists, else the CLI's config directory",
        ),
    ] = None,
    retention_days: Annotated[int, typer.Option(help="Retention, 1-90 days")] = 30,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the namespace is ACTIVE")
    ] = False,
) -> None:
    """Create a namespace; with --wait, follow its operation to the end."""
    from controlplane.client import StratusAPIError

    c = Context.of(ctx)
    if (ca_cert is None) != generate_certs:
        fail("give either --ca-cert FILE or --generate-certs")
    if certs_dir is not None and not generate_certs:
        fail("--certs-dir goes with --generate-certs")
    with c.connected() as client:
        written: dict[str, str] = {}
        if ca_cert is not None:
            try:
                pem = ca_cert.read_text()
            except OSError as error:
                fail(f"cannot read --ca-cert {ca_cert}: {error.strerror}")
        else:
            account_id = client.current_identity().account_id
            if account_id is None:
                fail("--generate-certs needs the key of an account's user (not the operator's)")
            namespace_id = f"{name.lower()}.{account_id}"
            certs_dir = certs_dir or _default_certs_dir(namespace_id)
            written = write_namespace_certs(certs_dir, namespace_id)
            pem = Path(written["ca.pem"]).read_text()
        try:
            created = client.create_namespace(name, pem, retention_days=retention_days)
        except StratusAPIError:
            for path in written.values():
                Path(path).unlink(missing_ok=True)
            if certs_dir is not None and written and not any(certs_dir.iterdir()):
                certs_dir.rmdir()
            raise
        operation = created.async_operation
        if wait:
            operation = client.wait_for_operation(
                operation.id, on_change=lambda op: _report_state(op.id, op.state)
            )
            namespace = client.get_namespace(created.namespace.id)
            created = created.model_copy(
                update={"namespace": namespace, "async_operation": operation}
            )
    text = (
        f"namespace {created.namespace.id}: {created.namespace.state} "
        f"(operation {operation.id}: {operation.state})"
    )
    if certs_dir is None:
        c.emit(created, text)
    else:
        command = _worker_command(created.namespace.id, certs_dir)
        when = "" if operation.state == "FULFILLED" else " once the namespace is ACTIVE"
        c.emit(
            created.model_dump(mode="json") | {"certificates": written, "worker_command": command},
            f"{text}\nCA and client certificate in {certs_dir} (private keys 0600)\n"
            f"run a worker and a workflow through the gateway{when}:\n  {command}",
        )
    if operation.state == "FAILED":
        fail(f"operation failed: {operation.failure_reason}")


def _default_certs_dir(namespace_id: str) -> Path:
    """In the embedded Stratus's data dir, where the example worker looks, when this CLI runs
    beside it; else in the CLI's own config directory."""
    from controlplane.cli._session_store import config_dir

    if data_dir().is_dir():
        return default_namespace_certs_dir(namespace_id)
    return config_dir() / "certs" / namespace_id


def _worker_command(namespace_id: str, certs_dir: Path) -> str:
    """The command that runs docs/examples/worker.py (from the repository root) with these
    certificates; options only where its defaults (the data dir's) do not apply."""
    command = ["python", "docs/examples/worker.py", namespace_id]
    if certs_dir != default_namespace_certs_dir(namespace_id):
        command += ["--certs-dir", str(certs_dir)]
    if not (data_dir() / "pki" / "gateway-ca.pem").is_file():
        # Not beside the embedded Stratus: its operator hands out the gateway's CA.
        command += ["--gateway-ca", "GATEWAY_CA_PEM"]
    return shlex.join(command)


@app.command("list")
def namespace_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only names starting with this")] = None,
    tag: Annotated[str | None, typer.Option(help="Only those with this tag: key:value")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """The namespaces of your account, by name (every page unless --limit)."""
    c = Context.of(ctx)
    namespaces = c.call(
        lambda client: list(
            client.iter_namespaces(name=name, tag=tag, page_size=page_size, limit=limit)
        )
    )
    lines = [f"{ns.id}\t{ns.state}\tretention={ns.retention_days}d" for ns in namespaces]
    c.emit_rows("namespaces", namespaces, "\n".join(lines) or "no namespaces")


def _one_namespace(positional: str | None, option: str | None) -> str:
    if positional is not None and option is not None and positional != option:
        fail(f"two namespaces given: {positional} and --namespace {option}")
    namespace_id = option or positional
    if namespace_id is None:
        fail("give the namespace: --namespace ID")
    return namespace_id


PositionalNamespace = Annotated[
    str | None,
    typer.Argument(
        metavar="ID", help="Namespace id (name.account); same as --namespace", show_default=False
    ),
]
OptionalNamespaceOption = Annotated[
    str | None, typer.Option("--namespace", help="Namespace id (name.account)")
]


@app.command("get")
def namespace_get(
    ctx: typer.Context,
    positional_id: PositionalNamespace = None,
    option_id: OptionalNamespaceOption = None,
) -> None:
    """A namespace's state, retention and resource version."""
    namespace_id = _one_namespace(positional_id, option_id)
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.get_namespace(namespace_id))
    c.emit(
        namespace,
        f"{namespace.id}\t{namespace.state}\tretention={namespace.retention_days}d\t"
        f"resource_version={namespace.resource_version}",
    )


@app.command("delete")
def namespace_delete(
    ctx: typer.Context,
    positional_id: PositionalNamespace = None,
    option_id: OptionalNamespaceOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is deleted")] = False,
) -> None:
    """Delete a namespace and its workflows."""
    namespace_id = _one_namespace(positional_id, option_id)
    c = Context.of(ctx)
    with c.connected() as client:
        operation = client.delete_namespace(namespace_id).async_operation
        if wait:
            operation = client.wait_for_operation(
                operation.id, on_change=lambda op: _report_state(op.id, op.state)
            )
    c.emit(operation, f"namespace {namespace_id}: delete {operation.state}")


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
            operation.id, on_change=lambda op: _report_state(op.id, op.state)
        )
        namespace = client.get_namespace(result.namespace.id) if reread else result.namespace
        result = result.model_copy(update={"namespace": namespace, "async_operation": operation})
    c.emit(
        result,
        f"namespace {result.namespace.id}: {result.namespace.state} "
        f"(operation {operation.id}: {operation.state})",
    )
    if operation.state == "FAILED":
        fail(f"operation failed: {operation.failure_reason}")


class _NoChange(Exception):
    """The requested change is already in place: nothing to update."""


def _update(
    ctx: typer.Context,
    namespace_id: str,
    wait: bool,
    change: Callable[[NamespaceOut], dict[str, Any]],
) -> None:
    """Read the namespace, compute the change from what was read, and update it with the
    resource_version read: a concurrent change is refused (409), never overwritten."""
    c = Context.of(ctx)
    with c.connected() as client:
        namespace = client.get_namespace(namespace_id)
        try:
            fields = change(namespace)
        except _NoChange as nothing:
            c.emit(namespace, f"namespace {namespace_id}: {nothing}, nothing to update")
            return
        result = client.update_namespace(
            namespace_id, resource_version=namespace.resource_version, **fields
        )
        _wait_and_emit(c, client, result, wait)


def _load_certificates(pem: bytes) -> list[x509.Certificate]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(pem)


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        certificates = _load_certificates(path.read_bytes())
    except OSError as error:
        fail(f"cannot read --ca-cert {path}: {error.strerror}")
    except ValueError as error:
        fail(f"--ca-cert {path} holds no readable PEM certificate: {error}")
    return certificates


def _fingerprint(certificate: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return certificate.fingerprint(hashes.SHA256()).hex()


def _bundle_pem(certificates: list[x509.Certificate]) -> str:
    from cryptography.hazmat.primitives import serialization

    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates)


@app.command("update")
def namespace_update(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    retention_days: Annotated[int, typer.Option(help="Retention, 1-90 days")],
    wait: WaitOption = False,
) -> None:
    """Change a namespace's retention."""
    _update(ctx, namespace_id, wait, lambda _: {"retention_days": retention_days})


@app.command("set-limits")
def namespace_set_limits(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    requests_per_second: Annotated[int, typer.Option(help="Requests/s, 1-100000")],
    actions_per_second: Annotated[int, typer.Option(help="Actions/s, 1-100000")],
    wait: WaitOption = False,
) -> None:
    """Operator: set a namespace's rate limits (enforced by the gateway)."""
    c = Context.of(ctx)
    with c.connected() as client:
        result = client.set_namespace_limits(
            namespace_id,
            requests_per_second=requests_per_second,
            actions_per_second=actions_per_second,
        )
        _wait_and_emit(c, client, result, wait, reread=False)


@auth_method_app.command("set")
def auth_method_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    method: Annotated[AuthMethod, typer.Option("--method", help="mtls, api_key, mtls_or_api_key")],
    wait: WaitOption = False,
) -> None:
    """Choose which gateway endpoint may serve the namespace (mTLS, API key, or both)."""
    _update(ctx, namespace_id, wait, lambda _: {"auth_method": method})


@client_ca_app.command("list")
def client_ca_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The accepted CA certificates: SHA-256 fingerprint, subject, expiry."""
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.get_namespace(namespace_id))
    certificates = _load_certificates(namespace.accepted_client_ca.encode())
    rows = [
        {
            "sha256": _fingerprint(cert),
            "subject": cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
        for cert in certificates
    ]
    text = "\n".join(f"{r['sha256']}\t{r['subject']}\tnot_after={r['not_after']}" for r in rows)
    c.emit({"namespace_id": namespace_id, "accepted_client_ca": rows}, text)


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
        current = _load_certificates(namespace.accepted_client_ca.encode())
        known = {_fingerprint(cert) for cert in current}
        new = [cert for cert in added if _fingerprint(cert) not in known]
        if not new:
            raise _NoChange(f"every CA of {ca_cert} is already accepted")
        return {"accepted_client_ca": _bundle_pem(current + new)}

    _update(ctx, namespace_id, wait, change)


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
        current = _load_certificates(namespace.accepted_client_ca.encode())
        kept = [cert for cert in current if _fingerprint(cert) not in removed]
        if len(kept) == len(current):
            raise _NoChange(f"no CA of {ca_cert} is accepted")
        if not kept:
            fail(
                f"refusing to remove the last accepted CA of {namespace_id}; "
                "add its successor first (accepted-client-ca add)"
            )
        return {"accepted_client_ca": _bundle_pem(kept)}

    _update(ctx, namespace_id, wait, change)


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
        fail(f"cannot read --ca-cert {ca_cert}: {error.strerror}")
    _update(ctx, namespace_id, wait, lambda _: {"accepted_client_ca": pem})


_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def _parse_filter(text: str) -> dict[str, object]:
    """``common_name=worker-*,organization=Acme\\, Inc.`` → a filter object (``\\,`` is a
    literal comma); the API validates the keys and values."""
    parsed: dict[str, object] = {}
    for part in _UNESCAPED_COMMA.split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            fail(f"--filter {text!r}: expected key=value[,key=value...]")
        parsed[key.strip()] = value.replace("\\,", ",")
    return parsed


def _format_filter(certificate_filter: dict[str, str]) -> str:
    escaped = {key: value.replace(",", "\\,") for key, value in certificate_filter.items()}
    return ",".join(f"{key}={value}" for key, value in escaped.items())


@filters_app.command("list")
def filters_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The namespace's certificate filters, one per line."""
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.get_namespace(namespace_id))
    text = "\n".join(_format_filter(f) for f in namespace.certificate_filters)
    c.emit(
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
    _update(ctx, namespace_id, wait, lambda _: {"certificate_filters": parsed})


@filters_app.command("clear")
def filters_clear(
    ctx: typer.Context, namespace_id: NamespaceOption, wait: WaitOption = False
) -> None:
    """Remove every filter: all certificates of the accepted CAs are admitted again."""

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if not namespace.certificate_filters:
            raise _NoChange("no filters are set")
        return {"certificate_filters": []}

    _update(ctx, namespace_id, wait, change)
