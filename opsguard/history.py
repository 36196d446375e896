"""The on-host history of guarded runs: ``<remote_state>/history.jsonl``, append-only, one JSON object a line.

Why on the host: ``opsguard audit`` must tell a change made inside a guarded window (a snapshot was
verified first) from one made outside, from ANY machine — the ledger lives on the machine that
ran the change. The guard appends a start entry once the snapshot is verified and an end entry
when the run ends, both with the same run id::

    {"run_id": "...", "start": "2026-12-01T06:20:00Z", "end": null, "snapshot_id": "...",
     "outcome": "in-progress", "user": "...", "machine": "...", "command": "update"}
    {"run_id": "...", "start": "2026-12-01T06:20:00Z", "end": "2026-12-01T06:31:00Z", "snapshot_id": "...",
     "outcome": "ok", "user": "...", "machine": "...", "command": "update"}

A run whose end entry never came (the run died, the host went away) is a window that stays open
for a bounded time only (the audit's ``open_run_window_for``), so it cannot hide later changes.

SAFETY: the append writes only inside ``state_dir`` with literal paths (the tests' oracle accepts
it as bookkeeping there), under ``umask 077``, with ONE ``printf >>`` of one line shorter than a
pipe buffer (one write: concurrent appends never interleave), and reads the last line back to
confirm. Reading is read-only and tolerant: a torn or foreign line is skipped and counted, never
fatal; a history that exists but cannot be read raises HistoryUnreadable (outcome unknown).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsguard.errors import OpsguardError, OutcomeUnknown

HISTORY_FILE = "history.jsonl"
FIELDS = ("run_id", "start", "end", "snapshot_id", "outcome", "user", "machine", "command")
IN_PROGRESS = "in-progress"
MAX_COMMAND_CHARACTERS = 400  # keeps a line (ASCII-escaped) well under PIPE_BUF: one atomic write
READ_LINES = 20000  # the newest entries read back: ten thousand runs
_ABSENT = "OPSGUARD_HISTORY_ABSENT"
_UNREADABLE = "OPSGUARD_HISTORY_UNREADABLE"
_TIMEOUT = 30.0


class HistoryUnreadable(OutcomeUnknown):
    """The host's history exists but could not be read: which windows were guarded is unknown. Exit 4."""


class HistoryWriteError(OpsguardError):
    """An entry could not be appended to the host's history (or did not read back). The caller decides the exit code."""


def history_path(state_dir: str) -> str:
    """Given the host's remote_state dir, return the history file's path on the host."""
    return f"{state_dir.rstrip('/') or ''}/{HISTORY_FILE}"


