"""Fakes for unit tests of the guard and the runner: a scripted provider and a recording connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsguard.errors import ConnectionDropped, SnapshotNotVerified
from opsguard.guard import snapshot_guard
from opsguard.inventory import Inventory, load_inventory
from opsguard.providers.base import (
    InstanceFacts,
    SnapshotInfo,
    SnapshotProgress,
    SnapshotRequest,
    VerifiedSnapshot,
)

VULTR_ID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"


def write_inventory(tmp_path: Path, *, ttl: str = "30m", timeout: str = "2s") -> Inventory:
    path = tmp_path / "inventory.toml"
    path.write_text(
        f"""
[settings]
snapshot_timeout = "{timeout}"
snapshot_poll = "0.01s"
receipt_ttl = "{ttl}"

[hosts.chat]
address = "10.9.9.2"
provider = "vultr"
instance = "{VULTR_ID}"
roles = ["zpro"]

[hosts.chat2]
address = "10.9.9.3"
provider = "hostinger"
instance = 1002
roles = ["zpro"]
""",
        encoding="utf-8",
    )
    return load_inventory(path)


@dataclass
class FakeResult:
    command: str
    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeConnection:
    """Records every command; answers the remote lock protocol like a host would."""

    commands: list[str] = field(default_factory=list)
    lock_held_by: str | None = None
    drop_on: str | None = None
    closed: bool = False
    change_record: str = ""

    def run(self, command: str, *, timeout: float, **_: Any) -> FakeResult:
        self.commands.append(command)
        if "mkdir --" in command and "ACQUIRED" in command:
            if self.lock_held_by:
                return FakeResult(command, 0, f'HELD\n{{"run_id": "{self.lock_held_by}", "user": "ana"}}')
            return FakeResult(command, 0, "ACQUIRED\n")
        if "last-change.json" in command:  # opsguard's own record on the host
            if command.startswith("cat"):
                return FakeResult(command, 0, self.change_record)
            self.change_record = command.split("printf '%s' ")[1].split(" > ")[0].strip("'")
            return FakeResult(command, 0, "")
        if self.drop_on and self.drop_on in command:
            raise ConnectionDropped(f"connection dropped while running {command!r}")
        if command.startswith("exit "):
            return FakeResult(command, int(command.split()[1]))
        return FakeResult(command, 0, "ok\n")

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None) -> None:
        self.commands.append(f"upload {local_path} {remote_path}")

    def close(self) -> None:
        self.closed = True

    def user_commands(self) -> list[str]:
        """The commands that are not lock bookkeeping."""
        return [c for c in self.commands if "ACQUIRED" not in c and "rmdir" not in c and "last-change.json" not in c]


@dataclass
class FakeProvider:
    """A scripted provider: states returned by successive polls, then verification."""

    name: str = "vultr"
    ips: tuple[str, ...] = ("10.9.9.2",)
    running: bool = True
    locked: bool = False
    states: list[str] = field(default_factory=lambda: ["pending", "complete"])
    verify_error: str | None = None
    facts_error: Exception | None = None
    create_error: Exception | None = None
    created: int = 0
    polls: int = 0
    previous: SnapshotInfo | None = None

    def instance_facts(self, instance: str | int) -> InstanceFacts:
        if self.facts_error:
            raise self.facts_error
        return InstanceFacts(self.name, instance, "chat", "active/running/ok" if self.running else "stopped",
                             self.running, self.locked, self.ips)

    def create_snapshot(self, instance: str | int, tag: str) -> SnapshotRequest:
        if self.create_error:
            raise self.create_error
        self.created += 1
        return SnapshotRequest(self.name, instance, tag, datetime.now(UTC), snapshot_id="snap-1", previous=self.previous)

    def poll_snapshot(self, request: SnapshotRequest) -> SnapshotProgress:
        state = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        return SnapshotProgress(state, finished=state in ("complete", "success"), failed=state in ("deleted", "error"))

    def verify_snapshot(self, request: SnapshotRequest) -> VerifiedSnapshot:
        if self.verify_error:
            raise SnapshotNotVerified(self.verify_error)
        return VerifiedSnapshot(SnapshotInfo("snap-1", datetime.now(UTC), size=10), ("status complete",))


def guard(inventory: Inventory, provider: FakeProvider, connection: FakeConnection, host: str = "chat", **kwargs: Any) -> Any:
    resolver = kwargs.pop("resolve", lambda address: {address})
    return snapshot_guard(host, reason="test", inventory=inventory, provider=provider,  # type: ignore[arg-type]
                          connect=lambda h, s: connection, resolve=resolver, **kwargs)  # type: ignore[arg-type,return-value]



def hostinger_provider() -> FakeProvider:
    previous = SnapshotInfo("old-snap", datetime.now(UTC) - timedelta(days=3))
    return FakeProvider(name="hostinger", ips=("10.9.9.3",), states=["sent", "success"], previous=previous)
