"""``stratus certs``: a CA for a namespace's client certificates, and the certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auth import KeyPair, generate_ca, generate_leaf
from controlplane.cli._context import Context, fail
from controlplane.kit.files import write_private

app = typer.Typer(no_args_is_help=True, help="Create CAs and client certificates.")


@app.command("generate-ca")
def certs_generate_ca(
    ctx: typer.Context,
    common_name: Annotated[str, typer.Option(help="Subject CN of the CA")],
    out_dir: Annotated[Path, typer.Option(help="Writes ca.pem and ca.key here")],
    valid_days: Annotated[int, typer.Option()] = 365,
) -> None:
    """Create a CA for your namespace's client certificates."""
    ca = generate_ca(common_name, valid_days=valid_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ca.pem").write_bytes(ca.cert_pem)
    write_private(out_dir / "ca.key", ca.key_pem)
    paths = {"cert": str(out_dir / "ca.pem"), "key": str(out_dir / "ca.key")}
    Context.of(ctx).emit(paths, f"wrote {paths['cert']} and {paths['key']}")


@app.command("generate-leaf")
def certs_generate_leaf(
    ctx: typer.Context,
    ca_dir: Annotated[Path, typer.Option(help="Directory with ca.pem and ca.key")],
    common_name: Annotated[str, typer.Option(help="Subject CN of the client certificate")],
    out_dir: Annotated[Path, typer.Option(help="Writes client.pem and client.key here")],
    valid_days: Annotated[int, typer.Option()] = 90,
) -> None:
    """Issue a client certificate signed by your CA."""
    try:
        ca = KeyPair((ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca.key").read_bytes())
        leaf = generate_leaf(ca, common_name, valid_days=valid_days)
    except (OSError, ValueError, TypeError) as error:
        fail(f"cannot use the CA in {ca_dir}: {error}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "client.pem").write_bytes(leaf.cert_pem)
    write_private(out_dir / "client.key", leaf.key_pem)
    paths = {"cert": str(out_dir / "client.pem"), "key": str(out_dir / "client.key")}
    Context.of(ctx).emit(paths, f"wrote {paths['cert']} and {paths['key']}")
