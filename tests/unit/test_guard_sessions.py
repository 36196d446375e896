"""Snapshot guard sessions: reuse, end of block, local errors mid-step (fakes only, no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import OutcomeUnknown, Refused
from opsguard.guard import read_only_session
from opsguard.ledger import Ledger
from tests.unit.fakes import FakeConnection, FakeProvider, FakeResult, fake_world, guard, write_inventory


def test_guard_session_of_another_host_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A read-only session of chat2 passed as ``session=`` for chat must not carry chat's receipt.

    Otherwise the snapshot is of chat but the mutating commands run over chat2's SSH connection.
    """
    inventory = write_inventory(tmp_path)
    chat2_connection = FakeConnection()
    provider = FakeProvider()  # chat (vultr), identity matches chat's address
    ran_in_block = False
    with (
        fake_world(provider, chat2_connection),
        read_only_session("chat2", inventory=inventory) as other,
        pytest.raises(Refused, match="chat2"),
        guard(inventory, provider, FakeConnection(), host="chat", session=other) as change,
    ):
        ran_in_block = True
        change.run("touch /etc/changed")
    assert not ran_in_block
    assert provider.created == 0
    assert "touch /etc/changed" not in chat2_connection.commands
    assert chat2_connection.user_commands() == []
    assert all("ACQUIRED" not in command for command in chat2_connection.commands)


def test_guard_closed_session_is_refused_before_a_snapshot(tmp_path: Path) -> None:
    """A session whose block has ended cannot be reused to get a change session."""
    inventory = write_inventory(tmp_path)
    connection = FakeConnection()
    provider = FakeProvider()
    with fake_world(provider, connection), read_only_session("chat", inventory=inventory) as session:
        pass
    with pytest.raises(Refused, match="ended"), guard(inventory, provider, connection, session=session):
        pass
    assert provider.created == 0


def test_change_session_refuses_mutating_step_after_its_block_ended(tmp_path: Path) -> None:
    """Keeping a reference to the change session past the ``with`` must not allow a later change."""
    inventory = write_inventory(tmp_path)
    connection = FakeConnection()
    with guard(inventory, FakeProvider(), connection) as change:
        pass
    with pytest.raises(Refused, match="ended"):
        change.run("touch /etc/late")
    with pytest.raises(Refused, match="ended"):
        change.upload(tmp_path / "inventory.toml", "/etc/late")
    assert "touch /etc/late" not in connection.commands
    assert not any(command.startswith("upload ") for command in connection.commands)


def test_guard_local_exception_in_mutating_step_is_recorded_unknown(tmp_path: Path) -> None:
    """An exception that is no OpsguardError (e.g. a BrokenPipeError from the output callback) stops us
    watching the command mid-way: the step and the run are "unknown" (docs/design.md, guard rule 6), never ok or failed."""
    inventory = write_inventory(tmp_path)

    class Breaking(FakeConnection):
        def run(self, command: str, *, timeout: float, **options: Any) -> FakeResult:
            if command == "apt-get -y upgrade":
                raise BrokenPipeError(32, "Broken pipe")
            return super().run(command, timeout=timeout, **options)

    # A local failure after the change started is "outcome unknown" (exit 4), its cause kept (found by a review).
    with pytest.raises(OutcomeUnknown, match="BrokenPipeError") as raised, guard(inventory, FakeProvider(), Breaking()) as change:
        change.run("apt-get -y upgrade")
    assert isinstance(raised.value.__cause__, BrokenPipeError) and raised.value.exit_code == 4
    records = Ledger(inventory.settings.state_dir).records("chat")
    ended = [r for r in records if r["event"] == events.RUN_ENDED][-1]
    assert (ended["outcome"], ended["failed_step"]) == (events.UNKNOWN, "apt-get -y upgrade")
    assert not any(r["event"] == events.STEP and r.get("result") == events.OK for r in records)


def test_change_session_read_that_drops_is_recorded_unknown(tmp_path: Path) -> None:
    """A read whose connection drops went out to the host: the ledger says so (found by a review: it left no record)."""
    inventory = write_inventory(tmp_path)
    connection = FakeConnection(drop_on="uptime")
    with pytest.raises(OutcomeUnknown), guard(inventory, FakeProvider(), connection) as change:
        change.run("uptime", mutates=False)
    reads = [r for r in Ledger(inventory.settings.state_dir).records("chat")
             if r["event"] == events.STEP and r.get("step") == "uptime"]
    assert [(r["phase"], r.get("result")) for r in reads] == [("read", events.UNKNOWN)]
    assert "dropped" in reads[0]["error"]
    # Reading is not changing: the run is not "unknown" because a read was lost.
    ended = [r for r in Ledger(inventory.settings.state_dir).records("chat") if r["event"] == events.RUN_ENDED][-1]
    assert ended["outcome"] == events.ABORTED  # no change had started: the run ended before its change


def test_change_session_read_runs_with_the_step_pid_file(tmp_path: Path) -> None:
    """A read in a change session records its process group like a step, so a timed-out read can be stopped."""
    inventory = write_inventory(tmp_path)
    connection = FakeConnection()
    with guard(inventory, FakeProvider(), connection) as change:
        change.run("uptime", mutates=False)
    assert "uptime" in connection.commands
    assert connection.pid_files[-1] is not None  # the last command that was not bookkeeping: the read


def test_change_session_read_that_times_out_is_stopped_and_recorded(tmp_path: Path) -> None:
    """A read that timed out may go on on the host: its process group is stopped and the ledger says so."""
    from opsguard.errors import StepTimeout

    inventory = write_inventory(tmp_path)

    class Slow(FakeConnection):
        def run(self, command: str, *, timeout: float, **options: Any) -> FakeResult:
            if command == "du -sh /srv":
                self.commands.append(command)
                raise StepTimeout("host chat: 'du -sh /srv' still running after 1s")
            return super().run(command, timeout=timeout, **options)

    connection = Slow()
    with pytest.raises(StepTimeout), guard(inventory, FakeProvider(), connection) as change:
        change.run("du -sh /srv", mutates=False)
    after = connection.commands[connection.commands.index("du -sh /srv") + 1:]
    assert any("kill -TERM" in command for command in after)  # the read's group was stopped
    reads = [r for r in Ledger(inventory.settings.state_dir).records("chat") if r.get("step") == "du -sh /srv"]
    assert [(r["phase"], r["result"]) for r in reads] == [("read", events.UNKNOWN)]
