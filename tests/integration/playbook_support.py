"""Shared set-up for the playbook integration tests: the real CLI runs whole plans on the sshd sandbox hosts.

A ``PlaybookWorld`` is one test's world: the loopback sshd hosts (chat 127.0.0.2 at Vultr, chat2
127.0.0.3 and ia 127.0.0.4 at Hostinger) reset to a healthy state, a provider simulator on 127.0.0.1
(default scenario, short snapshot times) and an inventory in tmp_path written by
``SandboxHosts.inventory_text`` (its vars point into each host's root and carry short waits).
``world.cli(...)`` runs the real ``opsguard`` CLI as a subprocess with stdin a closed pipe.

    @pytest.fixture
    def world(fresh_hosts, simulator, tmp_path, isolated_environment) -> PlaybookWorld:
        return start_world(fresh_hosts, simulator, tmp_path, isolated_environment)
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsguard.sandbox.environment import SANDBOX_HOSTS
from opsguard.sandbox.hosts import SandboxHosts, SessionRecord
from opsguard.sandbox.journal import host_change_records, host_changes, is_mutating_call
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.cli_fixtures import CliResult, run_cli
from tests.fixtures.simulator_fixtures import simulator_env

# Snapshots complete in 0.1 s and are polled every 0.05 s: a whole guarded run takes about a second.
FAST_SNAPSHOTS = {"vultr": {"snapshot_seconds": 0.1}, "hostinger": {"snapshot_seconds": 0.1}}
FAST_SETTINGS = {"snapshot_poll": "0.05s", "snapshot_timeout": "5s", "receipt_ttl": "30m"}
# The options every apt-get call of the update playbook must carry, and the environment it must run in.
APT_OPTIONS = ("-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "l", "UCF_FORCE_CONFFOLD": "1"}
RELEASE_VERSION = "2.5.0"
NEW_MIGRATION = "20250101000000-add-flow-builder.js"
MEDIA_FILE = "backend/public/1700000000000-logo.jpg"  # laid out by the sandbox on every Zpro host


@dataclass
class PlaybookWorld:
    """One test's sshd hosts + simulator + inventory + state dir, and ways to look at what happened."""

    hosts: SandboxHosts
    sim: Simulator
    inventory: Path
    state_dir: Path
    tmp_path: Path

    # -- running -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Return the environment for a CLI subprocess: simulator URLs and tokens, inventory, state dir."""
        return {**simulator_env(self.sim), "OPSGUARD_INVENTORY": str(self.inventory), "OPSGUARD_STATE_DIR": str(self.state_dir)}

    def cli(self, *args: str) -> CliResult:
        """Given CLI arguments, run the real `opsguard` (stdin a closed pipe) and return the result."""
        return run_cli(*args, env=self.env(), input_text="", timeout=90)

    def release(self, *, version: str = RELEASE_VERSION, build_script: str | None = "quasar build") -> Path:
        """Given a version (and the frontend build script, None for none), write a Zpro release zip; return its path.

        The release ships a new migration (NEW_MIGRATION) and a prebuilt backend, as the vendor's update.zip does.
        """
        path = self.tmp_path / f"zpro-{version}.zip"
        frontend: dict[str, Any] = {"name": "zpro-frontend", "version": version}
        if build_script is not None:
            frontend["scripts"] = {"build": build_script}
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("backend/package.json", json.dumps({"name": "zpro-backend", "version": version, "main": "dist/server.js"}))
            archive.writestr("backend/dist/server.js", f"console.log('zpro backend {version}')\n")
            archive.writestr(f"backend/dist/database/migrations/{NEW_MIGRATION}", "module.exports = { up: async () => {}, down: async () => {} };\n")
            archive.writestr("frontend/package.json", json.dumps(frontend))
            archive.writestr("frontend/src/App.vue", f"<template><div>Zpro {version}</div></template>\n")
        return path

    # -- what the hosts received ----------------------------------------------------------------

    def journal(self, host: str) -> list[dict[str, Any]]:
        """Given a host, return its stub journal records (time, argv, cwd, user, env...), oldest first."""
        return self.hosts.journal(host)

    def mutating(self, host: str) -> list[dict[str, Any]]:
        """Given a host, return the stub journal records of the calls that may have changed the host."""
        return [record for record in self.journal(host)
                if is_mutating_call(record["argv"], pm2_daemon_running=bool(record.get("pm2_daemon")))]

    def change_records(self, host: str) -> list[SessionRecord]:
        """Given a host name, return the sessions that may have changed it, with the time each arrived."""
        return host_change_records(self.hosts, host)

    def changes(self, host: str) -> list[str]:
        """Given a host name, return every command line it received that may have changed it (the oracle: anything
        not known read-only counts; opsguard's own lock dir and change record aside)."""
        return host_changes(self.hosts, host)

    def app_dir(self, host: str) -> Path:
        """Given a Zpro host, return its live app dir (inside its sandbox root)."""
        return Path(self.hosts.host_vars(host)["app_dir"])

    def backup_dir(self, host: str) -> Path:
        """Given a host, return its opsguard backup dir (inside its sandbox root)."""
        return Path(self.hosts.host_vars(host)["backup_dir"])

    # -- what the provider API received ---------------------------------------------------------

    def snapshot_posts(self) -> list[dict[str, Any]]:
        """Return every POST the simulator received (a snapshot create is the only POST a playbook run makes)."""
        return [entry for entry in self.sim.journal() if entry["method"] == "POST"]

    def completed_snapshot(self, host: str) -> dict[str, Any]:
        """Given a host, return the simulator's one snapshot event of its instance; fail unless it completed."""
        instance = SANDBOX_HOSTS[host][1]
        events = [event for event in self.sim.snapshot_events() if str(event["instance"]) == str(instance)]
        assert len(events) == 1, f"expected one snapshot of {host}, the simulator saw {events}"
        assert events[0]["completed_at"] is not None, f"the snapshot of {host} never completed: {events[0]}"
        return events[0]

    # -- the ledger -----------------------------------------------------------------------------

    def ledger(self, host: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Given an optional host and event name, return the ledger records, oldest first."""
        path = self.state_dir / "ledger.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r for r in records if (host is None or r.get("host") == host) and (event is None or r.get("event") == event)]

    def run_end(self, host: str) -> dict[str, Any]:
        """Given a host, return its one run-ended ledger record; fail if there is not exactly one."""
        ends = self.ledger(host, "run-ended")
        assert len(ends) == 1, f"expected one run-ended record for {host}, got {ends}"
        return ends[0]


def start_world(
    hosts: SandboxHosts,
    start_simulator: Callable[..., Simulator],
    tmp_path: Path,
    state_dir: Path,
    *,
    scenario: Mapping[str, Any] | None = None,
    names: Sequence[str] = ("chat", "chat2", "ia"),
) -> PlaybookWorld:
    """Given fresh sandbox hosts, the simulator factory, tmp_path and the state dir, return a started world."""
    from opsguard.sandbox.simulator import merge_scenario

    sim = start_simulator(merge_scenario(FAST_SNAPSHOTS, dict(scenario or {})))
    inventory = tmp_path / "inventory.toml"
    providers = {name: SANDBOX_HOSTS[name] for name in names}
    settings = {**FAST_SETTINGS, "state_dir": str(state_dir)}
    inventory.write_text(hosts.inventory_text(providers, settings=settings), encoding="utf-8")
    return PlaybookWorld(hosts=hosts, sim=sim, inventory=inventory, state_dir=state_dir, tmp_path=tmp_path)


# -- reading journals ------------------------------------------------------------------------------------


def position(calls: Sequence[Sequence[str]], predicate: Callable[[Sequence[str]], bool], what: str) -> int:
    """Given argv lists and a predicate, return the index of the first call it accepts; fail naming ``what``."""
    for index, call in enumerate(calls):
        if predicate(call):
            return index
    raise AssertionError(f"no {what} in the journal: {[' '.join(call) for call in calls]}")


def starts(*words: str) -> Callable[[Sequence[str]], bool]:
    """Given leading argv words, return a predicate accepting a call that starts with them."""
    return lambda call: list(call[: len(words)]) == list(words)


def contains(*words: str) -> Callable[[Sequence[str]], bool]:
    """Given argv words, return a predicate accepting a call whose argv holds all of them."""
    return lambda call: all(word in call for word in words)


def json_summary(stdout: str) -> dict[str, Any]:
    """Given the stdout of a run with --json (streamed step output, then the summary), return the summary."""
    start = 0 if stdout.startswith("{\n") else stdout.rfind("\n{\n") + 1
    assert stdout[start:].startswith("{\n"), f"no JSON summary at the end of stdout: {stdout[-500:]!r}"
    summary: dict[str, Any] = json.loads(stdout[start:])
    return summary


def disk_full_rule(percent: int) -> dict[str, Any]:
    """Given a usage percent, return a stub rule making every `df` report / that full (POSIX format)."""
    size_kib = 83886080
    used_kib = size_kib * percent // 100
    text = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        f"/dev/vda1        {size_kib} {used_kib}  {size_kib - used_kib}      {percent}% /\n"
    )
    return {"prefix": ["df"], "stdout": text}
