"""Only opsguard/transport.py may import paramiko, only opsguard/fabric_tasks.py fabric and invoke; the CLI's light
paths import none of them (nor rich, off a terminal)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# Which module may import each library: the SSH transport, and the Fabric task model (imported only by `fab`).
ALLOWED = {
    "paramiko": {Path("opsguard/transport.py")},
    "fabric": {Path("opsguard/fabric_tasks.py")},
    "invoke": {Path("opsguard/fabric_tasks.py")},
}
HEAVY = ("requests", "fabric", "paramiko", "invoke", "rich")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Given a parsed module, return (line, module name) for every import, including importlib.import_module("x")."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def source_files() -> list[Path]:
    files: list[Path] = []
    for directory in ("opsguard",):
        if (REPO_ROOT / directory).is_dir():
            files += sorted((REPO_ROOT / directory).rglob("*.py"))
    return files


def test_imports_ssh_libraries_only_in_their_one_module() -> None:
    violations = []
    for path in source_files():
        relative = path.relative_to(REPO_ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
        for line, module in imported_modules(tree):
            library = module.split(".")[0]
            if library in ALLOWED and relative not in ALLOWED[library]:
                violations.append(f"{relative}:{line}: imports {module}")
    assert violations == [], ("paramiko only in opsguard/transport.py, fabric and invoke only in "
                              "opsguard/fabric_tasks.py:\n" + "\n".join(violations))


def test_imports_checker_finds_each_import_form() -> None:
    # The check above must not pass because the walker misses a form of import.
    tree = ast.parse("import paramiko.client\nfrom fabric import Connection\nimportlib.import_module('invoke')\n")
    assert [module for _, module in imported_modules(tree)] == ["paramiko.client", "fabric", "invoke"]


def test_imports_source_walk_covers_the_package() -> None:
    names = {path.relative_to(REPO_ROOT).as_posix() for path in source_files()}
    assert {"opsguard/cli.py", "opsguard/transport.py", "opsguard/fabric_tasks.py"} <= names


# Runs the real CLI in a fresh interpreter, then reports which heavy modules it loaded.
_RUNNER = """
import json, sys
from opsguard.cli import main
try:
    main({args!r})
except SystemExit as exit:
    code = exit.code
print("\\n" + json.dumps({{"code": code, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


@pytest.mark.parametrize("args", [["--help"], ["hosts"], ["validate"]])
def test_imports_cli_light_commands_load_no_ssh_or_http_library(args: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _RUNNER.format(args=args, heavy=HEAVY)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, completed.stdout + completed.stderr
    assert report["loaded"] == [], f"opsguard {' '.join(args)} imported {report['loaded']}"
