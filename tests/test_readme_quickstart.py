"""The README's "First workflow" works as written: the same CLI steps, then the example worker
file run from a directory laid out as the README assumes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from support import StratusUp

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## First workflow", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        # `STRATUS_API_KEY=$(cat .stratus/operator.key) stratus account create ...`
        _, found, rest = line.partition("stratus ")
        if found and not line.startswith(("#", "export")):
            commands.append("stratus " + rest)
    return commands


def test_readme_first_workflow(stratus: StratusUp, tmp_path: Path) -> None:
    commands = _readme_commands()
    assert [c.split()[1:3] for c in commands] == [
        ["account", "create"],
        ["certs", "generate-ca"],
        ["certs", "generate-leaf"],
        ["namespace", "create"],
    ]
    (tmp_path / ".stratus").symlink_to(stratus.data_dir)

    def run(command: str, api_key: str | None) -> subprocess.CompletedProcess[str]:
        # The README quotes one argument ("Acme CA"); keep it whole.
        args = re.findall(r'"[^"]*"|\S+', command)
        args = [a.strip('"') for a in args]
        done = subprocess.run(
            [str(Path(sys.executable).parent / args[0]), "-o", "json", *args[1:]],
            cwd=tmp_path,
            env=stratus.env(api_key),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    account = json.loads(run(commands[0], stratus.operator_key).stdout)
    owner_key = account["owner_api_key"]["token"]
    run(commands[1], None)
    run(commands[2], None)
    namespace = json.loads(run(commands[3], owner_key).stdout)["namespace"]
    assert namespace["state"] == "ACTIVE"

    example = (ROOT / "docs" / "examples" / "worker.py").read_text()
    assert '"localhost:7233"' in example
    worker = tmp_path / "worker.py"
    # The README runs on the default gateway port; this Stratus has its own.
    worker.write_text(example.replace("localhost:7233", stratus.gateway_address))
    result = subprocess.run(
        [sys.executable, str(worker), namespace["id"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip() == "Hello, Stratus!", result.stderr
    # A short-lived temporalio process can crash while the interpreter finalizes, after its
    # work is done and printed (temporalio/sdk-python#300: the SDK's Rust threads outlive the
    # GIL), with SIGABRT or SIGSEGV and sometimes nothing on stderr. Only that is tolerated:
    # the workflow's result above was printed, so the run itself succeeded.
    assert result.returncode in (0, -6, -11), result.stderr
