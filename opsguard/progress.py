"""Progress while waiting for a snapshot (or a restore): a live display on a terminal, sparse log lines otherwise.

A snapshot wait takes 5 to 30 minutes, and the provider is polled every few seconds at first, then
every 15 s. On a terminal the person watching sees a spinner, the time waited ticking every
second, the step (what is waited for) and the provider's last state — drawn by rich (the
``progress`` extra) when it is installed, else one line rewritten at each poll. Off a terminal
(cron, a pipe): one timestamped line per state change and one a minute, exactly as before, so
logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from opsguard.durations import format_duration
from opsguard.output import is_terminal, log
from opsguard.tables import rich_console
from opsguard.textsafe import printable


class SnapshotWaitReporter:
    """Called on every poll with the provider's state; decides what to show.

    On a terminal: a live display (rich) or one line rewritten in place (without rich). Otherwise:
    one timestamped line per state change and one a minute. ``done`` ends the display and prints
    the closing message; ``close`` ends it after an error (both are idempotent).
    """

    def __init__(self, host: str, stream: TextIO | None = None, every: float = 60.0, what: str = "the snapshot") -> None:
        self.host = host
        self.what = what
        self.stream = stream or sys.stderr
        self.every = every
        self._last_state: str | None = None
        self._last_line = 0.0
        self._terminal = is_terminal(self.stream)
        self._line_open = False
        self._display: _LiveWait | None = None

    def text(self, state: str, elapsed: float) -> str:
        """Given the provider's state and seconds waited, return the progress text (without the spinner).

        SAFETY: the state comes from the provider's answer; the redactor removes any token value.
        """
        from opsguard.redact import redact

        return redact(f"{self.host}: waiting for {self.what}, {format_duration(elapsed)}, provider says {state!r}")

    def __call__(self, state: str, elapsed: float) -> None:
        """Given the provider's state and seconds waited so far, show progress."""
        if self._terminal:
            self._show_live(state, elapsed)
        elif state != self._last_state or time.monotonic() - self._last_line >= self.every:
            log(self.text(state, elapsed), stream=self.stream)
            self._last_line = time.monotonic()
        self._last_state = state

    def _show_live(self, state: str, elapsed: float) -> None:
        if self._display is None and not self._line_open:
            self._display = _LiveWait.start(self, self.stream)
        if self._display is not None:
            self._display.update(state, elapsed)
            return
        # Without rich: one line, rewritten at each poll.
        self.stream.write("\r\033[K" + self.text(state, elapsed))
        self.stream.flush()
        self._line_open = True

    def done(self, message: str) -> None:
        """Given the closing message, end the live display and print it."""
        self._end(after_error=False)
        log(message, stream=self.stream)

    def close(self) -> None:
        """End a live display still open (the wait ended in an error), so the next message starts on its own line."""
        self._end(after_error=True)

    def _end(self, *, after_error: bool) -> None:
        if self._display is not None:
            self._display.stop(keep=after_error)
            self._display = None
        if self._line_open:
            self.stream.write("\n" if after_error else "\r\033[K")
            self.stream.flush()
            self._line_open = False


class _LiveWait:
    """The rich live display of one wait: a spinner, then the text with the time waited ticking between polls.

    rich's refresh thread redraws it four times a second; the time shown is the elapsed time the last
    poll reported plus the time since, so it moves every second even when polls are 15 s apart.
    """

    def __init__(self, reporter: SnapshotWaitReporter, live: Any, spinner: Any) -> None:
        self.reporter = reporter
        self.live = live
        self.spinner = spinner
        self.state = "requested"
        self.elapsed = 0.0
        self.at = time.monotonic()

    @classmethod
    def start(cls, reporter: SnapshotWaitReporter, stream: TextIO) -> _LiveWait | None:
        """Given the reporter and its terminal stream, start a live display; return None when rich is not installed."""
        console = rich_console(stream)
        if console is None:
            return None
        from rich.live import Live
        from rich.spinner import Spinner

        spinner = Spinner("dots", style="cyan")
        display = cls(reporter, None, spinner)
        # transient: the display is erased when it stops, and the closing message takes its place.
        display.live = Live(display, console=console, refresh_per_second=4, transient=True,
                            redirect_stdout=False, redirect_stderr=False)
        display.live.start()
        return display

    def update(self, state: str, elapsed: float) -> None:
        """Given the provider's state and seconds waited (at this poll), update what is shown."""
        self.state, self.elapsed, self.at = state, elapsed, time.monotonic()
        self.live.refresh()

    def __rich__(self) -> Any:
        from rich.text import Text

        waited = self.elapsed + (time.monotonic() - self.at)
        # SAFETY: the provider's state is shown as typed (Text, no markup), control characters escaped.
        self.spinner.update(text=Text(printable(self.reporter.text(self.state, waited))))
        return self.spinner

    def stop(self, *, keep: bool) -> None:
        """Stop the display (and its refresh thread); with ``keep`` (an error ended the wait) leave its last line shown."""
        self.live.transient = not keep
        self.live.stop()
