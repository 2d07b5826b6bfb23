"""``stratus certs``: a CA for a namespace's client certificates, and the certificates; and
where ``namespace create --generate-certs`` keeps both (the data dir, never the work tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.kit.files import write_private

app = typer.Typer(no_args_is_help=True, help="Create CAs and client certificates.")


def data_dir() -> Path:
    """The embedded Stratus's data dir as ``stratus up`` and docs/examples/worker.py find it."""
    return Path(os.environ.get("STRATUS_DATA_DIR") or ".stratus")


def default_namespace_certs_dir(namespace_id: str) -> Path:
    """Where docs/examples/worker.py looks for a namespace's client certificate."""
    return data_dir() / "certs" / namespace_id


def committable(path: Path) -> bool:
    """Whether ``path`` lies in a git work tree without being git-ignored (a ``git add .``
    would commit what is written there)."""
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    git = shutil.which("git")
    if git is None:
        return False
    checked = subprocess.run(
        [
            git,
            "-C",
            str(existing if existing.is_dir() else existing.parent),
            "check-ignore",
            "-q",
            str(path.absolute()),
        ],
        capture_output=True,
        check=False,
    )
    # 0: ignored; 1: not ignored; 128: not in a git work tree.
    return checked.returncode == 1


def write_namespace_certs(directory: Path, namespace_id: str) -> dict[str, str]:
    """A new CA for ``namespace_id`` and a client certificate it signs, in ``directory``
    (``ca.pem``, ``ca.key``, ``client.pem``, ``client.key``; keys 0600, directory 0700)."""
    from auth import generate_ca, generate_leaf

    if (directory / "ca.key").exists():
        fail(f"{directory} already holds a CA (ca.key); choose another --certs-dir")
    if committable(directory):
        fail(
            f"{directory} is in a git work tree and not git-ignored: a `git add .` would commit "
            "the private keys; choose a git-ignored --certs-dir"
        )
    ca = generate_ca(f"{namespace_id} CA", valid_days=365)
    leaf = generate_leaf(ca, f"{namespace_id} worker", valid_days=90)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    write_private(directory / "ca.key", ca.key_pem)
    (directory / "client.pem").write_bytes(leaf.cert_pem)
    write_private(directory / "client.key", leaf.key_pem)
    return {
        name: str(directory / name) for name in ("ca.pem", "ca.key", "client.pem", "client.key")
    }


@app.command("generate-ca")
def certs_generate_ca(
    ctx: typer.Context,
    common_name: Annotated[str, typer.Option(help="Subject CN of the CA")],
    out_dir: Annotated[Path, typer.Option(help="Writes ca.pem and ca.key here")],
    valid_days: Annotated[int, typer.Option()] = 365,
) -> None:
    """Create a CA for your namespace's client certificates."""
    from auth import generate_ca

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
    from auth import KeyPair, generate_leaf

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
