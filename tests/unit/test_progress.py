"""The snapshot-wait display on a terminal: rich's live spinner with the time ticking, the step and the provider's state."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest

from opsguard.progress import SnapshotWaitReporter

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")  # whatever terminal the tests run under
    monkeypatch.setenv("COLUMNS", "120")


def refresh_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if type(thread).__name__ == "_RefreshThread" and thread.is_alive()]


def wait_for_no_refresh_thread(within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while refresh_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not refresh_threads()


def test_wait_reporter_on_a_terminal_shows_a_spinner_the_step_the_state_and_the_time_ticking() -> None:
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat", stream=stream)

    reporter("pending", 5.0)
    time.sleep(1.2)  # polls are seconds apart; the display keeps moving meanwhile
    reporter.done("chat: snapshot snap-1 verified complete")

    text = stream.getvalue()
    assert any(frame in text for frame in SPINNER_FRAMES)
    assert "chat: waiting for the snapshot" in text and "provider says 'pending'" in text
    shown = {float(value) for value in re.findall(r"(\d+\.\d)s, provider says 'pending'", text)}
    assert len(shown) >= 2 and max(shown) >= 6.0, shown  # ticked from 5.0s between polls
    assert text.rstrip().endswith("chat: snapshot snap-1 verified complete")
    assert wait_for_no_refresh_thread()


def test_wait_reporter_close_after_an_error_leaves_the_last_state_on_its_own_line() -> None:
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat2", stream=stream, what="the restore")

    reporter("sent", 6.0)
    reporter.close()
    reporter.close()  # idempotent

    text = stream.getvalue()
    assert "chat2: waiting for the restore" in text
    assert "provider says 'sent'\n" in text  # the last state stays, and the next message starts on a new line
    assert wait_for_no_refresh_thread()


def test_wait_reporter_on_a_terminal_respects_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat", stream=stream)

    reporter("pending", 1.0)
    reporter.done("done")

    assert "provider says 'pending'" in stream.getvalue()
    assert not re.search(r"\x1b\[(3\d|9\d)m", stream.getvalue())  # no foreground colour


def test_wait_reporter_shows_the_provider_state_as_typed() -> None:
    stream = FakeTerminal()
    reporter = SnapshotWaitReporter("chat", stream=stream)

    reporter("[red]ok\x1b[2J", 1.0)
    reporter.done("done")

    assert "[red]ok\\x1b[2J" in stream.getvalue() and "\x1b[2J" not in stream.getvalue()
