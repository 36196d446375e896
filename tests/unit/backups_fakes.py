"""An in-memory Provider and inventory hosts for the backup-check unit tests (no sockets)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opsguard.backups import HostFacts
from opsguard.inventory import BackupPolicy, Host
from opsguard.providers.base import BackupInfo, BackupSchedule, InstanceFacts, SnapshotInfo

NOW = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
VULTR_ID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
READS = {"instance_facts", "list_backups", "backup_schedule", "current_snapshot"}


def ago(text: str) -> datetime:
    """Given "31h", "9d" or "30m", return NOW minus that much."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    return NOW - timedelta(**{units[text[-1]]: float(text[:-1])})


def host(
    name: str = "chat",
    provider: str = "vultr",
    *,
    instance: str | int | None = "default",
    schedule: str = "daily",
    max_age: str = "26h",
    policy: bool = True,
) -> Host:
    """Given a name, a provider and a policy, return an inventory Host as load_inventory would."""
    if instance == "default":
        instance = VULTR_ID if provider == "vultr" else 1001
    units = {"h": 3600.0, "d": 86400.0, "m": 60.0}
    backups = BackupPolicy(schedule, float(max_age[:-1]) * units[max_age[-1]], max_age) if policy else None
    return Host(
        name=name,
        address=f"{name}.example.test",
        port=22,
        user="root",
        provider=provider,
        instance=instance,
        roles=("zpro",),
        remote_lock="/run/lock/opsguard",
        backups=backups,
        source="inventory.toml",
    )


def backup(age: str | None, *, complete: bool = True, number: int = 1) -> BackupInfo:
    """Given an age ("3h") or None (no date), return a BackupInfo."""
    return BackupInfo(
        backup_id=f"b{number}",
        created_at=ago(age) if age else None,
        size=1024,
        status="complete" if complete else "pending",
        complete=complete,
    )


def instance(*, backups_enabled: bool | None = True, provider: str = "vultr") -> InstanceFacts:
    return InstanceFacts(
        provider=provider,
        instance=VULTR_ID,
        label="chat",
        state="active/running/ok",
        running=True,
        locked=False,
        public_ips=("192.0.2.10",),
        backups_enabled=backups_enabled,
    )


def facts(target: Host, **values: Any) -> HostFacts:
    """Given a host and fact values (instance=, schedule=, backups=, snapshot=), return HostFacts."""
    if "backups" in values:
        values["backups"] = tuple(values["backups"])
    return HostFacts(host=target, values=values)


def snapshot(expires_in: str | None, *, created: str = "1d") -> SnapshotInfo:
    """Given how long until it expires ("2d"; "-1d" = expired) return a Hostinger SnapshotInfo."""
    expires_at = None
    if expires_in is not None:
        expires_at = NOW - (ago(expires_in) - NOW)
    return SnapshotInfo(snapshot_id="8812", created_at=ago(created), expires_at=expires_at)


class FakeProvider:
    """A Provider kept in memory. Records every call; ``errors`` maps a method to what it raises;
    ``gate`` (an Event) makes every read wait for it, to simulate a hung API."""

    def __init__(
        self,
        name: str = "vultr",
        *,
        backups_enabled: bool | None = True,
        backups: Sequence[BackupInfo] = (),
        schedule: BackupSchedule | None = None,
        snapshot: SnapshotInfo | None = None,
        errors: dict[str, BaseException] | None = None,
        gate: threading.Event | None = None,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self._instance = instance(backups_enabled=backups_enabled, provider=name)
        self._backups = list(backups)
        self._schedule = schedule if schedule is not None or name != "vultr" else BackupSchedule(True, "daily")
        self._snapshot = snapshot
        self._errors = errors or {}
        self._gate = gate
        self._delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def _enter(self, method: str) -> None:
        with self._lock:
            self.calls.append(method)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._gate is not None:
                self._gate.wait(30)
            if self._delay:
                threading.Event().wait(self._delay)
            if method in self._errors:
                raise self._errors[method]
        finally:
            with self._lock:
                self.in_flight -= 1

    def instance_facts(self, instance: str | int) -> InstanceFacts:
        self._enter("instance_facts")
        return self._instance

    def list_instances(self) -> list[InstanceFacts]:
        self._enter("list_instances")
        return [self._instance]

    def current_snapshot(self, instance: str | int) -> SnapshotInfo | None:
        self._enter("current_snapshot")
        return self._snapshot

    def list_backups(self, instance: str | int) -> list[BackupInfo]:
        self._enter("list_backups")
        return list(self._backups)

    def backup_schedule(self, instance: str | int) -> BackupSchedule | None:
        self._enter("backup_schedule")
        return self._schedule

    # Mutating methods: recorded so tests can prove backup-check never reaches them.
    def create_snapshot(self, instance: str | int, tag: str) -> Any:
        self._enter("create_snapshot")
        raise AssertionError("create_snapshot must never be called by backup-check")

    def poll_snapshot(self, request: Any) -> Any:
        self._enter("poll_snapshot")
        raise AssertionError("not expected")

    def verify_snapshot(self, request: Any) -> Any:
        self._enter("verify_snapshot")
        raise AssertionError("not expected")

    def restore_snapshot(self, instance: str | int, snapshot_id: str) -> Any:
        self._enter("restore_snapshot")
        raise AssertionError("restore_snapshot must never be called by backup-check")


class SharedCounter:
    """Counts reads in flight across several FakeProviders (to check the concurrency bound)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.hosts_in_flight = 0
        self.max_hosts_in_flight = 0
        self.total = 0


class CountingProvider(FakeProvider):
    """A FakeProvider that also updates a SharedCounter around each read."""

    def __init__(self, counter: SharedCounter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._counter = counter

    def _enter(self, method: str) -> None:
        counter = self._counter
        with counter.lock:
            counter.in_flight += 1
            counter.total += 1
            counter.max_in_flight = max(counter.max_in_flight, counter.in_flight)
            self._reads_now = getattr(self, "_reads_now", 0) + 1
            if self._reads_now == 1:  # this host (one provider per host) became busy
                counter.hosts_in_flight += 1
                counter.max_hosts_in_flight = max(counter.max_hosts_in_flight, counter.hosts_in_flight)
        try:
            super()._enter(method)
        finally:
            with counter.lock:
                counter.in_flight -= 1
                self._reads_now -= 1
                if self._reads_now == 0:
                    counter.hosts_in_flight -= 1