def history_line(entry: Mapping[str, Any]) -> str:
    """Given a history entry, return it as the one line appended (sorted keys, ASCII, no newline).

    Raise ValueError for an unknown field, a missing or empty run_id / snapshot_id / start, a start
    or end that is not an ISO-8601 time, or a field of the wrong type. ``command`` is cut to
    MAX_COMMAND_CHARACTERS so the line stays one atomic write.
    """
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ValueError(f"history entry: unknown field(s) {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
    for name in ("run_id", "snapshot_id", "start", "outcome"):
        if not isinstance(entry.get(name), str) or not str(entry[name]).strip():
            raise ValueError(f"history entry: {name} must be a non-empty string (got {entry.get(name)!r})")
    for name in ("start", "end"):
        if entry.get(name) is not None and parse_time(entry[name]) is None:
            raise ValueError(f"history entry: {name} {entry[name]!r} is not an ISO-8601 time")
    for name in ("end", "user", "machine", "command"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise ValueError(f"history entry: {name} must be a string or null (got {entry[name]!r})")
    values = {name: entry.get(name) for name in FIELDS}
    command = values["command"]
    if isinstance(command, str) and len(command) > MAX_COMMAND_CHARACTERS:
        values["command"] = command[: MAX_COMMAND_CHARACTERS - 3] + "..."
    # ensure_ascii: no raw control or line-separator character can reach the file or the shell text.
    return json.dumps(values, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def history_append_command(state_dir: str, entry: Mapping[str, Any]) -> str:
    """Given the host's remote_state dir and an entry, return the shell text that appends it and prints the last line.

    The caller confirms with ``history_append_problem``. Raise ValueError for an invalid entry (see history_line).
    SAFETY: writes only inside state_dir (literal, quoted paths), umask 077, one ``printf >>``.
    """
    line = history_line(entry)
    directory = shlex.quote(state_dir)
    path = shlex.quote(history_path(state_dir))
    return (f"umask 077; mkdir -p -- {directory} && printf '%s\\n' {shlex.quote(line)} >> {path} "
            f"&& tail -n 1 -- {path}")


def history_append_problem(exit_status: int, stdout: str, stderr: str, entry: Mapping[str, Any]) -> str | None:
    """Given what history_append_command's run returned and the entry, return None if the entry is on the host, else why not."""
    if exit_status != 0:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {exit_status}"
        return f"cannot append to the history: {reason}"
    if stdout.strip() != history_line(entry):
        return "the history's last line is not the entry just written"
    return None


def append_history(target: Any, state_dir: str, entry: Mapping[str, Any]) -> None:
    """Given a session or connection, the host's remote_state dir and an entry, append it and read it back.

    Raise HistoryWriteError naming the file when it was not written (or reads back differently).
    """
    result = target.run(history_append_command(state_dir, entry), timeout=_TIMEOUT)
    problem = history_append_problem(result.exit_status, result.stdout, result.stderr, entry)
    if problem:
        raise HistoryWriteError(f"{history_path(state_dir)} on the host: {problem}")


def history_read_command(state_dir: str) -> str:
    """Given the host's remote_state dir, return the read-only shell text printing the newest history lines.

    Prints a marker instead when there is no history, and another when it exists but cannot be read.
    """
    path = shlex.quote(history_path(state_dir))
    return (f"if [ -e {path} ]; then tail -n {READ_LINES} -- {path} || echo {_UNREADABLE}; "
            f"else echo {_ABSENT}; fi")


@dataclass(frozen=True)
class HistoryRead:
    """What a history read found: usable entries (oldest first), lines skipped, and whether the file exists."""

    entries: tuple[dict[str, Any], ...]
    skipped_lines: int
    present: bool


def parse_history(text: str, since: datetime | None = None) -> HistoryRead:
    """Given what history_read_command printed (exit 0) and a time, return the entries of runs that reach past it.

    A run reaches past ``since`` when any of its entries starts or ends at or after it, or it has no
    end entry. Torn lines, non-JSON lines and entries without a usable run_id / start / snapshot_id
    are skipped and counted. Raise HistoryUnreadable if the output says the file could not be read.
    """
    lines = text.splitlines()
    if _UNREADABLE in (line.strip() for line in lines):
        raise HistoryUnreadable(f"the history of guarded runs ({HISTORY_FILE}) exists but cannot be read")
    if [line.strip() for line in lines if line.strip()] == [_ABSENT]:
        return HistoryRead((), 0, False)
    usable: list[dict[str, Any]] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        entry = _entry(line)
        if entry is None:
            skipped += 1
        else:
            usable.append(entry)
    if since is not None:
        reaching = {run.run_id for run in guarded_windows(usable) if run.reaches(since)}
        usable = [entry for entry in usable if entry["run_id"] in reaching]
    return HistoryRead(tuple(usable), skipped, True)


def read_history(target: Any, state_dir: str, since: datetime | None = None) -> list[dict[str, Any]]:
    """Given a read-only session (or a connection), the host's remote_state dir and a time, return the history
    entries of the runs that reach past that time, oldest first ([] when there is no history).

    Read-only and tolerant of torn lines. Raise HistoryUnreadable when the history exists but cannot be read.
    """
    command = history_read_command(state_dir)
    if hasattr(target, "read_only"):  # a session: say it is a read (a change session records it as one)
        result = target.run(command, timeout=_TIMEOUT, mutates=False)
    else:
        result = target.run(command, timeout=_TIMEOUT)
    if result.exit_status != 0:
        raise HistoryUnreadable(f"the history of guarded runs could not be read (exit {result.exit_status})")
    return list(parse_history(result.stdout, since).entries)


def _entry(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    for name in ("run_id", "snapshot_id"):
        if not isinstance(value.get(name), str) or not value[name]:
            return None
    if parse_time(value.get("start")) is None:
        return None
    if value.get("end") is not None and parse_time(value["end"]) is None:
        return None
    return value


def parse_time(value: Any) -> datetime | None:
    """Given an ISO-8601 text (``Z`` or an offset; none means UTC), return the aware UTC datetime, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class GuardedWindow:
    """One guarded run as the host's history tells it: from its verified snapshot to its end (None: no end entry)."""

    run_id: str
    start: datetime
    end: datetime | None
    snapshot_id: str
    outcome: str
    user: str | None = None
    machine: str | None = None
    command: str | None = None

    def reaches(self, moment: datetime) -> bool:
        """Given a time, return whether this run started or ended at or after it, or has no end."""
        return self.end is None or self.end >= moment or self.start >= moment

    def covers(self, moment: datetime, *, slack: float, open_for: float) -> bool:
        """Given a time, the clock slack in seconds and how long a run without an end entry stays open, return
        whether the time falls inside this window."""
        end = self.end if self.end is not None else self.start + timedelta(seconds=open_for)
        return self.start - timedelta(seconds=slack) <= moment <= end + timedelta(seconds=slack)


def guarded_windows(entries: Iterable[Mapping[str, Any]]) -> list[GuardedWindow]:
    """Given history entries (start and end entries mixed), return one window per run id, by start time.

    The window starts at the earliest start and ends at the latest end of its entries; the outcome and
    the other fields come from the last entry of the run.
    """
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        runs.setdefault(str(entry["run_id"]), []).append(entry)
    windows = []
    for run_id, items in runs.items():
        starts = [moment for moment in (parse_time(item.get("start")) for item in items) if moment is not None]
        ends = [moment for moment in (parse_time(item.get("end")) for item in items) if moment is not None]
        if not starts:
            continue
        last = items[-1]
        windows.append(GuardedWindow(
            run_id=run_id,
            start=min(starts),
            end=max(ends) if ends else None,
            snapshot_id=str(last.get("snapshot_id")),
            outcome=str(last.get("outcome") or (IN_PROGRESS if not ends else "unknown")),
            user=_text(last.get("user")),
            machine=_text(last.get("machine")),
            command=_text(last.get("command")),
        ))
    return sorted(windows, key=lambda window: window.start)


def covering_window(windows: Iterable[GuardedWindow], moment: datetime, *, slack: float, open_for: float) -> GuardedWindow | None:
    """Given windows, a time, the clock slack and how long an unended run stays open, return the window covering the time."""
    for window in windows:
        if window.covers(moment, slack=slack, open_for=open_for):
            return window
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
