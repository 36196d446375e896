"""How opsguard talks to people and scripts: plain timestamped lines off a terminal, colour on one.

Nothing here should ever receive a token: callers pass only messages they built from safe values.
JSON documents are redacted all the same (opsguard.redact), because they carry provider messages.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "bold": "1", "dim": "2"}


def is_terminal(stream: TextIO | None = None) -> bool:
    """Given a stream (default stdout), return whether a person is watching it."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, colour: str, stream: TextIO | None = None) -> str:
    """Given text and a colour name, return it coloured when the stream is a terminal and NO_COLOR is not set."""
    if not is_terminal(stream) or colour not in _COLOURS or os.environ.get("NO_COLOR"):
        return text
    return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def log(message: str, *, stream: TextIO | None = None) -> None:
    """Given a progress message, print it: as is on a terminal, with a UTC timestamp otherwise.

    SAFETY: progress quotes provider states and host output; the redactor removes any token value.
    """
    from opsguard.redact import redact

    message = redact(message)
    stream = stream or sys.stderr
    if is_terminal(stream):
        print(message, file=stream, flush=True)
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f"{stamp} {message}", file=stream, flush=True)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Given JSON-ready data, print it as indented JSON with sorted keys (stable for scripts), token values redacted."""
    from opsguard.redact import redact_data

    print(json.dumps(redact_data(data), indent=2, sort_keys=True), file=stream or sys.stdout, flush=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Given rows of cells and a header, return an aligned plain-text table."""
    widths = [len(cell) for cell in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


class HostLinePrinter:
    """Prints a host's output lines with a ``host | `` prefix while a step runs.

    SAFETY: if the reader goes away (``opsguard exec ... | head``), printing fails with a broken
    pipe in the middle of a change. That must not stop watching the remote command (it would be
    cut off half-way, e.g. apt inside dpkg): the printer stops printing to that stream, points it at
    /dev/null so nothing else fails on it, and the step goes on to its real exit status.
    """

    def __init__(self, host: str, *, stdout_allowed: bool = True) -> None:
        self.prefix = f"{host} | "
        self.stdout_allowed = stdout_allowed
        self._lost: set[int] = set()

    def __call__(self, stream_name: str, line: str) -> None:
        target = sys.stdout if stream_name == "stdout" and self.stdout_allowed else sys.stderr
        if id(target) in self._lost:
            return
        try:
            print(self.prefix + line, file=target, flush=True)
        except OSError:
            self._lost.add(id(target))
            _point_at_devnull(target)


def _point_at_devnull(stream: TextIO) -> None:
    """Given a stream whose reader is gone, send its further output (and the final flush) to /dev/null."""
    import os

    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, stream.fileno())
        os.close(descriptor)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (captured in tests): nothing more to do
