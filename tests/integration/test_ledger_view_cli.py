"""`opsguard ledger` through the real CLI on damaged and hostile ledgers.

No sockets: the ledger view reads only the inventory and the state dir (OPSGUARD_STATE_DIR, set
per test by the isolated_environment fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsguard import ledger as events
from opsguard.ledger import Ledger
from tests.fixtures.cli_fixtures import run_cli
from tests.unit.inventory_cases import VALID

FORGED_LINE = "2025-01-01T00:00:00.000Z  chat2   20250101T000000Z-f0rged  ended: ok"
HOSTILE_REASON = f"deploy\n{FORGED_LINE}\x1b[2J\x1b]0;owned\x07\u2028\x9b31m"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(VALID, encoding="utf-8")
    return path


def ledger_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip()]


def test_ledger_view_escapes_newline_and_escape_sequences_in_reason(inventory: Path, isolated_environment: Path) -> None:
    Ledger(isolated_environment).append(events.RUN_STARTED, run_id="r1", host="chat2", command="exec", reason=HOSTILE_REASON)

    result = run_cli("-i", str(inventory), "ledger")

    assert result.exit_code == 0, result.output
    lines = ledger_lines(result.stdout)
    assert len(lines) == 1, lines  # the newline did not make a second (forged) ledger line
    assert not any(line.startswith(FORGED_LINE) for line in lines)
    assert "\\n" + FORGED_LINE in lines[0]
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\x9b" not in result.stdout
    assert "\\x1b[2J" in lines[0] and "\\u2028" in lines[0] and "\\x9b31m" in lines[0]


def test_ledger_view_json_keeps_hostile_reason_exact(inventory: Path, isolated_environment: Path) -> None:
    Ledger(isolated_environment).append(events.RUN_STARTED, run_id="r1", host="chat2", command="exec", reason=HOSTILE_REASON)

    result = run_cli("-i", str(inventory), "ledger", "--json")

    assert result.exit_code == 0, result.output
    assert [record["reason"] for record in json.loads(result.stdout)] == [HOSTILE_REASON]


def test_ledger_view_reports_skipped_torn_utf8_line_once_on_stderr(inventory: Path, isolated_environment: Path) -> None:
    ledger = Ledger(isolated_environment)
    ledger.append(events.RUN_STARTED, run_id="r1", host="chat2", command="exec", reason="atualização")
    with ledger.path.open("ab") as handle:
        handle.write('{"event":"run-ended","run_id":"r1","host":"chat2","reason":"migração'.encode()[:-4])

    for args in (["ledger"], ["ledger", "chat2"], ["ledger", "--json"]):
        result = run_cli("-i", str(inventory), *args)

        assert result.exit_code == 0, result.output
        assert "atualiza" in result.stdout  # JSON shows it as atualiza\u00e7\u00e3o
        assert result.stderr.count("unreadable") == 1, result.stderr
        assert f"ledger {ledger.path}: skipped 1 unreadable line(s)" in result.stderr


def test_ledger_view_skips_record_with_null_host_and_shows_the_rest(inventory: Path, isolated_environment: Path) -> None:
    ledger = Ledger(isolated_environment)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r1", host="chat2", receipt={"snapshot_id": "s1"})
    with ledger.path.open("a", encoding="utf-8") as handle:
        handle.write('{"time":"t","event":"run-ended","run_id":"r1","host":null,"outcome":"ok"}\n')
        handle.write('{"time":"t","event":"run-ended","run_id":null,"host":"chat2","outcome":"ok"}\n')
    ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", failed_step="migrate")

    result = run_cli("-i", str(inventory), "ledger", "chat2")

    assert result.exit_code == 0, result.output
    assert "snapshot verified: s1" in result.stdout and "ended: failed at step 'migrate'" in result.stdout
    assert "skipped 2 unreadable line(s)" in result.stderr


def test_ledger_view_exits_78_naming_path_when_state_dir_is_under_a_file(inventory: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    result = run_cli("-i", str(inventory), "ledger", env={"OPSGUARD_STATE_DIR": str(blocker / "state")})

    assert result.exit_code == 78, result.output
    assert str(blocker / "state") in result.stderr and len(result.stderr.splitlines()) == 1
