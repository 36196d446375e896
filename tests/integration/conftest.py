"""Fixtures shared by the integration tests: one guard world factory and one playbook world per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsguard.sandbox.hosts import SandboxHosts
from tests.integration.guard_support import GuardWorlds, StartSimulator
from tests.integration.playbook_support import PlaybookWorld, start_world


@pytest.fixture
def worlds(
    fresh_hosts: SandboxHosts,
    simulator: StartSimulator,
    tmp_path: Path,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> GuardWorlds:
    """A factory of guard worlds: sshd hosts + a simulator scenario + an inventory, per call."""
    return GuardWorlds(fresh_hosts, simulator, tmp_path, isolated_environment, monkeypatch)


@pytest.fixture
def world(fresh_hosts: SandboxHosts, simulator: StartSimulator, tmp_path: Path, isolated_environment: Path) -> PlaybookWorld:
    """One playbook world: healthy sshd hosts, a fast simulator, an inventory in tmp_path."""
    return start_world(fresh_hosts, simulator, tmp_path, isolated_environment)
