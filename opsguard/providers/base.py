"""The Provider protocol: what the guard, backup-check and discover need from a hosting API.

Clients (vultr.py, hostinger.py) translate the wire format of docs/providers.md into these
provider-neutral records. Anything a client does not recognise is kept in ``state`` as the raw
text and never counted as success (docs/design.md, guard rule 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ProviderCapabilities:
    """What a provider's snapshots and restores are like: the guard, restore and backup-check ask these, never the name.

    - ``single_snapshot_slot``: a new snapshot REPLACES the instance's previous one (Hostinger). Then
      the previous one may be the rollback point of a failed change, and overwriting it needs care.
    - ``tagged_snapshots``: a snapshot carries the description opsguard wrote (Vultr), so a restore
      can check it was taken of this host.
    - ``backup_schedule``: the API reports the automatic-backup schedule (Vultr); else only the backups.
    - ``restore_status``: the API says when a restore finished (Hostinger: its Action). Without it, a
      restore is complete only once the instance was seen busy and then ready again.
    - ``instance_id``: what an instance id looks like: "uuid" (a string, quoted in the inventory) or
      "integer" (a positive number, unquoted).
    """

    single_snapshot_slot: bool
    tagged_snapshots: bool
    backup_schedule: bool
    restore_status: bool
    instance_id: str = "uuid"
    instance_id_name: str = "instance id"  # as people call it, e.g. "Hostinger VM id"


@dataclass(frozen=True)
class InstanceFacts:
    """What the provider says about one instance / VM right now."""

    provider: str
    instance: str | int
    label: str  # Vultr label (or hostname), Hostinger hostname
    state: str  # raw: Vultr "status/power_status/server_status", Hostinger VM state
    running: bool  # powered on and usable
    locked: bool  # another provider action is in progress
    public_ips: tuple[str, ...]  # IPv4 first, then IPv6
    backups_enabled: bool | None = None  # None where the API does not say (Hostinger)

    @property
    def ready_for_snapshot(self) -> bool:
        """Given these facts, return whether a snapshot may be requested now."""
        return self.running and not self.locked


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as the provider describes it."""

    snapshot_id: str
    created_at: datetime | None
    expires_at: datetime | None = None  # Hostinger only
    size: int | None = None  # bytes; Vultr only
    status: str | None = None  # Vultr status; Hostinger snapshots have none
    description: str | None = None


@dataclass(frozen=True)
class SnapshotRequest:
    """The handle returned by create_snapshot: enough to poll and verify the new snapshot.

    Vultr: ``snapshot_id`` is the new snapshot, ``action_id`` is None.
    Hostinger: ``action_id`` is the create Action, ``previous`` the snapshot it overwrites.
    """

    provider: str
    instance: str | int
    tag: str  # our description tag (Vultr) — also recorded for Hostinger for the ledger
    requested_at: datetime
    snapshot_id: str | None = None
    action_id: int | None = None
    action_created_at: datetime | None = None
    previous: SnapshotInfo | None = None
    recovered: bool = False  # True when the POST answer was lost and the snapshot found by lookup


@dataclass(frozen=True)
class SnapshotProgress:
    """One poll of a snapshot in progress."""

    state: str  # raw provider state, e.g. "pending", "complete", "sent", "success"
    finished: bool  # a known final success state AND the instance is free again (still to be verified)
    failed: bool  # the provider reached a known final failure state (error, deleted, 404)
    detail: str = ""


@dataclass(frozen=True)
class BackupInfo:
    """One automatic backup."""

    backup_id: str
    created_at: datetime | None
    size: int | None = None  # bytes
    status: str | None = None  # Vultr: complete|pending; Hostinger: none (listed = done)
    complete: bool = True


@dataclass(frozen=True)
class BackupSchedule:
    """Vultr's automatic backup schedule."""

    enabled: bool
    kind: str | None  # daily|weekly|monthly|daily_alt_even|daily_alt_odd
    next_run: datetime | None = None


@dataclass(frozen=True)
class RestoreRequest:
    """What a restore call started."""

    provider: str
    instance: str | int
    restore_id: str
    state: str


@dataclass(frozen=True)
class RestoreProgress:
    """One look at a restore: ``busy`` while the provider shows it running, ``finished`` once confirmed done.

    A provider whose API has no restore status (Vultr) can only say the instance is busy, then ready
    again; the caller counts a restore complete only after it saw it busy (see restore.py).
    """

    state: str
    busy: bool
    finished: bool
    failed: bool
    detail: str = ""


@dataclass(frozen=True)
class VerifiedSnapshot:
    """A snapshot the client has verified complete according to its provider's contract."""

    snapshot: SnapshotInfo
    checks: tuple[str, ...] = field(default_factory=tuple)  # human-readable facts verified


class Provider(Protocol):
    """A hosting provider's API, as opsguard uses it."""

    name: str

    @property
    def min_poll_gap(self) -> float:
        """Seconds between two polls of one snapshot: 1 (providers rate-limit), 0 for a loopback simulator."""
        ...

    def instance_facts(self, instance: str | int) -> InstanceFacts:
        """Given an instance id, return its facts; raise ProviderNotFound if it does not exist."""
        ...

    def list_instances(self) -> list[InstanceFacts]:
        """Return every instance of the account (all pages)."""
        ...

    def current_snapshot(self, instance: str | int) -> SnapshotInfo | None:
        """Given an instance, return the snapshot a new one would overwrite (Hostinger), else None."""
        ...

    def create_snapshot(self, instance: str | int, tag: str) -> SnapshotRequest:
        """Given an instance and our tag, send ONE create request and return its handle.

        Never re-POSTs: after a timeout or 5xx, look the snapshot up (Vultr by tag, Hostinger in
        the actions list) and return it with ``recovered=True``; raise ProviderError if not found.
        """
        ...

    def poll_snapshot(self, request: SnapshotRequest) -> SnapshotProgress:
        """Given a handle, return the provider's current state of that snapshot."""
        ...

    def verify_snapshot(self, request: SnapshotRequest) -> VerifiedSnapshot:
        """Given a finished handle, return the verified snapshot; raise SnapshotNotVerified if not."""
        ...

    def list_backups(self, instance: str | int) -> list[BackupInfo]:
        """Given an instance, return all its automatic backups (every page)."""
        ...

    def backup_schedule(self, instance: str | int) -> BackupSchedule | None:
        """Given an instance, return its backup schedule (Vultr), or None where there is none."""
        ...

    def snapshot_details(self, instance: str | int, snapshot_id: str) -> SnapshotInfo | None:
        """Given an instance and a snapshot id, return that snapshot as the provider describes it, or None if unknown."""
        ...

    def poll_restore(self, request: RestoreRequest) -> RestoreProgress:
        """Given what restore_snapshot started, return how the restore stands now (unknown states are not finished)."""
        ...

    def restore_snapshot(self, instance: str | int, snapshot_id: str) -> RestoreRequest:
        """Given an instance and a snapshot id, start restoring it (destructive)."""
        ...
