"""Tables: rich on a terminal (colours unless NO_COLOR, values shown as typed), the exact plain lines off one."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from opsguard.output import paint
from opsguard.tables import Table, print_table
from tests.fixtures.cli_fixtures import REPO_ROOT


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


SUMMARY = Table(
    header=["PHASE", "RESULT", "TIME", "STEP"],
    rows=[["change", "ok", "1.2s", "apt-get upgrade"], ["verify", "failed", "80ms", "nginx -t"]],
    title="chat: summary of update",
    right=frozenset({2}),
    colour=lambda column, cell: {"ok": "green", "failed": "red"}.get(cell) if column == 1 else None,
)


@pytest.fixture(autouse=True)
def colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")  # whatever terminal the tests run under
    monkeypatch.setenv("COLUMNS", "100")


def test_print_table_off_a_terminal_prints_the_plain_lines_exactly() -> None:
    default, given = io.StringIO(), io.StringIO()

    print_table(SUMMARY, stream=default)
    print_table(SUMMARY, stream=given, plain=["chat: summary of update", "  change    ok   1.2s  apt-get upgrade"])

    assert default.getvalue() == ("PHASE   RESULT  TIME  STEP\nchange  ok      1.2s  apt-get upgrade\n"
                                  "verify  failed  80ms  nginx -t\n")
    assert given.getvalue() == "chat: summary of update\n  change    ok   1.2s  apt-get upgrade\n"


def test_print_table_on_a_terminal_draws_a_rich_table_with_coloured_cells() -> None:
    stream = FakeTerminal()

    print_table(SUMMARY, stream=stream)

    text = stream.getvalue()
    assert "chat: summary of update" in text and "apt-get upgrade" in text
    assert "─" in text  # rich's header rule
    assert "\x1b[32mok" in text and "\x1b[31mfailed" in text


def test_print_table_on_a_terminal_respects_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = FakeTerminal()

    print_table(SUMMARY, stream=stream)

    assert "apt-get upgrade" in stream.getvalue()
    assert "\x1b[31m" not in stream.getvalue() and "\x1b[32m" not in stream.getvalue()


def test_print_table_on_a_terminal_shows_markup_and_control_characters_as_typed() -> None:
    stream = FakeTerminal()
    forged = Table(header=["STEP"], rows=[["[red]ok[/red] :fire:"], ["a\x1b[2Jb\nforged line"]])

    print_table(forged, stream=stream)

    text = stream.getvalue()
    assert "[red]ok[/red] :fire:" in text
    assert "\x1b[2J" not in text and "a\\x1b[2Jb\\nforged line" in text


def test_print_table_on_a_terminal_without_rich_prints_the_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # as if the progress extra were not installed
    monkeypatch.setitem(sys.modules, "rich.console", None)
    stream = FakeTerminal()

    print_table(SUMMARY, stream=stream, plain=["plain line"])

    assert stream.getvalue() == "plain line\n"


def test_print_table_off_a_terminal_never_imports_rich() -> None:
    code = ("import io, json, sys\nfrom opsguard.tables import Table, print_table\n"
            "print_table(Table(['A'], [['1']]), stream=io.StringIO())\nprint(json.dumps('rich' in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout) is False


def test_paint_gives_plain_text_on_a_terminal_when_no_color_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert paint("failed", "red", FakeTerminal()) == "\x1b[31mfailed\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("failed", "red", FakeTerminal()) == "failed"


def test_print_table_on_a_dumb_terminal_prints_the_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich draws nothing live on TERM=dumb: the plain forms serve it better.
    monkeypatch.setenv("TERM", "dumb")
    stream = FakeTerminal()

    print_table(SUMMARY, stream=stream, plain=["plain line"])

    assert stream.getvalue() == "plain line\n"
