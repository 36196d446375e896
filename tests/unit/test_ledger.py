"""The audit ledger and the wait reporter."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from opsguard import ledger as events
from opsguard.ledger import Ledger
from opsguard.progress import SnapshotWaitReporter


def test_ledger_append_writes_one_json_line_per_record_private(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state")
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat")
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat", outcome="ok")
    lines = ledger.path.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == [events.RUN_STARTED, events.RUN_ENDED]
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600


def test_ledger_records_skip_torn_last_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat")
    with ledger.path.open("a") as handle:
        handle.write('{"event": "run-ended", "ru')
    assert [r["event"] for r in ledger.records()] == [events.RUN_STARTED]


def test_ledger_last_change_without_run_end_is_unknown(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    last = ledger.last_change("chat2")
    assert last is not None and (last.outcome, last.snapshot_id) == (events.UNKNOWN, "s1")


def test_ledger_last_change_follows_latest_verified_run(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", failed_step="migrate")
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r2", host="chat2", receipt={"snapshot_id": "s2"})
    ledger.append(events.RUN_ENDED, run_id="r2", host="chat2", outcome="ok")
    ledger.append(events.RUN_ENDED, run_id="r3", host="chat2", outcome="refused")
    last = ledger.last_change("chat2")
    assert last is not None and (last.run_id, last.outcome) == ("r2", "ok")
    assert ledger.last_change("chat") is None


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wait_reporter_logs_state_changes_only_off_terminal() -> None:
    stream = io.StringIO()
    reporter = SnapshotWaitReporter("chat", stream=stream, every=60)
    for state in ["pending", "pending", "pending", "complete"]:
        reporter(state, 1.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "'pending'" in lines[0] and "'complete'" in lines[1]
    assert lines[0][:4].isdigit()  # timestamped for logs


def without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the progress extra (rich) were not installed: the terminal gets the plain rewritten line."""
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)


def test_wait_reporter_rewrites_one_live_line_on_terminal_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    without_rich(monkeypatch)
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat", stream=stream)
    reporter("pending", 5.0)
    reporter("pending", 6.0)
    assert stream.getvalue().count("\r") == 2 and "\n" not in stream.getvalue()


def test_wait_reporter_close_ends_open_live_line_after_failure_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    without_rich(monkeypatch)
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat2", stream=stream)
    reporter("sent", 6.0)
    reporter.close()
    reporter.close()  # idempotent
    assert stream.getvalue().endswith("'sent'\n")


def test_ledger_last_change_cleared_by_successful_restore(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", failed_step="migrate")
    ledger.append(events.RUN_STARTED, run_id="r2", host="chat2", command="restore")
    ledger.append(events.RUN_ENDED, run_id="r2", host="chat2", outcome="refused")
    last = ledger.last_change("chat2")
    assert last is not None and last.outcome == "failed"  # a refused restore changed nothing
    ledger.append(events.RUN_STARTED, run_id="r3", host="chat2", command="restore")
    ledger.append(events.RUN_ENDED, run_id="r3", host="chat2", outcome="ok")
    assert ledger.last_change("chat2") is None


def test_ledger_run_id_pattern_matches_the_ids_the_guard_makes() -> None:
    """Copies dirs and rollbacks accept only names of this form: it must be the form new_run_id makes."""
    from opsguard.guard import new_run_id
    from opsguard.ledger import RUN_ID

    assert all(RUN_ID.fullmatch(new_run_id()) for _ in range(20))
    assert not RUN_ID.fullmatch("0-KEEP-forever-hand-made")
