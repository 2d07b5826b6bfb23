"""The README's "First workflow" works as written: its commands, read from README.md, run one
after the other in a shell, from a directory laid out as the repository root beside `make up`,
and leave no secret in that directory."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
from pathlib import Path

from support import StratusUp

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "<account id>"


def readme_commands() -> list[str]:
    """The shell lines of the section's first ``bash`` block (comments and blanks dropped)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## First workflow", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_promises_four_commands() -> None:
    """At most four commands after `make up`: PATH, the account, the namespace, the worker."""
    commands = readme_commands()
    assert len(commands) == 4, commands
    assert commands[0].startswith("export PATH=")
    assert "stratus account create" in commands[1]
    assert "--save" in commands[1]
    assert commands[2].startswith("stratus namespace create")
    assert "--generate-certs" in commands[2]
    assert commands[3].startswith("python docs/examples/worker.py")


def test_readme_first_workflow(stratus: StratusUp, tmp_path: Path) -> None:
    """Each README command runs in bash with the exports before it; only the account id the
    README cannot know is filled in. The namespace command prints the README's worker
    command exactly; the worker prints the greeting and exits 0; the owner key and the
    private keys are 0600 and outside the working directory."""
    commands = readme_commands()
    cwd = tmp_path / "repo"
    cwd.mkdir()
    (cwd / ".stratus").symlink_to(stratus.data_dir)
    (cwd / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (cwd / "docs").symlink_to(ROOT / "docs")
    config = tmp_path / "config"
    env = stratus.env() | {
        # This Stratus's own ports, as a user with non-default ones sets them (README).
        "STRATUS_GATEWAY_ADDRESS": stratus.gateway_address,
        "STRATUS_CONFIG_DIR": str(config),
    }

    def run(index: int, account_id: str | None = None) -> str:
        exports = [c for c in commands[:index] if c.startswith("export ")]
        command = commands[index]
        if account_id is not None:
            command = command.replace(PLACEHOLDER, account_id)
        assert PLACEHOLDER not in command
        done = subprocess.run(
            ["bash", "-euc", "\n".join([*exports, command])],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    started = time.monotonic()
    run(0)
    run(1)
    created = run(2)
    namespace_id = re.search(r"^namespace (orders\.[a-z0-9]+): ACTIVE", created, re.M)
    assert namespace_id, created
    account_id = namespace_id.group(1).split(".", 1)[1]
    printed = created.rstrip().splitlines()[-1].strip()
    assert printed == commands[3].replace(PLACEHOLDER, account_id)
    greeting = run(3, account_id)
    elapsed = time.monotonic() - started
    assert greeting.strip() == "Hello, Stratus!"
    print(f"README first workflow: {elapsed:.1f} s")

    assert stat.S_IMODE((config / "api-key.json").stat().st_mode) == 0o600
    certs = stratus.data_dir / "certs" / namespace_id.group(1)
    for key in ("ca.key", "client.key"):
        assert stat.S_IMODE((certs / key).stat().st_mode) == 0o600
    # Nothing was written into the working directory but what the test laid out.
    assert sorted(p.name for p in cwd.iterdir()) == [".stratus", ".venv", "docs"]
