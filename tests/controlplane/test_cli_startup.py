"""``stratus`` starts without the server's stack: answering ``--help`` (and loading the typed
client) imports no ORM, web framework, Temporal SDK, gRPC, cloud SDK or ``cryptography``; the
commands that need them import them when they run. Not timed: bench/cli_startup.py measures
the CPU this saves; this test keeps the imports from coming back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The server's stack, and what only some commands need (certificates: namespace, certs).
HEAVY = (
    "sqlalchemy",
    "fastapi",
    "temporalio",
    "grpc",
    "boto3",
    "cryptography",
    "pydantic_settings",
)

_RUN_CLI = """
import json, sys
sys.argv = ["stratus", *json.loads(sys.argv[1])]
from controlplane.cli import main
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_packages(code: str, *args: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    return {module.split(".")[0] for module in modules}


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["namespace", "list", "--help"],
        ["namespace", "accepted-client-ca", "add", "--help"],
        ["certs", "generate-ca", "--help"],
        ["up", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_none_of_the_server_stack(argv: list[str]) -> None:
    loaded = _loaded_packages(_RUN_CLI, json.dumps(argv))
    assert "typer" in loaded  # the script ran
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_typed_client_imports_only_httpx_pydantic_and_the_schemas() -> None:
    loaded = _loaded_packages(
        "import json, sys; import controlplane.client; print(json.dumps(sorted(sys.modules)))"
    )
    assert {"httpx", "pydantic"} <= loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
