"""Every dependency pyproject.toml declares for running opsguard is imported by opsguard; none is there just in case."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from tests.unit.test_transport_imports import REPO_ROOT, imported_modules, source_files

# Extras for developing and measuring opsguard, not for running it.
TOOLING_EXTRAS = {"dev", "bench"}


def declared_for_running() -> dict[str, str]:
    """Return {distribution name: where it is declared} for the runtime dependencies and the runtime extras."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(requirement): "dependencies" for requirement in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra not in TOOLING_EXTRAS:
            declared.update({_name(requirement): f"extra {extra!r}" for requirement in requirements})
    return declared


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group().lower().replace("-", "_")


def imported_top_level() -> set[str]:
    names = set()
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names |= {module.split(".")[0].lower() for _, module in imported_modules(tree)}
    return names


def test_dependencies_declared_for_running_are_each_imported_by_opsguard() -> None:
    imported = imported_top_level()
    unused = {name: where for name, where in declared_for_running().items() if name not in imported}
    assert unused == {}, f"declared in pyproject.toml but imported by no module of opsguard/ or playbooks/: {unused}"


def test_dependencies_check_sees_the_declared_packages() -> None:
    # The check above must not pass because it read nothing.
    assert {"paramiko", "click", "fabric", "rich"} <= set(declared_for_running())
    assert {"paramiko", "click"} <= imported_top_level()
    assert Path(REPO_ROOT / "pyproject.toml").is_file()
