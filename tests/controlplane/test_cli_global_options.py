"""The global options (``--api-url``, ``--api-key``, ``--output``) work before or after the
subcommand, on every command (found by walking the command tree, so new commands are covered),
and the ones given after the subcommand win."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import typer.core
import typer.main
from support import STRATUS, ApiAlone, free_port
from typer.testing import CliRunner

from controlplane.cli import app

CONNECTION_OPTIONS = ["--api-url", "http://127.0.0.1:9", "--api-key", "k"]


def _leaf_commands() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        if isinstance(command, typer.core.TyperGroup):
            for name, child in command.commands.items():
                walk(child, (*path, name))
        else:
            paths.append(path)

    walk(typer.main.get_command(app), ())
    return paths


LEAF_COMMANDS = _leaf_commands()


def test_the_walk_finds_every_command_group() -> None:
    """Guards the walk itself: it reaches nested groups (quotas, export sink, CA, filters)."""
    assert len(LEAF_COMMANDS) > 50
    for path in [
        ("up",),
        ("login",),
        ("namespace", "list"),
        ("account", "quotas", "set"),
        ("namespace", "accepted-client-ca", "add"),
        ("billing", "export-sink", "set"),
        ("apikey", "create"),
    ]:
        assert path in LEAF_COMMANDS


@pytest.mark.parametrize("path", LEAF_COMMANDS, ids=" ".join)
def test_every_command_accepts_the_global_options_after_it(path: tuple[str, ...]) -> None:
    """Options are parsed before --help acts, so an option the command does not know fails
    here with "No such option" (exit 2) instead of printing the help."""
    for output in (["--output", "json"], ["-o", "text"]):
        args = [*path, *CONNECTION_OPTIONS, *output, "--help"]
        result = CliRunner().invoke(app, args, prog_name="stratus")
        assert result.exit_code == 0, result.output
        assert "Usage: stratus " + " ".join(path) in result.output


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, database_env: dict[str, str]
) -> Iterator[tuple[ApiAlone, str]]:
    api = ApiAlone(tmp_path_factory.mktemp("cli-global-options"), extra_env=database_env)
    try:
        api.start()
        yield api, api.new_tenant("Afterwards")
    finally:
        api.stop()


def _stratus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return subprocess.run(
        [STRATUS, *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_namespace_list_output_json_after_the_subcommand(api: tuple[ApiAlone, str]) -> None:
    """What the README says and a new user types: every global option after the command."""
    server, owner_key = api
    result = _stratus(
        "namespace", "list", "--output", "json", "--api-url", server.url, "--api-key", owner_key
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"namespaces": [], "next_page_token": ""}


def test_options_after_the_subcommand_win(api: tuple[ApiAlone, str]) -> None:
    server, owner_key = api
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"STRATUS_API_URL": closed, "STRATUS_API_KEY": "not-a-key"}

    # --api-url and --api-key after the command replace the environment's.
    listed = _stratus(
        "--output", "json", "apikey", "list", "--api-url", server.url, "--api-key", owner_key,
        env=env,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["api_keys"]) == 1

    # --output after the command replaces the one before it.
    text = _stratus(
        "--output", "json", "--api-url", server.url, "namespace", "list", "-o", "text",
        env={"STRATUS_API_KEY": owner_key},
    )  # fmt: skip
    assert (text.returncode, text.stdout) == (0, "no namespaces\n"), text.stderr

    # A key given after the command is the one sent: a wrong one is refused as such.
    refused = _stratus(
        "--api-key", owner_key, "namespace", "list", "--api-key", "not-a-key",
        env={"STRATUS_API_URL": server.url},
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: the API key is missing, unknown, expired or revoked "
        "[401 https://stratus.dev/problems/unauthenticated]\n"
    )


def test_an_unreachable_api_is_one_error_line() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = _stratus("namespace", "list", "--api-url", closed, "--api-key", "any")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot reach the Stratus API at {closed}: ")
    assert result.stderr.count("\n") == 1, result.stderr
