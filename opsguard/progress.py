"""Progress while waiting for a snapshot: a live line on a terminal, sparse log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from opsguard.durations import format_duration
from opsguard.output import is_terminal, log


class SnapshotWaitReporter:
    """Called on every poll with the provider's state; decides what to show.

    On a terminal: one line rewritten in place (elapsed time, provider state). Otherwise (cron, a
    pipe): one timestamped line per state change and one a minute, so logs stay short.
    """

    def __init__(self, host: str, stream: TextIO | None = None, every: float = 60.0, what: str = "the snapshot") -> None:
        self.host = host
        self.what = what
        self.stream = stream or sys.stderr
        self.every = every
        self._last_state: str | None = None
        self._last_line = 0.0
        self._live = is_terminal(self.stream)
        self._line_open = False

    def __call__(self, state: str, elapsed: float) -> None:
        """Given the provider's state and seconds waited so far, show progress."""
        text = f"{self.host}: waiting for {self.what}, {format_duration(elapsed)}, provider says {state!r}"
        if self._live:
            from opsguard.redact import redact

            self.stream.write("\r\033[K" + redact(text))
            self.stream.flush()
            self._line_open = True
        elif state != self._last_state or time.monotonic() - self._last_line >= self.every:
            log(text, stream=self.stream)
            self._last_line = time.monotonic()
        self._last_state = state

    def done(self, message: str) -> None:
        """Given the closing message, end the live line and print it."""
        if self._line_open:
            self.stream.write("\r\033[K")
            self._line_open = False
        log(message, stream=self.stream)

    def close(self) -> None:
        """End a live line still open (the wait ended in an error), so the next message starts on its own line."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False
