"""`opsguard ledger --verify` through the real CLI: intact, deleted record, edited record, old ledger.

No sockets: the command reads only the inventory and the state dir (OPSGUARD_STATE_DIR, per test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsguard import ledger as events
from opsguard.ledger import Ledger
from tests.fixtures.cli_fixtures import run_cli
from tests.unit.inventory_cases import VALID


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(VALID, encoding="utf-8")
    return path


def three_records(state_dir: Path) -> Ledger:
    book = Ledger(state_dir)
    book.append(events.RUN_STARTED, run_id="r1", host="chat2", command="exec", reason="deploy")
    book.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    book.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="ok")
    return book


def verify(inventory: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("-i", str(inventory), "ledger", "--verify", *extra)
    return result.exit_code, result.stdout, result.stderr


def test_ledger_verify_exit_zero_when_chain_intact(inventory: Path, isolated_environment: Path) -> None:
    book = three_records(isolated_environment)
    code, stdout, _ = verify(inventory)
    assert code == 0
    assert stdout.strip() == f"ledger {book.path}: 3 records, chain intact"


def test_ledger_verify_exit_one_naming_line_when_record_deleted(inventory: Path, isolated_environment: Path) -> None:
    book = three_records(isolated_environment)
    first, _, third = book.path.read_bytes().splitlines()
    book.path.write_bytes(first + b"\n" + third + b"\n")
    code, stdout, _ = verify(inventory)
    assert code == 1
    lines = stdout.splitlines()
    assert lines[0] == (f"ledger {book.path}: line 2 does not follow line 1: a record between them was deleted, "
                        "or line 1 was edited")
    assert lines[-1] == f"ledger {book.path}: 2 records, chain BROKEN at 1 place(s)"


def test_ledger_verify_json_names_line_after_edited_record(inventory: Path, isolated_environment: Path) -> None:
    book = three_records(isolated_environment)
    lines = book.path.read_bytes().splitlines()
    lines[1] = lines[1].replace(b'"s1"', b'"s2"')
    book.path.write_bytes(b"\n".join(lines) + b"\n")
    code, stdout, _ = verify(inventory, "--json")
    assert code == 1
    document = json.loads(stdout)
    assert (document["intact"], [item["line"] for item in document["breaks"]]) == (False, [3])


def test_ledger_verify_reads_old_ledger_as_unchained_prefix(inventory: Path, isolated_environment: Path) -> None:
    isolated_environment.mkdir(parents=True, exist_ok=True)
    old = {"time": "2025-01-01T00:00:00.000Z", "event": "run-started", "run_id": "r0", "host": "chat2"}
    (isolated_environment / "ledger.jsonl").write_text(json.dumps(old) + "\n", encoding="utf-8")
    Ledger(isolated_environment).append(events.RUN_ENDED, run_id="r0", host="chat2", outcome="ok")
    code, stdout, _ = verify(inventory)
    assert code == 0
    assert "2 records, chain intact (the first 1 written before records were chained)" in stdout
    view = run_cli("-i", str(inventory), "ledger")
    assert view.exit_code == 0 and "r0" in view.stdout
