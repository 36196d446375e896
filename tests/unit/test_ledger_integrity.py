"""The ledger stays whole and readable: short writes, write errors, torn and malformed lines.

The next run trusts the ledger to decide whether Hostinger's only snapshot may be replaced, so a
record is either written whole (and fsync'ed) or the append fails loudly with a typed error; and
a damaged line costs that line only, never the whole file.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from opsguard import errors
from opsguard import ledger as events
from opsguard.ledger import Ledger

REASON = "atualização de segurança"


def short_writes(monkeypatch: pytest.MonkeyPatch, at_most: int) -> list[int]:
    """Make os.write in the ledger module write at most ``at_most`` bytes per call; return the call sizes."""
    real_write = os.write
    sizes: list[int] = []

    def partial_write(descriptor: int, data: bytes) -> int:
        written = real_write(descriptor, bytes(data[:at_most]))
        sizes.append(written)
        return written

    monkeypatch.setattr(events.os, "write", partial_write)
    return sizes


def failing_writes(monkeypatch: pytest.MonkeyPatch, after_bytes: int, code: int = errno.ENOSPC) -> None:
    """Make os.write in the ledger module write ``after_bytes`` bytes in all, then fail with ``code``."""
    real_write = os.write
    budget = [after_bytes]

    def write_until_full(descriptor: int, data: bytes) -> int:
        if budget[0] <= 0:
            raise OSError(code, os.strerror(code))
        written = real_write(descriptor, bytes(data[: budget[0]]))
        budget[0] -= written
        return written

    monkeypatch.setattr(events.os, "write", write_until_full)


# -- writing -----------------------------------------------------------------------------------------


def test_ledger_append_writes_whole_record_when_os_write_is_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(tmp_path)
    sizes = short_writes(monkeypatch, at_most=7)

    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2", reason=REASON)

    assert len(sizes) > 1, "the fake did not shorten any write"
    records = ledger.records()
    assert [(r["event"], r["reason"]) for r in records] == [(events.RUN_STARTED, REASON)]
    assert ledger.path.read_bytes().endswith(b"\n")


def test_ledger_append_raises_ledger_write_error_naming_path_and_reason_when_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2")
    failing_writes(monkeypatch, after_bytes=10)

    with pytest.raises(errors.LedgerWriteError) as raised:
        ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})

    assert str(ledger.path) in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 78


def test_ledger_append_leaves_no_partial_record_when_write_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2")
    before = ledger.path.read_bytes()
    failing_writes(monkeypatch, after_bytes=10)

    with pytest.raises(errors.LedgerWriteError):
        ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    monkeypatch.undo()
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed")

    # The failed record was taken back whole, so the next one is a line of its own.
    assert ledger.path.read_bytes().startswith(before)
    assert [r["event"] for r in ledger.records()] == [events.RUN_STARTED, events.RUN_ENDED]
    assert ledger.skipped_lines == 0


def test_ledger_append_raises_ledger_write_error_when_fsync_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(tmp_path)

    def broken_fsync(descriptor: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(events.os, "fsync", broken_fsync)

    with pytest.raises(errors.LedgerWriteError, match="Input/output error"):
        ledger.append(events.RUN_STARTED, run_id="r1", host="chat2")


def test_ledger_append_raises_ledger_write_error_naming_path_when_state_dir_is_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir's parent should be\n")
    ledger = Ledger(blocker / "state")

    with pytest.raises(errors.LedgerWriteError) as raised:
        ledger.append(events.RUN_STARTED, run_id="r1", host="chat")

    assert str(blocker / "state") in str(raised.value)
    assert "Not a directory" in str(raised.value)
    assert raised.value.exit_code == 78


def test_ledger_append_starts_new_line_when_last_line_is_torn(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2")
    with ledger.path.open("ab") as handle:
        handle.write(b'{"event":"step","ru')  # a crash mid-write: no newline

    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="unknown")

    assert [r["event"] for r in ledger.records()] == [events.RUN_STARTED, events.RUN_ENDED]
    assert ledger.skipped_lines == 1


# -- reading -----------------------------------------------------------------------------------------


def test_ledger_records_skip_torn_utf8_character_at_end(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2", reason=REASON)
    torn = json.dumps({"event": "run-ended", "reason": "migração"}, ensure_ascii=False).encode()
    with ledger.path.open("ab") as handle:
        handle.write(torn[: torn.index("ç".encode()) + 1])  # the first byte of "ç" only

    records = ledger.records()

    assert [(r["event"], r["reason"]) for r in records] == [(events.RUN_STARTED, REASON)]
    assert ledger.skipped_lines == 1


def test_ledger_records_skip_invalid_utf8_line_in_middle_and_keep_the_rest(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2")
    with ledger.path.open("ab") as handle:
        handle.write(b'{"event":"step","reason":"\xc3"}\n')
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="ok")

    assert [r["event"] for r in ledger.records("chat2")] == [events.RUN_STARTED, events.RUN_ENDED]
    assert ledger.skipped_lines == 1


@pytest.mark.parametrize(
    "line",
    [
        '{"time":"t","event":"run-ended","run_id":"r9","host":null,"outcome":"ok"}',
        '{"time":"t","event":"run-ended","run_id":7,"host":"chat2","outcome":"ok"}',
        '{"time":"t","event":null,"run_id":"r9","host":"chat2"}',
        '{"time":12,"event":"run-ended","run_id":"r9","host":"chat2"}',
        '{"time":"t","event":"snapshot-verified","run_id":"r9","host":"chat2","receipt":"s9"}',
        '{"time":"t","event":"snapshot-requested","run_id":"r9","host":"chat2","previous_snapshot":["s0"]}',
        '["not", "a", "record"]',
        "[" * 100_000 + "]" * 100_000,
        '{"time":"t","event":"step","run_id":"r9","host":"chat2","n":' + "9" * 5000 + "}",
    ],
    ids=["host-null", "run-id-int", "event-null", "time-int", "receipt-str", "previous-list", "list", "deep", "huge-int"],
)
def test_ledger_records_skip_and_count_unusable_record(tmp_path: Path, line: str) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    with ledger.path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", failed_step="migrate")

    records = ledger.records("chat2")
    last = ledger.last_change("chat2")

    assert [r["event"] for r in records] == [events.SNAPSHOT_VERIFIED, events.RUN_ENDED]
    assert ledger.skipped_lines == 1
    assert last is not None and (last.run_id, last.outcome, last.snapshot_id) == ("r1", "failed", "s1")


def test_ledger_last_change_works_when_last_line_is_torn_utf8(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    with ledger.path.open("ab") as handle:
        handle.write('{"event":"run-ended","run_id":"r1","host":"chat2","error":"falhou a migração'.encode()[:-2])

    last = ledger.last_change("chat2")

    assert last is not None and (last.outcome, last.snapshot_id) == (events.UNKNOWN, "s1")
    assert ledger.skipped_lines == 1


def test_ledger_skipped_lines_is_zero_for_clean_and_missing_ledger(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "never-written")
    assert ledger.records() == [] and ledger.skipped_lines == 0
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat")
    assert len(ledger.records()) == 1 and ledger.skipped_lines == 0


def test_ledger_records_raise_config_error_naming_path_when_ledger_is_a_directory(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.path.mkdir()

    # SAFETY: an unreadable ledger must not read as "no failed change" (that would allow the overwrite).
    with pytest.raises(errors.ConfigError, match=str(ledger.path)):
        ledger.records()


# -- free space ------------------------------------------------------------------------------------


def test_check_free_space_returns_when_enough_is_free(tmp_path: Path) -> None:
    events.check_free_space(tmp_path / "state", 1)
    assert (tmp_path / "state").is_dir()


def test_check_free_space_raises_config_error_naming_dir_free_and_minimum_when_too_little(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    minimum = free * 4 + 10**15

    with pytest.raises(errors.ConfigError) as raised:
        events.check_free_space(tmp_path, minimum)

    text = str(raised.value)
    assert str(tmp_path) in text and str(minimum) in text and "free" in text
    assert "\n" not in text and raised.value.exit_code == 78


def test_check_free_space_raises_config_error_naming_path_when_dir_is_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    with pytest.raises(errors.ConfigError, match="Not a directory") as raised:
        events.check_free_space(blocker / "state", 1)

    assert str(blocker / "state") in str(raised.value)
