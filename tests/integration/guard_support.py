"""Shared set-up for the snapshot-guard integration tests: real sshd hosts, the simulator, the real CLI.

A ``GuardWorld`` is one test's world: the loopback sshd hosts (chat 127.0.0.2 at Vultr, chat2
127.0.0.3 and ia 127.0.0.4 at Hostinger), a provider simulator on 127.0.0.1 started from the
default scenario merged with the test's overrides, and an inventory in tmp_path with short
durations. ``world.cli(...)`` runs the real ``opsguard`` CLI as a subprocess against them, with
stdin a closed pipe (no terminal: nothing can be confirmed by accident).

Test modules wrap ``GuardWorlds`` in a fixture::

    @pytest.fixture
    def worlds(fresh_hosts, simulator, tmp_path, isolated_environment, monkeypatch) -> GuardWorlds:
        return GuardWorlds(fresh_hosts, simulator, tmp_path, isolated_environment, monkeypatch)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsguard.sandbox.environment import SANDBOX_HOSTS
from opsguard.sandbox.hosts import SandboxHosts
from opsguard.sandbox.journal import host_changes
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.cli_fixtures import REPO_ROOT, CliResult, run_cli
from tests.fixtures.simulator_fixtures import FAST_RETRY_ENV, HOSTINGER_CHAT2, HOSTINGER_IA, VULTR_CHAT

StartSimulator = Callable[..., Simulator]

# Short durations so every guarded run takes well under a second (docs/design.md: tests stay fast).
FAST_SETTINGS = {"snapshot_poll": "0.05s", "snapshot_timeout": "5s", "receipt_ttl": "30m"}
FAST_SNAPSHOTS = {"vultr": {"snapshot_seconds": 0.1}, "hostinger": {"snapshot_seconds": 0.1}}
UPGRADE = ("apt-get", "-y", "upgrade")
# Variables a developer's shell might set that would change what the CLI does.
_UNSET = ("OPSGUARD_INVENTORY", "OPSGUARD_PING_URL", "OPSGUARD_WEBHOOK_URL", "http_proxy", "HTTP_PROXY",
          "https_proxy", "HTTPS_PROXY")  # fmt: skip


def vultr_instance(**fields: Any) -> dict[str, Any]:
    """Given wire fields, return a scenario override of chat's Vultr instance."""
    return {"vultr": {"instances": [{"id": VULTR_CHAT, **fields}]}}


def hostinger_vm(vm_id: int = HOSTINGER_CHAT2, **fields: Any) -> dict[str, Any]:
    """Given a VM id (1001 = chat2, 1002 = ia) and wire fields, return a scenario override of that VM."""
    return {"hostinger": {"vms": [{"id": vm_id, **fields}]}}


def faults(api: str, **knobs: Any) -> dict[str, Any]:
    """Given an API ("vultr" | "hostinger") and fault knobs, return the scenario override that sets them."""
    return {api: {"faults": knobs}}


