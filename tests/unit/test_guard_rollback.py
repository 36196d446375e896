"""Guard rule 3d: a rollback of run R is authorised by R's verified snapshot while the provider still has it and R
is still the host's last change (by this machine's ledger, the host's change record and its history of guarded
runs, all read after the locks are held); it takes no new snapshot; when the provider says R's snapshot is gone
it takes a new one under the same locks (rule 3 still applies); anything else is a refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import Refused, SnapshotGone
from opsguard.guard import rollback_guard
from opsguard.history import history_line
from opsguard.inventory import Inventory
from opsguard.ledger import Ledger
from opsguard.locks import LocalLock
from opsguard.providers.base import SnapshotInfo
from opsguard.snapshotwait import reuse_snapshot
from tests.unit.fakes import (
    VULTR_ID,
    FakeConnection,
    FakeProvider,
    fake_world,
    guard,
    hostinger_provider,
    write_inventory,
)


def failed_run(tmp_path: Path, provider: FakeProvider, host: str, connection: FakeConnection | None = None) -> str:
    inventory = write_inventory(tmp_path)
    with guard(inventory, provider, connection or FakeConnection(), host=host, command="platform_upgrade") as change:
        change.run("exit 1", name="migrate")  # returned, recorded: the run ends "failed"
    return change.run_id


@contextmanager
def rolling_back(inventory: Inventory, provider: FakeProvider, connection: FakeConnection, host: str,
                 run: str) -> Iterator[Any]:
    """The rollback guard of ``run`` on ``host`` against the fake provider and connection."""
    with fake_world(provider, connection), rollback_guard(host, rolled_back_run=run, reason="undo",
                                                           inventory=inventory) as change:
        yield change


def note_rollback_of(change: Any, run: str) -> None:
    """What the runner records before a rollback's first step: the run it undoes."""
    change.note(events.RUN_FACTS, playbook="rollback", params={}, facts={}, rolls_back=run)


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_rollback_guard_runs_under_the_rolled_back_runs_snapshot_without_a_new_one(tmp_path: Path, host: str) -> None:
    provider = FakeProvider() if host == "chat" else hostinger_provider()
    failed = failed_run(tmp_path, provider, host)
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    created_before = provider.created

    with rolling_back(inventory, provider, connection, host, failed) as change:
        assert change.receipt.snapshot_id == "snap-1"
        change.run("mv /app.previous /app", name="put the previous release back")

    assert provider.created == created_before  # no new snapshot: on Hostinger it would destroy the rollback point
    assert connection.user_commands() == ["mv /app.previous /app"]
    book = Ledger(inventory.settings.state_dir)
    (reused,) = [r for r in book.records(host) if r.get("reused_from") == failed]
    assert reused["event"] == events.SNAPSHOT_VERIFIED
    last = book.last_change(host)
    assert last is not None and (last.outcome, last.snapshot_id) == (events.OK, "snap-1")  # R's failed state cleared


def test_rollback_guard_takes_a_new_snapshot_when_the_vultr_snapshot_is_gone(tmp_path: Path) -> None:
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    provider.snapshots.clear()
    inventory, connection = write_inventory(tmp_path), FakeConnection()

    with rolling_back(inventory, provider, connection, "chat", failed) as change:
        change.run("mv /app.previous /app", name="put the previous release back")

    assert provider.created == 2
    verified = Ledger(inventory.settings.state_dir).records("chat")
    (new,) = [r for r in verified if r["event"] == events.SNAPSHOT_VERIFIED and r["run_id"] == change.run_id]
    assert "reused_from" not in new and new["receipt"]["tag"].endswith(change.run_id)


def test_rollback_guard_keeps_rule_3_when_hostinger_replaced_the_runs_snapshot(tmp_path: Path) -> None:
    """R's snapshot is gone (the VM's one snapshot is another now): a new snapshot still may not replace a failed run's."""
    provider = hostinger_provider()
    failed = failed_run(tmp_path, provider, "chat2")
    provider.snapshots["snap-2"] = SnapshotInfo("snap-2", datetime.now(UTC), expires_at=datetime.now(UTC) + timedelta(days=9))
    inventory, connection = write_inventory(tmp_path), FakeConnection()

    with pytest.raises(Refused, match="would overwrite it") as refused, \
            rolling_back(inventory, provider, connection, "chat2", failed):
        pass

    assert not isinstance(refused.value, SnapshotGone) and refused.value.exit_code == 3
    assert provider.created == 1 and connection.user_commands() == []


