"""A change never runs without a readable ledger record: before the first mutating step a ledger that cannot be
written is a refusal (nothing ran); after it, the outcome is unknown, with the rollback point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import LedgerWriteError, OutcomeUnknown, Refused
from opsguard.ledger import Ledger
from tests.unit.fakes import FakeConnection, FakeProvider, guard, write_inventory


def failing_append(monkeypatch: pytest.MonkeyPatch, *, phase: str) -> None:
    """Make the ledger fail to write the first step record of the given phase (as a full disk would)."""
    real = Ledger.append

    def append(self: Ledger, event: str, **fields: Any) -> dict[str, Any]:
        if event == events.STEP and fields.get("phase") == phase:
            raise LedgerWriteError(f"ledger {self.path}: cannot write the {event} record: No space left on device")
        return real(self, event, **fields)

    monkeypatch.setattr(Ledger, "append", append)


def test_guard_step_does_not_run_and_is_refused_when_its_started_record_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    failing_append(monkeypatch, phase="started")
    with pytest.raises(Refused) as raised, guard(inventory, FakeProvider(), connection) as change:
        change.run("touch /etc/changed")
    assert connection.user_commands() == []
    assert raised.value.exit_code == 3 and "No space left on device" in str(raised.value)


def test_guard_is_unknown_with_rollback_point_when_a_record_fails_after_the_step_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection()
    failing_append(monkeypatch, phase="ended")
    with pytest.raises(OutcomeUnknown) as raised, guard(inventory, FakeProvider(), connection) as change:
        change.run("touch /etc/changed")
    assert connection.user_commands() == ["touch /etc/changed"]
    assert raised.value.exit_code == 4
    assert "nothing was changed" not in str(raised.value)
    assert any("rollback point: snapshot snap-1" in line for line in raised.value.lines())
