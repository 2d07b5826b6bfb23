"""CPU the ``stratus`` command spends before it can answer: ``--help`` of the root and of a group.

Run: ``.venv/bin/python bench/cli_startup.py`` (15 runs of each). Prints one JSON document on
stdout. The issue's goal (issue 11, item 6): ``stratus --help`` under 0.3 s of CPU (user+sys),
which it only reaches when the CLI imports no ORM, web framework, Temporal SDK or cloud SDK.

Each run is a fresh process of the installed ``stratus`` entry point (the script next to this
interpreter); its CPU is read from the kernel's accounting of that child (``os.wait4``), so
other processes on the machine change the wall time but not the figure. Reported per command:
median, minimum and maximum of user+sys seconds.

To measure other code (e.g. main before the change), put its checkout first on ``PYTHONPATH``:
``PYTHONPATH=/tmp/cli-before .venv/bin/python bench/cli_startup.py``; the child processes
inherit the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

COMMANDS = (("--help",), ("namespace", "list", "--help"))


def stratus_executable() -> Path:
    """The ``stratus`` script installed beside this interpreter (the venv's)."""
    script = Path(sys.executable).with_name("stratus")
    if not script.exists():
        raise SystemExit(f"no stratus entry point at {script}: pip install -e . first")
    return script


def cpu_seconds(argv: list[str]) -> float:
    """User+sys CPU of one run of ``argv``, which must exit 0."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}: {stderr.decode()}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    stratus = stratus_executable()
    # One unmeasured run of each: the first compiles the modules' bytecode.
    for command in COMMANDS:
        cpu_seconds([str(stratus), *command])
    results = {}
    for command in COMMANDS:
        samples = [cpu_seconds([str(stratus), *command]) for _ in range(args.runs)]
        results["stratus " + " ".join(command)] = {
            "median_cpu_s": round(statistics.median(samples), 3),
            "min_cpu_s": round(min(samples), 3),
            "max_cpu_s": round(max(samples), 3),
        }
    document = {
        "runs": args.runs,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "goal_cpu_s": 0.3,
        "commands": results,
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
