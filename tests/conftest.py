"""Shared test set-up: every test runs with a clean environment (no real tokens, a private state dir).

Fixture modules live in tests/fixtures/ (one per area) and are loaded as plugins here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.cli_fixtures",
    "tests.fixtures.simulator_fixtures",
    "tests.fixtures.sshd_fixtures",
]

_ISOLATED = (
    "VULTR_API_KEY",
    "HOSTINGER_API_TOKEN",
    "VULTR_API_URL",
    "HOSTINGER_API_URL",
    "OPSGUARD_INVENTORY",
    "OPSGUARD_STATE_DIR",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Remove provider tokens and opsguard variables; point the state dir at a fresh temp dir."""
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("OPSGUARD_STATE_DIR", str(state_dir))
    yield state_dir


REPO_ROOT = Path(__file__).resolve().parent.parent
assert (REPO_ROOT / "pyproject.toml").exists(), REPO_ROOT
os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
