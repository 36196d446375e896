"""The sandbox ships in the wheel (it backs `opsguard sandbox` and `make demo`), but nothing else loads it.

Every other command, the CLI and the Python API must import no module of opsguard.sandbox: the
sandbox's fakes and loopback hosts must never be one import away from a run against real hosts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsguard.cli import COMMANDS

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# Imports the module in a fresh interpreter, then reports which opsguard.sandbox modules got loaded.
_PROBE = """
import importlib, json, sys
importlib.import_module({module!r})
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[:2] == ["opsguard", "sandbox"])))
"""

COMMAND_MODULES = sorted({f"opsguard.commands.{module}" for module, _, _ in COMMANDS.values()} - {"opsguard.commands.sandbox"})


def sandbox_modules_loaded_by(module: str) -> list[str]:
    """Given a module name, import it in a fresh interpreter; return the opsguard.sandbox modules that import loaded."""
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", ["opsguard", "opsguard.cli", "opsguard.guard", *COMMAND_MODULES])
def test_sandbox_imports_none_from_other_commands(module: str) -> None:
    assert sandbox_modules_loaded_by(module) == [], f"{module} imports the sandbox"


def test_sandbox_imports_command_list_covers_every_other_command() -> None:
    # The parametrized check above must not pass because it checks nothing.
    assert {"opsguard.commands.hosts", "opsguard.commands.playbook", "opsguard.commands.snapshot"} <= set(COMMAND_MODULES)
    assert "opsguard.commands.sandbox" not in COMMAND_MODULES


def test_sandbox_imports_probe_sees_a_sandbox_import() -> None:
    assert "opsguard.sandbox.hosts" in sandbox_modules_loaded_by("opsguard.sandbox.hosts")
