"""Tables and live lines for people, plain text for logs: rich on a terminal, the plain form off one.

Off a terminal (cron, a pipe, the tests) every caller prints exactly its plain lines: scripts and
logs depend on them. On a terminal, when rich is installed (the ``progress`` extra), a table is a
rich table that fits the terminal's width (long cells wrap inside their column) and colours a
cell where the caller says so; ``NO_COLOR`` (https://no-color.org) turns the colours off.

rich is imported here only, and only once a terminal is attached: off a terminal opsguard never
pays its import (about 25 ms, BENCHMARKS.md "rich on a terminal").

SAFETY: every cell is shown through ``printable`` (no control character reaches the terminal, so a
recorded value cannot forge a line or recolour the screen) and as rich ``Text`` with markup and
emoji codes off, so a ``[red]`` or ``:fire:`` in a recorded value is shown as typed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from opsguard.output import is_terminal, table
from opsguard.textsafe import printable

# The colour names callers use (as output.paint's); rich styles of the same name.
COLOURS = ("red", "green", "yellow", "blue", "bold", "dim")


def no_color() -> bool:
    """Return whether the environment asks for no colour (NO_COLOR set and not empty)."""
    return bool(os.environ.get("NO_COLOR"))


@dataclass(frozen=True)
class Table:
    """A table to show: a header, rows of cell text, and how to show them on a terminal.

    ``right``: the columns aligned right (numbers, durations). ``colour(column, cell)`` returns one
    of COLOURS for a cell, or None. ``title`` is shown above the rich table (off a terminal the
    caller's plain lines carry their own).
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    title: str | None = None
    right: frozenset[int] = frozenset()
    colour: Callable[[int, str], str | None] | None = field(default=None, compare=False)

    def plain(self) -> str:
        """Return the plain aligned text of the table (header first), as shown off a terminal by default."""
        return table([[printable(cell) for cell in row] for row in self.rows], [printable(cell) for cell in self.header])


def rich_console(stream: TextIO) -> Any | None:
    """Given a stream, return a rich Console writing to it when a person watches it and rich is installed, else None.

    A dumb terminal (TERM=dumb) gets None too: rich draws nothing live there.
    """
    if not is_terminal(stream) or os.environ.get("TERM") == "dumb":
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    # markup/emoji/highlight off: a value is shown as it is, never interpreted (see SAFETY above).
    return Console(file=stream, force_terminal=True, markup=False, emoji=False, highlight=False,
                   no_color=no_color() or None)


def print_table(shown: Table, *, stream: TextIO | None = None, plain: Sequence[str] | None = None) -> None:
    """Given a table, print it: a rich table on a terminal, else ``plain`` (default: the aligned text) line by line."""
    target = stream or sys.stdout
    console = rich_console(target)
    if console is None:
        lines = list(plain) if plain is not None else shown.plain().splitlines()
        print("\n".join(lines), file=target, flush=True)
        return
    console.print(rich_table(shown))
    target.flush()


def rich_table(shown: Table) -> Any:
    """Given a table, return the rich renderable for it (rich must be importable)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    result = RichTable(title=printable(shown.title) if shown.title else None, title_justify="left",
                       title_style="bold", box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for index, name in enumerate(shown.header):
        result.add_column(printable(name), justify="right" if index in shown.right else "left", overflow="fold")
    for row in shown.rows:
        cells = []
        for index, cell in enumerate(row):
            colour = shown.colour(index, cell) if shown.colour else None
            cells.append(Text(printable(cell), style=colour if colour in COLOURS else ""))
        result.add_row(*cells)
    return result
