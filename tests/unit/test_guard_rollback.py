"""Guard rule 3d: a rollback of run R is authorised by R's verified snapshot while the provider still has it;
it takes no new snapshot; when R's snapshot is gone it refuses (a rollback then is a normal guarded change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsguard import ledger as events
from opsguard.errors import SnapshotGone
from opsguard.guard import rollback_guard
from opsguard.ledger import Ledger
from opsguard.providers.base import SnapshotInfo
from tests.unit.fakes import FakeConnection, FakeProvider, fake_world, guard, hostinger_provider, write_inventory


def failed_run(tmp_path: Path, provider: FakeProvider, host: str) -> str:
    inventory = write_inventory(tmp_path)
    with guard(inventory, provider, FakeConnection(), host=host) as change:
        change.run("exit 1", name="migrate")
    return change.run_id


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_rollback_runs_under_the_rolled_back_runs_snapshot_without_taking_a_new_one(tmp_path: Path, host: str) -> None:
    provider = FakeProvider() if host == "chat" else hostinger_provider()
    failed = failed_run(tmp_path, provider, host)
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    created_before = provider.created

    with fake_world(provider, connection), rollback_guard(host, rolled_back_run=failed, reason="undo",
                                                            inventory=inventory) as change:
        assert change.receipt.snapshot_id == "snap-1"
        change.run("mv /app.previous /app", name="put the previous release back")

    assert provider.created == created_before  # no new snapshot: on Hostinger it would destroy the rollback point
    assert connection.user_commands() == ["mv /app.previous /app"]
    book = Ledger(inventory.settings.state_dir)
    (reused,) = [r for r in book.records(host) if r.get("reused_from") == failed]
    assert reused["event"] == events.SNAPSHOT_VERIFIED
    last = book.last_change(host)
    assert last is not None and (last.outcome, last.snapshot_id) == (events.OK, "snap-1")  # R's failed state cleared


def test_rollback_refuses_when_hostinger_replaced_the_runs_snapshot(tmp_path: Path) -> None:
    provider = hostinger_provider()
    failed = failed_run(tmp_path, provider, "chat2")
    provider.snapshots["snap-2"] = SnapshotInfo("snap-2", datetime.now(UTC), expires_at=datetime.now(UTC) + timedelta(days=9))
    inventory, connection = write_inventory(tmp_path), FakeConnection()

    with pytest.raises(SnapshotGone) as gone, fake_world(provider, connection), \
            rollback_guard("chat2", rolled_back_run=failed, reason="undo", inventory=inventory):
        pass

    assert gone.value.exit_code == 3 and "no longer the instance's snapshot (now snap-2)" in str(gone.value)
    assert connection.user_commands() == []


def test_rollback_refuses_when_the_vultr_snapshot_is_gone(tmp_path: Path) -> None:
    provider = FakeProvider()
    failed = failed_run(tmp_path, provider, "chat")
    provider.snapshots.clear()
    inventory, connection = write_inventory(tmp_path), FakeConnection()

    with pytest.raises(SnapshotGone, match="not a complete snapshot tagged for it"), fake_world(provider, connection), \
            rollback_guard("chat", rolled_back_run=failed, reason="undo", inventory=inventory):
        pass
    assert connection.user_commands() == []


def test_rollback_refuses_a_run_this_ledger_never_verified(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    with pytest.raises(SnapshotGone, match="run nope is not the last change"), fake_world(FakeProvider(), FakeConnection()), \
            rollback_guard("chat", rolled_back_run="nope", reason="undo", inventory=inventory):
        pass


def test_rollback_refuses_a_run_that_is_not_the_last_change(tmp_path: Path) -> None:
    """A later change's work would be lost by going back to a point before it (found by a review)."""
    provider = FakeProvider()
    first = failed_run(tmp_path, provider, "chat")
    inventory = write_inventory(tmp_path)
    with guard(inventory, provider, FakeConnection()) as change:
        change.run("touch /etc/later", name="a later change")
    connection = FakeConnection()

    with pytest.raises(SnapshotGone, match=f"run {first} is not the last change"), fake_world(provider, connection), \
            rollback_guard("chat", rolled_back_run=first, reason="undo", inventory=inventory):
        pass
    assert connection.user_commands() == []
