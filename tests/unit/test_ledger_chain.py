"""The tamper-evident ledger: each record carries the hash of the line before it, and verify_chain finds the break.

A deleted record or an edited one breaks the chain at the record after it; a crash-torn line does not;
a ledger written before the chain existed stays readable and verifies as "unchained" up to its first
hashed record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from opsguard import ledger as events
from opsguard.ledger import PREV_HASH, Ledger, line_hash, verify_chain


def write_three(ledger: Ledger) -> list[bytes]:
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat", reason="first")
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat", receipt={"snapshot_id": "s1"})
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat", outcome="ok")
    return ledger.path.read_bytes().splitlines()


def test_ledger_append_links_each_record_to_the_previous_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = write_three(ledger)
    records = [json.loads(line) for line in lines]
    assert records[0][PREV_HASH] is None
    assert records[1][PREV_HASH] == "sha256:" + hashlib.sha256(lines[0]).hexdigest()
    assert records[2][PREV_HASH] == line_hash(lines[1])


def test_verify_chain_intact_when_untouched(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    write_three(ledger)
    report = verify_chain(ledger.path)
    assert (report.intact, report.records, report.unchained, report.breaks) == (True, 3, 0, ())


def test_verify_chain_names_line_after_deleted_record(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = write_three(ledger)
    ledger.path.write_bytes(lines[0] + b"\n" + lines[2] + b"\n")  # record 2 deleted
    report = verify_chain(ledger.path)
    assert not report.intact
    [broken] = report.breaks
    assert broken.line == 2
    assert "does not follow line 1" in broken.message and "deleted" in broken.message


def test_verify_chain_names_line_after_edited_record(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = write_three(ledger)
    edited = lines[1].replace(b'"s1"', b'"s9"')
    ledger.path.write_bytes(b"\n".join([lines[0], edited, lines[2]]) + b"\n")
    report = verify_chain(ledger.path)
    assert [broken.line for broken in report.breaks] == [3]
    assert "line 2 was edited" in report.breaks[0].message


def test_verify_chain_breaks_when_first_records_deleted(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = write_three(ledger)
    ledger.path.write_bytes(lines[2] + b"\n")
    [broken] = verify_chain(ledger.path).breaks
    assert broken.line == 1
    assert "records before it were deleted" in broken.message


def test_verify_chain_breaks_when_unhashed_record_inserted_after_chain_start(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = write_three(ledger)
    forged = json.dumps({"time": "2026-01-01T00:00:00.000Z", "event": "run-ended", "run_id": "r0", "host": "chat"})
    ledger.path.write_bytes(b"\n".join([lines[0], forged.encode(), lines[1], lines[2]]) + b"\n")
    report = verify_chain(ledger.path)
    assert [broken.line for broken in report.breaks] == [2, 3]
    assert "no prev_hash" in report.breaks[0].message


def test_verify_chain_intact_across_torn_line_from_a_crash(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat")
    with ledger.path.open("ab") as handle:
        handle.write(b'{"event":"step","ru')  # a crash mid-write
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat", outcome="unknown")
    report = verify_chain(ledger.path)
    assert report.intact
    assert (report.records, report.unreadable) == (2, 1)


def test_verify_chain_counts_unchained_prefix_of_old_ledger(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    old = [
        json.dumps({"time": "2025-01-01T00:00:00.000Z", "event": "run-started", "run_id": "r0", "host": "chat"}),
        json.dumps({"time": "2025-01-01T00:00:01.000Z", "event": "run-ended", "run_id": "r0", "host": "chat"}),
    ]
    ledger.path.write_text("\n".join(old) + "\n")
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat")
    report = verify_chain(ledger.path)
    assert (report.intact, report.unchained, report.records) == (True, 2, 3)
    assert [record["run_id"] for record in ledger.records()] == ["r0", "r0", "r1"]
    assert json.loads(ledger.path.read_bytes().splitlines()[2])[PREV_HASH] == line_hash(old[1].encode())


def test_verify_chain_intact_and_empty_when_ledger_missing(tmp_path: Path) -> None:
    report = verify_chain(tmp_path / "ledger.jsonl")
    assert (report.intact, report.records) == (True, 0)


def test_ledger_append_hashes_whole_previous_line_when_longer_than_a_read_block(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat", reason="x" * 200_000)
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat", outcome="ok")
    first, second = ledger.path.read_bytes().splitlines()
    assert json.loads(second)[PREV_HASH] == line_hash(first)
    assert verify_chain(ledger.path).intact