def merged(*overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Given scenario overrides, return them deep-merged into one (later ones win)."""
    from opsguard.sandbox.simulator import merge_scenario

    result: dict[str, Any] = {}
    for override in overrides:
        result = merge_scenario(result, dict(override))
    return result


PROVIDER_OF = {"chat": "vultr", "chat2": "hostinger", "ia": "hostinger"}
INSTANCE_OF: dict[str, str | int] = {"chat": VULTR_CHAT, "chat2": HOSTINGER_CHAT2, "ia": HOSTINGER_IA}


@dataclass
class GuardWorld:
    """One test's sshd hosts + simulator + inventory + state dir, and ways to look at what happened."""

    hosts: SandboxHosts
    sim: Simulator
    inventory: Path
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    # -- running -------------------------------------------------------------------------------

    def env(self, **overrides: str) -> dict[str, str]:
        """Return the environment for a CLI subprocess: simulator URLs and tokens, inventory, state dir."""
        env = {
            **self.sim.env(),
            **FAST_RETRY_ENV,
            "OPSGUARD_INVENTORY": str(self.inventory),
            "OPSGUARD_STATE_DIR": str(self.state_dir),
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def cli(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> CliResult:
        """Given CLI arguments, run the real `opsguard` with stdin a closed pipe (no terminal) and return the result."""
        return run_cli(*args, env={**self.env(), **(env or {})}, input_text="", timeout=timeout)

    def exec_upgrade(self, host: str, *options: str, env: Mapping[str, str] | None = None) -> CliResult:
        """Given a host, run `opsguard exec HOST --yes [OPTIONS] -- apt-get -y upgrade` and return the result."""
        return self.cli("exec", host, "--yes", *options, "--", *UPGRADE, env=env)

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Given CLI arguments, start the real CLI in the background (stdin closed); the caller waits on it."""
        full_env = dict(os.environ)
        full_env.update({**self.env(), **(env or {})})
        return subprocess.Popen(
            [sys.executable, "-m", "opsguard", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
        )

    # -- what the provider API received ---------------------------------------------------------

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """Given an optional HTTP method, return the simulator's journal entries (of that method)."""
        return [entry for entry in self.sim.journal() if method is None or entry["method"] == method]

    def snapshot_posts(self) -> list[dict[str, Any]]:
        """Return every snapshot-create POST the simulator received (Vultr /snapshots, Hostinger .../snapshot)."""
        return [
            entry
            for entry in self.requests("POST")
            if entry["path"] == "/snapshots" or entry["path"].endswith("/snapshot")
        ]

    def snapshot_events(self) -> list[dict[str, Any]]:
        """Return the simulator's snapshot events (requested_at, completed_at, snapshot_id, state)."""
        return self.sim.snapshot_events()

    # -- what the hosts received ----------------------------------------------------------------

    def commands(self, host: str) -> list[list[str]]:
        """Given a host name, return the argv of every stub command it ran (apt-get, systemctl, ...)."""
        return self.hosts.commands(host)

    def sessions(self, host: str) -> list[str]:
        """Given a host name, return the full command line of every SSH session it received, oldest first."""
        return [session.command for session in self.hosts.sessions(host)]

    def changes(self, host: str) -> list[str]:
        """Given a host name, return every command line it received that may have changed it (the oracle: anything
        not known read-only counts; opsguard's own lock dir and change record aside)."""
        return host_changes(self.hosts, host)

    def lock_dir(self, host: str) -> Path:
        """Given a host name, return its remote lock dir (inside the sandbox host's root)."""
        return self.hosts.host(host).root / "run" / "lock" / "opsguard"

    def hold_remote_lock(self, host: str, owner: Mapping[str, Any]) -> Path:
        """Given a host and an owner record, create its remote lock dir as another run would; return the dir."""
        directory = self.lock_dir(host)
        directory.mkdir(parents=True)
        (directory / "owner").write_text(json.dumps(dict(owner)), encoding="utf-8")
        return directory

    # -- the ledger -----------------------------------------------------------------------------

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.jsonl"

    def ledger(self, host: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Given an optional host and event name, return the ledger records, oldest first."""
        if not self.ledger_path.exists():
            return []
        records = [
            json.loads(line) for line in self.ledger_path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        return [
            record
            for record in records
            if (host is None or record.get("host") == host) and (event is None or record.get("event") == event)
        ]

    def last_run_end(self, host: str) -> dict[str, Any]:
        """Given a host, return its last run-ended ledger record; fail if there is none."""
        ends = self.ledger(host, "run-ended")
        assert ends, f"no run-ended record for {host} in {self.ledger_path}"
        return ends[-1]


class GuardWorlds:
    """A factory of GuardWorlds for one test; every simulator it starts is stopped by the ``simulator`` fixture."""

    def __init__(
        self,
        hosts: SandboxHosts,
        start_simulator: StartSimulator,
        tmp_path: Path,
        state_dir: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.hosts = hosts
        self.start_simulator = start_simulator
        self.tmp_path = tmp_path
        self.state_dir = state_dir
        for name in _UNSET:
            monkeypatch.delenv(name, raising=False)

    def __call__(
        self,
        *overrides: Mapping[str, Any],
        settings: Mapping[str, str] | None = None,
        names: Sequence[str] = ("chat", "chat2", "ia"),
        journal_path: Path | None = None,
    ) -> GuardWorld:
        """Given scenario overrides (merged over fast snapshots), inventory settings and host names, return a world."""
        sim = self.start_simulator(merged(FAST_SNAPSHOTS, *overrides), journal_path=journal_path)
        values = {**FAST_SETTINGS, "state_dir": str(self.state_dir), **(settings or {})}
        inventory = self.tmp_path / "inventory.toml"
        providers = {name: SANDBOX_HOSTS[name] for name in names}
        inventory.write_text(self.hosts.inventory_text(providers, settings=values), encoding="utf-8")
        return GuardWorld(hosts=self.hosts, sim=sim, inventory=inventory, state_dir=self.state_dir)


def known_hosts_without(hosts: SandboxHosts, name: str, target: Path) -> Path:
    """Given the sandbox hosts and a host name, write a known_hosts lacking that host's line to target; return it."""
    host = hosts.host(name)
    marker = f"[{host.address}]:{host.port} "
    lines = [line for line in hosts.known_hosts.read_text().splitlines() if line and not line.startswith(marker)]
    target.write_text("\n".join(lines) + "\n")
    return target


def known_hosts_with_other_key(hosts: SandboxHosts, name: str, target: Path) -> Path:
    """Given the sandbox hosts and a host name, write a known_hosts where that host has another ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    host = hosts.host(name)
    marker = f"[{host.address}]:{host.port} "
    lines = [line for line in hosts.known_hosts.read_text().splitlines() if line and not line.startswith(marker)]
    lines.append(marker + other)
    target.write_text("\n".join(lines) + "\n")
    return target


def foreign_owner(run_id: str = "20250101T000000Z-0ther1") -> dict[str, Any]:
    """Return the owner record another operator's run would have left in a lock."""
    return {
        "run_id": run_id,
        "user": "alice",
        "machine": "alice-laptop",
        "pid": 4242,
        "since": "2025-01-01T00:00:00.000Z",
        "reason": "exec: pm2 restart all",
    }


def closed_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (bound then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