def test_rollback_guard_refuses_a_run_this_ledger_never_verified(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    provider = FakeProvider()
    with pytest.raises(Refused, match="run nope") as refused, \
            rolling_back(inventory, provider, FakeConnection(), "chat", "nope"):
        pass
    assert not isinstance(refused.value, SnapshotGone) and provider.created == 0


def test_rollback_guard_refuses_when_a_later_change_followed_in_the_ledger(tmp_path: Path) -> None:
    """A later change's work would be lost by going back to a point before it: refused, never a new snapshot instead."""
    provider = FakeProvider()
    first = failed_run(tmp_path, provider, "chat")
    inventory = write_inventory(tmp_path)
    with guard(inventory, provider, FakeConnection(), command="update") as later:
        later.run("touch /etc/later", name="a later change")
    connection, created_before = FakeConnection(), provider.created

    with pytest.raises(Refused, match=f"run {later.run_id} .*after run {first}") as refused, \
            rolling_back(inventory, provider, connection, "chat", first):
        pass

    assert not isinstance(refused.value, SnapshotGone) and "refused, nothing was changed" in str(refused.value)
    assert provider.created == created_before and connection.user_commands() == []


def test_rollback_guard_refuses_when_the_host_records_a_later_run(tmp_path: Path) -> None:
    """Another machine's change is only on the host: its change record names another run than R."""
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    inventory = write_inventory(tmp_path)
    record = {"run_id": "20991231T000000Z-0a0b0c", "snapshot_id": "snap-9", "user": "bea", "machine": "laptop",
              "outcome": "ok", "command": "stack_upgrade"}
    connection = FakeConnection(change_record=json.dumps(record))

    with pytest.raises(Refused, match="run 20991231T000000Z-0a0b0c by bea@laptop") as refused, \
            rolling_back(inventory, provider, connection, "chat", failed):
        pass

    assert not isinstance(refused.value, SnapshotGone)
    assert provider.created == 1 and connection.user_commands() == []


def history_entries(run: str, snapshot: str, command: str, outcome: str, start: str) -> list[str]:
    entry = {"run_id": run, "start": start, "end": None, "snapshot_id": snapshot, "outcome": "in-progress",
             "user": "bea", "machine": "laptop", "command": command}
    return [history_line(entry), history_line({**entry, "end": start, "outcome": outcome})]


def test_rollback_guard_refuses_when_the_host_history_shows_a_later_run(tmp_path: Path) -> None:
    """The change record is R's (the later run kept none), but the host's history of guarded runs has a later one."""
    provider, connection = FakeProvider(), FakeConnection()
    failed = failed_run(tmp_path, provider, "chat", connection)
    connection.history += history_entries("20991231T000000Z-0d0e0f", "snap-7", "exec touch /x", "ok", "2099-12-31T00:00:00Z")
    inventory = write_inventory(tmp_path)

    with pytest.raises(Refused, match="20991231T000000Z-0d0e0f"), rolling_back(inventory, provider, connection, "chat", failed):
        pass

    assert provider.created == 1


def test_rollback_guard_refuses_a_run_already_rolled_back(tmp_path: Path) -> None:
    """Re-checked after the locks: a rollback that finished while this one waited is not done twice (the race)."""
    provider, connection = FakeProvider(), FakeConnection()
    failed = failed_run(tmp_path, provider, "chat", connection)
    inventory = write_inventory(tmp_path)
    with rolling_back(inventory, provider, connection, "chat", failed) as first:
        note_rollback_of(first, failed)
        first.run("pg_restore --clean", name="restore")
    sent = len(connection.user_commands())

    with pytest.raises(Refused, match=f"run {failed} was already rolled back by run {first.run_id}"), \
            rolling_back(inventory, provider, connection, "chat", failed):
        pass

    assert len(connection.user_commands()) == sent


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_rollback_guard_retries_under_the_runs_snapshot_after_a_failed_rollback(tmp_path: Path, host: str) -> None:
    """A failed rollback of R is not a later change: the retry runs under R's snapshot again, no new snapshot."""
    provider = FakeProvider() if host == "chat" else hostinger_provider()
    connection = FakeConnection()
    failed = failed_run(tmp_path, provider, host, connection)
    inventory = write_inventory(tmp_path)
    with rolling_back(inventory, provider, connection, host, failed) as broken:
        note_rollback_of(broken, failed)
        broken.run("exit 1", name="restore the database")

    with rolling_back(inventory, provider, connection, host, failed) as retry:
        note_rollback_of(retry, failed)
        retry.run("pg_restore --clean", name="restore the database")

    assert provider.created == 1 and retry.receipt.snapshot_id == "snap-1"
    last = Ledger(inventory.settings.state_dir).last_change(host)
    assert last is not None and (last.run_id, last.outcome) == (retry.run_id, events.OK)


def test_rollback_guard_refuses_a_run_restored_from_a_snapshot_since(tmp_path: Path) -> None:
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    inventory = write_inventory(tmp_path)
    book = Ledger(inventory.settings.state_dir)
    restore = "20991231T000000Z-1a2b3c"
    book.append(events.RUN_STARTED, run_id=restore, host="chat", command="restore")
    book.append(events.STEP, run_id=restore, host="chat", step="restore", phase="started")
    book.append(events.RUN_ENDED, run_id=restore, host="chat", outcome=events.OK)

    with pytest.raises(Refused, match=f"run {restore}"), rolling_back(inventory, provider, FakeConnection(), "chat", failed):
        pass


def test_rollback_guard_refuses_when_the_ledger_chain_is_broken_at_the_runs_records(tmp_path: Path) -> None:
    """R's receipt edited by hand (another snapshot, another tag): the chain breaks at the next record; nothing runs."""
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    provider.snapshots["console"] = SnapshotInfo("console", datetime.now(UTC), size=10, status="complete", description="manual")
    inventory = write_inventory(tmp_path)
    path = Ledger(inventory.settings.state_dir).path
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record["event"] == events.SNAPSHOT_VERIFIED and record["run_id"] == failed:
            record["receipt"].update(snapshot_id="console", tag="manual")
            lines[index] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    connection = FakeConnection()

    with pytest.raises(Refused, match="hash chain") as refused, rolling_back(inventory, provider, connection, "chat", failed):
        pass

    assert "opsguard ledger --verify" in str(refused.value)
    assert provider.created == 1 and connection.user_commands() == []


def verified_run(tmp_path: Path, description: str) -> tuple[FakeProvider, Ledger, str]:
    """A run R whose verified snapshot the provider now describes with ``description``."""
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    snapshot = provider.snapshots["snap-1"]
    provider.snapshots["snap-1"] = SnapshotInfo(snapshot.snapshot_id, snapshot.created_at, size=10, status="complete",
                                                description=description)
    return provider, Ledger(write_inventory(tmp_path).settings.state_dir), failed


def test_reuse_snapshot_accepts_only_the_exact_tag_of_host_instance_and_run(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    provider, book, failed = verified_run(tmp_path, "")
    exact = f"opsguard:chat:{VULTR_ID}:{failed}"

    for description in (f"copy of {exact}", exact + "-2", f"opsguard:chat2:{VULTR_ID}:{failed}"):
        provider.snapshots["snap-1"] = SnapshotInfo("snap-1", datetime.now(UTC), size=10, status="complete",
                                                    description=description)
        with pytest.raises(SnapshotGone, match="tagged for it"):
            reuse_snapshot(inventory.host("chat"), provider, book, "20991231T000000Z-aaaaaa", failed)

    provider.snapshots["snap-1"] = SnapshotInfo("snap-1", datetime.now(UTC), size=10, status="complete", description=exact)
    assert reuse_snapshot(inventory.host("chat"), provider, book, "20991231T000000Z-aaaaaa", failed).snapshot_id == "snap-1"


def test_reuse_snapshot_ignores_the_tag_the_ledger_receipt_names(tmp_path: Path) -> None:
    """The receipt's tag is not the authority: a snapshot described "manual" is not R's even if the receipt says so."""
    inventory = write_inventory(tmp_path)
    provider, book, failed = verified_run(tmp_path, "manual")
    book.append(events.SNAPSHOT_VERIFIED, run_id=failed, host="chat", receipt={"snapshot_id": "snap-1", "tag": "manual"})

    with pytest.raises(SnapshotGone):
        reuse_snapshot(inventory.host("chat"), provider, book, "20991231T000000Z-aaaaaa", failed)


def test_guard_ends_the_run_in_the_ledger_before_releasing_the_local_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run waiting for the local lock must find the run before it ended in the ledger, not "unknown"."""
    provider = FakeProvider()
    inventory = write_inventory(tmp_path)
    ended_at_release: list[bool] = []
    original = LocalLock.release

    def release(lock: LocalLock) -> None:
        if lock._descriptor is not None:
            ended_at_release.append(any(record["event"] == events.RUN_ENDED
                                        for record in Ledger(inventory.settings.state_dir).records("chat")))
        original(lock)

    monkeypatch.setattr(LocalLock, "release", release)
    with guard(inventory, provider, FakeConnection()) as change:
        change.run("touch /x", name="a change")

    assert ended_at_release == [True]
