"""The snapshot guard against a fake provider and a fake SSH connection (no sockets)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import (
    ConfigError,
    ConnectionDropped,
    LockHeld,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderUnreachable,
    ReadOnlyViolation,
    ReceiptExpired,
    Refused,
    SnapshotNotVerified,
)
from opsguard.guard import ChangeSession, poll_gap, read_only_session, snapshot_guard
from opsguard.inventory import Inventory, load_inventory
from opsguard.ledger import Ledger
from opsguard.receipt import SnapshotReceipt
from opsguard.session import SessionCore, _session_key
from tests.unit.fakes import FakeConnection, FakeProvider, fake_world, guard, hostinger_provider, write_inventory


def run_ends(inventory: Inventory) -> list[dict[str, Any]]:
    return [r for r in Ledger(inventory.settings.state_dir).records() if r["event"] == events.RUN_ENDED]


def test_guard_yields_change_session_after_verified_snapshot(tmp_path: Path) -> None:
    inventory, provider, connection = write_inventory(tmp_path), FakeProvider(), FakeConnection()
    with guard(inventory, provider, connection) as change:
        assert change.receipt.snapshot_id == "snap-1"
        change.run("touch /etc/changed")
    assert provider.created == 1
    assert connection.user_commands() == ["touch /etc/changed"]
    assert run_ends(inventory)[-1]["outcome"] == events.OK
    assert provider.completed_at is not None
    assert connection.first_sent("touch /etc/changed") > provider.completed_at


@pytest.mark.parametrize(
    ("provider_kwargs", "expected_error", "words"),
    [
        ({"running": False}, Refused, "not running"),
        ({"locked": True}, Refused, "locked by another provider action"),
        ({"ips": ("10.1.1.1",)}, Refused, "identity mismatch"),
        ({"states": ["pending"]}, SnapshotNotVerified, "not complete after"),
        ({"states": ["pending", "mystery-state"]}, SnapshotNotVerified, "mystery-state"),
        ({"states": ["pending", "deleted"]}, SnapshotNotVerified, "snapshot failed"),
        ({"verify_error": "size is 0"}, SnapshotNotVerified, "size is 0"),
        ({"facts_error": ProviderAuthError("vultr", "Invalid API token", status=401)}, ConfigError, "Invalid API token"),
        ({"facts_error": ProviderUnreachable("vultr", "connection refused")}, OutcomeUnknown, "connection refused"),
        ({"create_error": ProviderUnreachable("vultr", "HTTP 503", status=503)}, OutcomeUnknown, "creating the snapshot"),
    ],
    ids=["stopped", "locked", "ip-mismatch", "stuck", "unknown-state", "deleted", "verify-fails", "wrong-token",
         "api-down", "post-5xx"],
)
def test_guard_refuses_and_runs_nothing_when_a_rule_fails(
    tmp_path: Path, provider_kwargs: dict[str, Any], expected_error: type[Exception], words: str
) -> None:
    inventory = write_inventory(tmp_path, timeout="0.3s")
    provider, connection = FakeProvider(**provider_kwargs), FakeConnection()
    reached_block = False
    with pytest.raises(expected_error, match=words), guard(inventory, provider, connection):
        reached_block = True
    assert not reached_block
    assert connection.user_commands() == []
    assert run_ends(inventory)[-1]["outcome"] == events.REFUSED


def test_guard_refuses_when_remote_lock_is_held(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    connection = FakeConnection(lock_held_by="20261101T000000Z-abcdef")
    with pytest.raises(LockHeld, match="20261101T000000Z-abcdef"), guard(inventory, provider, connection):
        pass
    assert provider.created == 0


def test_guard_refuses_second_run_while_local_lock_is_held(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with guard(inventory, FakeProvider(), FakeConnection()):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(5)
    second = FakeProvider()
    try:
        with pytest.raises(LockHeld, match="locked by run"), guard(inventory, second, FakeConnection()):
            pass
    finally:
        release.set()
        thread.join()
    assert second.created == 0


def test_change_session_constructor_refuses_any_key_but_the_guards(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    core = SessionCore(host=inventory.host("chat"), settings=inventory.settings, ledger=Ledger(tmp_path), run_id="x",
                       connection=None)
    for key in (object(), None, "key", ChangeSession):
        with pytest.raises(TypeError, match="snapshot_guard"):
            ChangeSession(key, core)


def test_change_session_with_a_receipt_the_guard_did_not_issue_runs_nothing(tmp_path: Path) -> None:
    """Even minted with the private key, a session whose receipt was built by hand (all fields right) refuses."""
    from datetime import UTC, datetime

    from opsguard.hostconnection import HostConnection

    inventory, connection = write_inventory(tmp_path), FakeConnection()
    host = inventory.host("chat")
    forged = SnapshotReceipt(host="chat", provider="vultr", instance=host.instance or "", snapshot_id="snap-x",
                             tag="t", run_id="run-x", requested_at=datetime.now(UTC), verified_at=datetime.now(UTC))
    core = SessionCore(host=host, settings=inventory.settings, ledger=Ledger(tmp_path), run_id="run-x",
                       connection=HostConnection(host, inventory.settings, lambda h, s: connection), receipt=forged)  # type: ignore[arg-type,return-value]
    session = ChangeSession(_session_key(), core)
    with pytest.raises(ReadOnlyViolation, match="no snapshot receipt the guard issued"):
        session.run("touch /etc/changed")
    assert connection.commands == []


def test_read_only_session_refuses_mutating_step(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    with fake_world(FakeProvider(), connection), read_only_session("chat", inventory=inventory) as session:
        session.run("uptime", mutates=False)
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            session.run("apt-get -y upgrade")
    assert connection.commands == ["uptime"]
    assert connection.closed


def test_change_session_refuses_first_step_after_receipt_ttl(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path, ttl="0.05s"), FakeConnection()
    with pytest.raises(ReceiptExpired, match="receipt_ttl"), guard(inventory, FakeProvider(), connection) as change:
        time.sleep(0.1)
        change.run("touch /etc/changed")
    assert connection.user_commands() == []


def test_change_session_continues_started_change_after_receipt_ttl(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path, ttl="0.05s"), FakeConnection()
    with guard(inventory, FakeProvider(), connection) as change:
        change.run("step-one")
        time.sleep(0.1)
        change.run("step-two")
    assert connection.user_commands() == ["step-one", "step-two"]


def test_change_session_refuses_after_block_ended(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    with guard(inventory, FakeProvider(), connection) as change:
        pass
    with pytest.raises(Refused, match="ended"):
        change.run("touch /etc/late")


def test_guard_ledger_says_unknown_when_connection_drops(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection(drop_on="apt-get")
    with pytest.raises(ConnectionDropped), guard(inventory, FakeProvider(), connection) as change:
        change.run("apt-get -y upgrade", name="apt upgrade")
    end = run_ends(inventory)[-1]
    assert (end["outcome"], end["failed_step"]) == (events.UNKNOWN, "apt upgrade")


def test_guard_refuses_to_overwrite_hostinger_rollback_point_after_failed_change(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    with guard(inventory, hostinger_provider(), FakeConnection(), host="chat2") as change:
        change.run("exit 3", name="npm run build")
    assert run_ends(inventory)[-1]["outcome"] == events.FAILED
    second = hostinger_provider()
    with pytest.raises(Refused, match="overwrite-snapshot"), guard(inventory, second, FakeConnection(), host="chat2"):
        pass
    assert second.created == 0
    third = hostinger_provider()
    with guard(inventory, third, FakeConnection(), host="chat2", overwrite_snapshot=True):
        pass
    assert third.created == 1


def test_guard_allows_vultr_snapshot_after_failed_change(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    with guard(inventory, FakeProvider(), FakeConnection()) as change:
        change.run("exit 1")
    provider = FakeProvider()
    with guard(inventory, provider, FakeConnection()):
        pass
    assert provider.created == 1


def test_guard_records_previous_hostinger_snapshot_in_ledger(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    with guard(inventory, hostinger_provider(), FakeConnection(), host="chat2"):
        pass
    requested = [r for r in Ledger(inventory.settings.state_dir).records("chat2") if r["event"] == events.SNAPSHOT_REQUESTED]
    assert requested[0]["previous_snapshot"]["snapshot_id"] == "old-snap"


def test_guard_needs_instance_id(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text('[hosts.chat]\naddress = "10.9.9.2"\nprovider = "vultr"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hosts.chat.instance is not set \(run 'opsguard discover'\)"), \
            fake_world(FakeProvider(), FakeConnection()), snapshot_guard("chat", reason="t", inventory=load_inventory(path)):
        pass


def test_poll_gap_grows_with_wait_and_respects_bounds() -> None:
    assert poll_gap(0, 15) == 1.0
    assert poll_gap(100, 15) == pytest.approx(4.8)
    assert poll_gap(1000, 15) == 15


def test_poll_gap_raises_snapshot_poll_below_one_second_for_a_real_provider() -> None:
    assert poll_gap(1000, 0.2) == 1.0  # providers rate-limit: the floor is 1 s
    assert poll_gap(1000, 0.2, floor=0.0) == 0.2  # the loopback simulator has no floor


def test_guard_refuses_hostinger_overwrite_when_host_records_failed_change_from_another_machine(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    connection = FakeConnection(change_record='{"outcome": "failed", "run_id": "r-laptop", "user": "ana", '
                                              '"machine": "laptop", "snapshot_id": "old-snap"}')
    provider = hostinger_provider()
    with pytest.raises(Refused, match=r"host records that the last change \(run r-laptop by ana@laptop\) ended failed"), \
            guard(inventory, provider, connection, host="chat2"):
        pass
    assert provider.created == 0


def test_guard_writes_in_progress_then_outcome_record_on_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    with guard(inventory, hostinger_provider(), connection, host="chat2") as change:
        assert '"outcome": "in-progress"' in connection.change_record
        change.run("exit 2", name="npm run build")
    assert '"outcome": "failed"' in connection.change_record
    # Another machine: its own (empty) ledger, the same host.
    monkeypatch.setenv("OPSGUARD_STATE_DIR", str(tmp_path / "other-machine"))
    (tmp_path / "other").mkdir()
    other = write_inventory(tmp_path / "other")
    with pytest.raises(Refused, match="host records"), guard(other, hostinger_provider(), connection, host="chat2"):
        pass
