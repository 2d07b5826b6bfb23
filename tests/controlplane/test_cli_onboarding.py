"""What a new user meets in the CLI: help that reads cleanly, ``account create --save`` and the
precedence of the credentials, the namespace given the same way everywhere, and
``--generate-certs`` refusing to put private keys where ``git add .`` would commit them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import STRATUS, ApiAlone
from test_cli_global_options import LEAF_COMMANDS
from typer.testing import CliRunner

from controlplane.cli import app

UNAUTHENTICATED = "[401 https://stratus.dev/problems/unauthenticated]"


@pytest.mark.parametrize("path", [(), *LEAF_COMMANDS], ids=lambda p: " ".join(p) or "stratus")
def test_help_shows_no_type_on_flags_and_no_markup(path: tuple[str, ...]) -> None:
    """Flags (``--wait``, ``--help``) take no value, so their help names no type; docstrings
    are shown as written, so none may carry RST markup."""
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="stratus")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "``" not in result.output


def test_namespace_get_refuses_two_different_namespaces() -> None:
    """``namespace get ID`` (positional, as before) and ``--namespace ID`` (as every other
    namespace command) are the same; both at once must agree."""
    result = CliRunner().invoke(
        app, ["namespace", "get", "a.b", "--namespace", "c.d"], prog_name="stratus"
    )
    assert result.exit_code == 1
    assert "two namespaces given: a.b and --namespace c.d" in result.output
    missing = CliRunner().invoke(app, ["namespace", "delete"], prog_name="stratus")
    assert missing.exit_code == 1
    assert "give the namespace: --namespace ID" in missing.output


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, database_env: dict[str, str]
) -> Iterator[ApiAlone]:
    api = ApiAlone(tmp_path_factory.mktemp("cli-onboarding"), extra_env=database_env)
    try:
        api.start()
        yield api
    finally:
        api.stop()


def _stratus(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return subprocess.run(
        [STRATUS, *args],
        cwd=cwd,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_saved_owner_key_and_its_precedence(api: ApiAlone, tmp_path: Path) -> None:
    """``--save`` keeps the owner key 0600 in the config dir and does not print it; commands
    without a key use it; --api-key and STRATUS_API_KEY win over it; the namespace given
    positionally or with --namespace reads the same; ``logout`` forgets the key."""
    config = tmp_path / "config"
    env = {"STRATUS_API_URL": api.url, "STRATUS_CONFIG_DIR": str(config)}
    created = _stratus(
        tmp_path, env | {"STRATUS_API_KEY": api.operator_key},
        "account", "create", "--name", "Saved", "--owner-email", "o@saved.example", "--save",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    saved = json.loads((config / "api-key.json").read_text())
    assert saved["api_key"] not in created.stdout
    assert f"owner API key saved in {config / 'api-key.json'}" in created.stdout
    assert stat.S_IMODE((config / "api-key.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700

    listed = _stratus(tmp_path, env, "-o", "json", "apikey", "list")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["api_keys"]) == 1

    for explicit in (["--api-key", "not-a-key"], []):
        extra = {} if explicit else {"STRATUS_API_KEY": "not-a-key"}
        refused = _stratus(tmp_path, env | extra, "namespace", "list", *explicit)
        assert refused.returncode == 1
        assert UNAUTHENTICATED in refused.stderr

    # A namespace the API never provisions (no worker here) still reads back both ways.
    ca = tmp_path / "ca"
    made = _stratus(
        tmp_path, env, "certs", "generate-ca", "--common-name", "CA", "--out-dir", str(ca)
    )
    assert made.returncode == 0, made.stderr
    ns = _stratus(tmp_path, env, "-o", "json", "namespace", "create", "--name", "shop",
                  "--ca-cert", str(ca / "ca.pem"))  # fmt: skip
    assert ns.returncode == 0, ns.stderr
    namespace_id = json.loads(ns.stdout)["namespace"]["id"]
    by_position = _stratus(tmp_path, env, "namespace", "get", namespace_id)
    by_option = _stratus(tmp_path, env, "namespace", "get", "--namespace", namespace_id)
    assert by_position.returncode == 0, by_position.stderr
    assert by_position.stdout == by_option.stdout
    assert by_position.stdout.startswith(f"{namespace_id}\tACTIVATING")

    out = _stratus(tmp_path, env, "logout")
    assert (out.returncode, out.stdout) == (0, "forgot the saved API key of o@saved.example\n")
    assert not (config / "api-key.json").exists()


def test_generate_certs_refuses_a_directory_git_would_commit(api: ApiAlone, tmp_path: Path) -> None:
    """In a git work tree, --generate-certs writes only where git ignores; refused, it writes
    nothing and creates no namespace."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {"STRATUS_API_URL": api.url, "STRATUS_API_KEY": api.new_tenant("Git")}
    refused = _stratus(
        repo, env, "namespace", "create", "--name", "orders", "--generate-certs",
        "--certs-dir", "certs",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "is in a git work tree and not git-ignored" in refused.stderr
    assert not (repo / "certs").exists()
    listed = _stratus(repo, env, "namespace", "list")
    assert (listed.returncode, listed.stdout) == (0, "no namespaces\n"), listed.stderr

    (repo / ".gitignore").write_text("/secret/\n")
    accepted = _stratus(
        repo, env, "-o", "json", "namespace", "create", "--name", "orders", "--generate-certs",
        "--certs-dir", "secret/orders",
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    result = json.loads(accepted.stdout)
    namespace_id = result["namespace"]["id"]
    assert result["worker_command"] == (
        f"python docs/examples/worker.py {namespace_id} --certs-dir secret/orders "
        "--gateway-ca GATEWAY_CA_PEM"
    )
    for key in ("ca.key", "client.key"):
        assert stat.S_IMODE((repo / "secret" / "orders" / key).stat().st_mode) == 0o600
