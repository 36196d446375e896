"""The on-host history of guarded runs: the append text the guard sends, the tolerant reader, the windows."""

from __future__ import annotations

import json
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsguard.history import (
    HistoryUnreadable,
    covering_window,
    guarded_windows,
    history_append_command,
    history_append_problem,
    history_line,
    history_read_command,
    parse_history,
)
from opsguard.readonly import classify, read_only_problem

STATE = "/var/lib/opsguard"
START = {"run_id": "20261201T062000Z-a1b2c3", "start": "2026-12-01T06:20:00Z", "end": None, "snapshot_id": "snap-1",
         "outcome": "in-progress", "user": "ana", "machine": "laptop", "command": "update"}
END = {**START, "end": "2026-12-01T06:31:00Z", "outcome": "ok"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_history_append_command_writes_only_in_state_dir_per_oracle() -> None:
    text = history_append_command(STATE, START)
    assert classify(text, writable=(STATE,)) is None
    assert read_only_problem(text) is not None  # it does write: a read-only session must refuse it
    assert text.startswith("umask 077; ")
    assert text.count(">>") == 1 and " > " not in text


def test_history_append_command_appends_and_reads_back_in_a_real_shell(tmp_path: Path) -> None:
    state = str(tmp_path / "state dir")  # a space: the path must be quoted
    for entry in (START, END):
        done = subprocess.run(["sh", "-c", history_append_command(state, entry)], capture_output=True, text=True, check=False)
        assert history_append_problem(done.returncode, done.stdout, done.stderr, entry) is None
    lines = (tmp_path / "state dir" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["in-progress", "ok"]
    assert oct((tmp_path / "state dir" / "history.jsonl").stat().st_mode & 0o777) == "0o600"


def test_history_append_problem_when_last_line_is_another_entry() -> None:
    assert history_append_problem(0, history_line(START) + "\n", "", END) == "the history's last line is not the entry just written"
    assert history_append_problem(1, "", "sh: cannot create x: Read-only file system\n", END) == (
        "cannot append to the history: sh: cannot create x: Read-only file system")


def test_history_line_escapes_control_characters_and_cuts_long_command() -> None:
    line = history_line({**START, "command": "exec chat -- echo '\n\u2028" + "x" * 1000})
    assert "\n" not in line and "\u2028" not in line and len(line) < 1000
    assert shlex.split(shlex.quote(line)) == [line]


@pytest.mark.parametrize("bad", [{**START, "run_id": ""}, {**START, "start": "yesterday"}, {**START, "extra": 1},
                                 {**START, "snapshot_id": None}])
def test_history_line_raises_value_error_when_entry_invalid(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="history entry"):
        history_line(bad)


def test_history_read_command_is_read_only() -> None:
    assert read_only_problem(history_read_command(STATE)) is None


def test_parse_history_skips_torn_and_foreign_lines_and_counts_them() -> None:
    text = "\n".join([history_line(START), '{"run_id": "x", "sta', "not json", '{"run_id": 5}', history_line(END)])
    read = parse_history(text)
    assert [entry["outcome"] for entry in read.entries] == ["in-progress", "ok"]
    assert (read.skipped_lines, read.present) == (3, True)


def test_parse_history_absent_when_marker_printed() -> None:
    read = parse_history("OPSGUARD_HISTORY_ABSENT\n")
    assert (read.entries, read.present) == ((), False)


def test_parse_history_raises_unreadable_when_marker_printed() -> None:
    with pytest.raises(HistoryUnreadable) as raised:
        parse_history("OPSGUARD_HISTORY_UNREADABLE\n")
    assert raised.value.exit_code == 4


def test_parse_history_keeps_runs_reaching_past_since() -> None:
    old = {**END, "run_id": "old", "start": "2026-11-01T00:00:00Z", "end": "2026-11-01T00:10:00Z"}
    unended = {**START, "run_id": "unended", "start": "2026-10-01T00:00:00Z"}
    text = "\n".join(history_line(entry) for entry in (old, unended, START, END))
    read = parse_history(text, since=at("2026-11-30T00:00:00"))
    assert sorted({entry["run_id"] for entry in read.entries}) == ["20261201T062000Z-a1b2c3", "unended"]


def test_guarded_windows_merge_start_and_end_entries() -> None:
    [window] = guarded_windows([START, END])
    assert (window.start, window.end, window.outcome, window.snapshot_id) == (
        at("2026-12-01T06:20:00"), at("2026-12-01T06:31:00"), "ok", "snap-1")


def test_covering_window_inside_with_slack_and_not_after() -> None:
    windows = guarded_windows([START, END])
    assert covering_window(windows, at("2026-12-01T06:25:00"), slack=60, open_for=3600) is not None
    assert covering_window(windows, at("2026-12-01T06:31:50"), slack=60, open_for=3600) is not None
    assert covering_window(windows, at("2026-12-01T06:33:00"), slack=60, open_for=3600) is None
    assert covering_window(windows, at("2026-12-01T06:18:00"), slack=60, open_for=3600) is None


def test_covering_window_of_run_without_end_closes_after_open_for() -> None:
    windows = guarded_windows([START])
    start = at("2026-12-01T06:20:00")
    assert covering_window(windows, start + timedelta(minutes=50), slack=0, open_for=3600) is not None
    assert covering_window(windows, start + timedelta(minutes=70), slack=0, open_for=3600) is None
