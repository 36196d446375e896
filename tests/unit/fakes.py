"""Fakes for unit tests of the guard and the runner: a scripted provider and a recording connection."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsguard.errors import ConnectionDropped, SnapshotNotVerified
from opsguard.guard import seams, snapshot_guard
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


LOCK_DIR = "/run/lock/opsguard"
STATE_DIR = "/var/lib/opsguard"


@dataclass
class FakeConnection:
    """Records every command; answers opsguard's bookkeeping (remote lock, change record) like a host would.

    ``peer_address`` is the address the connection reached (the guard checks it against the instance's IPs).
    """

    commands: list[str] = field(default_factory=list)
    lock_held_by: str | None = None
    drop_on: str | None = None
    closed: bool = False
    change_record: str = ""
    peer_address: str | None = "auto"  # "auto": the address of the host it is opened for
    record_writable: bool = True
    pid_files: list[str | None] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # monotonic time each command was sent, as commands
    history: list[str] = field(default_factory=list)  # the lines appended to the host's history of guarded runs

    def run(self, command: str, *, timeout: float, pid_file: str | None = None, **_: Any) -> FakeResult:
        self.commands.append(command)
        self.sent_at.append(time.monotonic())
        if LOCK_DIR in command:
            return self._lock(command)
        if STATE_DIR in command:
            return self._record(command)
        self.pid_files.append(pid_file)
        if self.drop_on and self.drop_on in command:
            raise ConnectionDropped(f"connection dropped while running {command!r}")
        if command.startswith("exit "):
            return FakeResult(command, int(command.split()[1]))
        return FakeResult(command, 0, "ok\n")

    def _lock(self, command: str) -> FakeResult:
        if "echo ACQUIRED" in command:
            if self.lock_held_by:
                owner = f'{{"run_id": "{self.lock_held_by}", "user": "ana"}}'
                return FakeResult(command, 0, f"HELD\n{owner}\nheartbeat_age=3\n")
            return FakeResult(command, 0, "ACQUIRED\n")
        if "echo RELEASED" in command:
            return FakeResult(command, 0, "RELEASED\n")
        if "echo FREE" in command:
            return FakeResult(command, 0, "FREE\n")
        return FakeResult(command, 0, "")

    def _record(self, command: str) -> FakeResult:
        if "OPSGUARD_RECORD_ABSENT" in command:
            return FakeResult(command, 0, self.change_record or "OPSGUARD_RECORD_ABSENT\n")
        if ".probe" in command:
            if not self.record_writable:
                return FakeResult(command, 1, "", "sh: 1: cannot create /var/lib/opsguard/.probe: Read-only file system\n")
            return FakeResult(command, 0, "opsguard-write-probe")
        if "OPSGUARD_HISTORY_ABSENT" in command:  # a read of the history of guarded runs
            return FakeResult(command, 0, "".join(line + "\n" for line in self.history) or "OPSGUARD_HISTORY_ABSENT\n")
        if "history.jsonl" in command:  # the history of guarded runs: append, then print the last line
            line = shlex.split(command.split("printf '%s\\n' ")[1].split(" >> ")[0])[0]
            self.history.append(line)
            return FakeResult(command, 0, line + "\n")
        payload = command.split("printf '%s' ")[1].split(" > ")[0]
        self.change_record = shlex.split(payload)[0]
        return FakeResult(command, 0, self.change_record)

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None) -> None:
        self.commands.append(f"upload {local_path} {remote_path}")

    def authenticated_key(self) -> str | None:
        return None

    def close(self) -> None:
        self.closed = True

    def first_sent(self, command: str) -> float:
        """Given a command, return the monotonic time it was first sent; raise ValueError if never."""
        return self.sent_at[self.commands.index(command)]

    def user_commands(self) -> list[str]:
        """The commands that are not opsguard's own bookkeeping (lock, change record)."""
        return [c for c in self.commands if LOCK_DIR not in c and STATE_DIR not in c]


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
    min_poll_gap: float = 0.0  # not a real provider: no rate limit to respect
    completed_at: float | None = None
    snapshots: dict[str, SnapshotInfo] = field(default_factory=dict)  # what the provider has now, by id

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
        finished = state in ("complete", "success")
        if finished and self.completed_at is None:
            self.completed_at = time.monotonic()  # the moment the provider first reported the snapshot complete
        return SnapshotProgress(state, finished=finished, failed=state in ("deleted", "error"))

    def verify_snapshot(self, request: SnapshotRequest) -> VerifiedSnapshot:
        if self.verify_error:
            raise SnapshotNotVerified(self.verify_error)
        created = datetime.now(UTC)
        expires = created + timedelta(days=20) if self.name != "vultr" else None
        description = request.tag
        self.snapshots["snap-1"] = SnapshotInfo("snap-1", created, expires_at=expires, size=10, status="complete",
                                                description=description)
        return VerifiedSnapshot(self.snapshots["snap-1"], ("status complete",))

    def current_snapshot(self, instance: str | int) -> SnapshotInfo | None:
        """The instance's one snapshot (a single-slot provider): the last one verified, unless a test replaced it."""
        return next(reversed(self.snapshots.values()), None)

    def snapshot_details(self, instance: str | int, snapshot_id: str) -> SnapshotInfo | None:
        return self.snapshots.get(snapshot_id)


@contextmanager
def fake_world(provider: FakeProvider, connection: FakeConnection, resolve: Any = None) -> Iterator[None]:
    """Inside: every guard and session uses this provider and this connection, and resolves addresses to themselves."""
    def connect(host: Any, settings: Any) -> FakeConnection:
        if connection.peer_address == "auto":
            connection.peer_address = host.address
        return connection

    with seams(provider=lambda host: provider, connect=connect, resolve=resolve or (lambda address: {address})):
        yield


@contextmanager
def guard(inventory: Inventory, provider: FakeProvider, connection: FakeConnection, host: str = "chat",
          **kwargs: Any) -> Iterator[Any]:
    """The snapshot guard for ``host`` against the fake provider and connection."""
    resolver = kwargs.pop("resolve", None)
    with fake_world(provider, connection, resolver), snapshot_guard(host, reason="test", inventory=inventory, **kwargs) as change:
        yield change



def hostinger_provider() -> FakeProvider:
    previous = SnapshotInfo("old-snap", datetime.now(UTC) - timedelta(days=3))
    return FakeProvider(name="hostinger", ips=("10.9.9.3",), states=["sent", "success"], previous=previous)
