"""The run summary: the same plain lines as before off a terminal, a rich table on one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from opsguard.runner import PlanRunner, StepRecord
from tests.unit.fakes import write_inventory
from tests.unit.test_runner import sample_plan


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def finished_runner(tmp_path: Path) -> PlanRunner:
    inventory = write_inventory(tmp_path)
    runner = PlanRunner(sample_plan(), inventory.host("chat"), inventory, reason="test")
    runner.summary.steps = [
        StepRecord("preflight", "disk", False, "ok", 0.012),
        StepRecord("change", "migrate", True, "failed", 1.5, "exited 1"),
        StepRecord("verify", "health", False),
    ]
    runner.summary.snapshot_id, runner.summary.run_id = "snap-1", "run-1"
    return runner


def test_runner_summary_off_a_terminal_prints_the_plain_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)

    finished_runner(tmp_path).print_summary()

    assert stream.getvalue() == (
        "chat: summary of sample\n"
        "  preflight ok           12ms  disk\n"
        "  change    failed       1.5s  migrate\n"
        "  (1 later steps not run)\n"
        "  snapshot: snap-1 (run run-1)\n"
    )


def test_runner_summary_on_a_terminal_is_a_table_with_the_result_coloured(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = FakeTerminal()
    monkeypatch.setattr("sys.stderr", stream)

    finished_runner(tmp_path).print_summary()

    text = stream.getvalue()
    assert "PHASE" in text and "RESULT" in text and "─" in text
    assert "\x1b[31mfailed" in text and "\x1b[32mok" in text
    assert text.endswith("  (1 later steps not run)\n  snapshot: snap-1 (run run-1)\n")
