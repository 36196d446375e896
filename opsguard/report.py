"""One report model for the read-only commands (backup-check, audit, health) and its outputs.

A run checks hosts; each host gets check results; each result has a STATE — ``ok``, ``warning``,
``failed`` or ``unknown`` (could not be read) — a one-line message and JSON-ready facts. The host's
state is the worst of its results, the run's exit code the worst of the hosts' (``errors.
worst_exit_code``): ok and warning exit 0, failed 1, unknown 4; a result may say that what kept it
from reading the host was the configuration (78) or a bug (70).

Outputs, the same for every command:

- ``problem_lines``: one ``host: problem`` line per failed or unknown result, then one
  ``host: warning: ...`` line per warning (what cron mails; nothing when all is ok);
- ``render_table``: the terminal view (one row per check, or the command's own columns per host);
- ``report_document``: the ``--json`` document, versioned (``REPORT_VERSION``; fields are only ever
  added within a version); ``report_schema`` is its JSON Schema;
- ``textfile_lines``: Prometheus textfile-collector series named after the command
  (``opsguard_<command>_...``), so each command writes its own file;
- ``summary_line``: the first line of a health-check ping.

SAFETY: host output can hold anything. Every human view (problem lines, table, summary) escapes
control characters (``textsafe.printable``); JSON keeps values exact and is redacted where it is
printed or sent (``output.print_json``, ``notify``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsguard.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_UNKNOWN,
    OpsguardError,
    worst_exit_code,
)
from opsguard.textsafe import printable

REPORT_VERSION = 2
OK = "ok"
WARNING = "warning"
FAILED = "failed"
UNKNOWN = "unknown"
STATES = (OK, WARNING, FAILED, UNKNOWN)
STATE_EXIT_CODES: Mapping[str, int] = {OK: EXIT_OK, WARNING: EXIT_OK, FAILED: EXIT_FAILED, UNKNOWN: EXIT_UNKNOWN}
# The worst state of a host: a found failure outranks "could not read", as exit 1 outranks exit 4.
STATE_RANK: Mapping[str, int] = {OK: 0, WARNING: 1, UNKNOWN: 2, FAILED: 3}


@dataclass(frozen=True)
class CheckResult:
    """One check of one host: its state, a one-line message (no host prefix) and JSON-ready facts.

    ``exit_code`` is set only for an ``unknown`` result whose cause is not the host: 78 (inventory,
    token) or 70 (a bug). ``gauges`` are numbers worth a Prometheus series (e.g. disk used percent).
    """

    check: str
    state: str
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    gauges: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"check {self.check}: state {self.state!r} is not one of {', '.join(STATES)}")

    @property
    def code(self) -> int:
        """Return the exit code this result asks for."""
        return self.exit_code if self.exit_code is not None else STATE_EXIT_CODES[self.state]

    @property
    def is_problem(self) -> bool:
        """Return whether this result is a problem (failed or unknown), as opposed to ok or a warning."""
        return self.state in (FAILED, UNKNOWN)


@dataclass(frozen=True)
class HostResult:
    """The results of one host, in check order.

    ``status`` is a command's own word for the host (backup-check: stale, missing...); it defaults to
    the state. ``details`` are command-specific fields added to the host's JSON record.
    """

    host: str
    checks: tuple[CheckResult, ...]
    status: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """Return the worst state of the host's results (ok when it has none)."""
        return max((check.state for check in self.checks), key=STATE_RANK.__getitem__, default=OK)

    @property
    def exit_code(self) -> int:
        """Return the worst exit code of the host's results."""
        return worst_exit_code([check.code for check in self.checks])

    @property
    def label(self) -> str:
        """Return the word shown for the host: its status, else its state."""
        return self.status or self.state

    @property
    def problems(self) -> list[str]:
        """Return the messages of the failed and unknown results."""
        return [check.message for check in self.checks if check.is_problem]

    @property
    def warnings(self) -> list[str]:
        """Return the messages of the warnings."""
        return [check.message for check in self.checks if check.state == WARNING]


@dataclass(frozen=True)
class Report:
    """A whole run of one command: when it checked, and each host's results in order."""

    command: str
    checked_at: datetime
    hosts: tuple[HostResult, ...]

    @property
    def exit_code(self) -> int:
        """Return the worst host exit code (0 when there are no hosts)."""
        return worst_exit_code([host.exit_code for host in self.hosts])


def unknown_from_error(check: str, error: BaseException, action: str | None = None) -> CheckResult:
    """Given a check name and the exception that kept it from reading a host, return its ``unknown`` result.

    An OpsguardError with exit 78 keeps 78 (configuration); other opsguard errors and OS-level errors
    mean the host could not be read (4); anything else is a bug (70). Only the first line of a message is kept.
    """
    prefix = f"{action}: " if action else ""
    if isinstance(error, OpsguardError):
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        code = EXIT_CONFIG if error.exit_code == EXIT_CONFIG else EXIT_UNKNOWN
        return CheckResult(check, UNKNOWN, prefix + text, exit_code=code)
    if isinstance(error, OSError):
        return CheckResult(check, UNKNOWN, f"{prefix}{type(error).__name__}: {error}", exit_code=EXIT_UNKNOWN)
    return CheckResult(check, UNKNOWN, f"{prefix}internal error: {type(error).__name__}: {error}", exit_code=EXIT_INTERNAL)


# -- human views ------------------------------------------------------------------------------------


def problem_lines(report: Report) -> list[str]:
    """Given a report, return one line per problem or warning, each naming its host (escaped, one line each).

    e.g. ``chat: 2026-12-01 06:25 apt upgraded 14 packages (unattended-upgrades) — no snapshot``,
    ``chat2: warning: disk / is 85% used (warning at 80%)``.
    """
    lines: list[str] = []
    for host in report.hosts:
        lines.extend(printable(f"{host.host}: {message}") for message in host.problems)
        lines.extend(printable(f"{host.host}: warning: {message}") for message in host.warnings)
    return lines


def summary_line(report: Report, rank: Mapping[str, int] | None = None) -> str:
    """Given a report (and how to order its hosts' labels, worst first), return e.g. "audit: 3 hosts: 1 failed, 2 ok; exit 1"."""
    order = rank or STATE_RANK
    counts: dict[str, int] = {}
    for host in report.hosts:
        counts[host.label] = counts.get(host.label, 0) + 1
    parts = ", ".join(
        f"{number} {label}" for label, number in sorted(counts.items(), key=lambda item: (-order.get(item[0], 0), item[0]))
    )
    return printable(f"{report.command}: {len(report.hosts)} hosts: {parts or 'none'}; exit {report.exit_code}")


Column = tuple[str, Callable[[HostResult], str]]


def render_table(report: Report, columns: Sequence[Column] | None = None) -> str:
    """Given a report, return the terminal table (every cell escaped).

    Without ``columns``: one row per check (HOST, CHECK, STATE, MESSAGE). With ``columns``: one row per
    host with those columns between HOST and the STATUS and REASON columns (backup-check's layout).
    """
    from opsguard.output import table

    if columns is None:
        rows = [[host.host, check.check, check.state.upper() if check.state != OK else OK, check.message]
                for host in report.hosts for check in host.checks]
        return table([[printable(cell) for cell in row] for row in rows], ["HOST", "CHECK", "STATE", "MESSAGE"])
    rows = []
    for host in report.hosts:
        reasons = [*host.problems, *(f"warning: {message}" for message in host.warnings)]
        label = host.label.upper() if host.label != OK else OK
        rows.append([host.host, *(render(host) for _, render in columns), label, "; ".join(reasons) or "-"])
    header = ["HOST", *(title for title, _ in columns), "STATUS", "REASON"]
    return table([[printable(cell) for cell in row] for row in rows], header)


# -- JSON -------------------------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """Given a datetime (naive = UTC), return it as "YYYY-MM-DDTHH:MM:SSZ", or None."""
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_record(check: CheckResult) -> dict[str, Any]:
    """Given a check result, return its JSON record."""
    return {"check": check.check, "state": check.state, "message": check.message, "facts": dict(check.facts)}


def host_record(host: HostResult) -> dict[str, Any]:
    """Given a host's results, return its JSON record: the command's details, then the common fields."""
    return {
        **dict(host.details),
        "host": host.host,
        "state": host.state,
        "status": host.label,
        "exit_code": host.exit_code,
        "problems": host.problems,
        "warnings": host.warnings,
        "checks": [check_record(check) for check in host.checks],
    }


def report_document(report: Report, exit_code: int | None = None) -> dict[str, Any]:
    """Given a report (and the exit code the command ends with, when it differs), return the --json document."""
    return {
        "version": REPORT_VERSION,
        "command": report.command,
        "checked_at": iso(report.checked_at),
        "exit_code": report.exit_code if exit_code is None else exit_code,
        "hosts": [host_record(host) for host in report.hosts],
    }


_EXIT_CODES = [0, 1, 4, 78, 70]


def report_schema(
    title: str,
    *,
    host_properties: Mapping[str, Any] | None = None,
    host_required: Sequence[str] = (),
    statuses: Sequence[str] = STATES,
) -> dict[str, Any]:
    """Given a title and a command's own host fields (and its status words), return the JSON Schema of its document."""
    check = {
        "type": "object",
        "required": ["check", "state", "message", "facts"],
        "properties": {
            "check": {"type": "string"},
            "state": {"enum": list(STATES)},
            "message": {"type": "string"},
            "facts": {"type": "object"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "required": ["version", "command", "checked_at", "exit_code", "hosts"],
        "properties": {
            "version": {"const": REPORT_VERSION},
            "command": {"type": "string"},
            "checked_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
            "exit_code": {"enum": _EXIT_CODES},
            "hosts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["host", "state", "status", "exit_code", "problems", "warnings", "checks", *host_required],
                    "properties": {
                        "host": {"type": "string"},
                        "state": {"enum": list(STATES)},
                        "status": {"enum": list(statuses)},
                        "exit_code": {"enum": _EXIT_CODES},
                        "problems": {"type": "array", "items": {"type": "string"}},
                        "warnings": {"type": "array", "items": {"type": "string"}},
                        "checks": {"type": "array", "items": check},
                        **dict(host_properties or {}),
                    },
                },
            },
        },
    }


# -- Prometheus textfile ----------------------------------------------------------------------------


def metric_prefix(command: str) -> str:
    """Given a command name ("backup-check"), return its metric name prefix ("opsguard_backup_check")."""
    return "opsguard_" + command.replace("-", "_")


def escape_label(value: str) -> str:
    """Given a label value, return it escaped for the text exposition format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**values: str) -> str:
    """Given label names and values, return ``{name="value",...}`` ("" when none)."""
    inner = ",".join(f'{name}="{escape_label(value)}"' for name, value in values.items())
    return "{" + inner + "}" if inner else ""


def number(value: float) -> str:
    """Given a number, return it as the exposition format writes it (integers without a decimal point)."""
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def family(name: str, help_text: str, samples: Sequence[tuple[str, float]]) -> list[str]:
    """Given a gauge's name, help text and (labels, value) samples, return its exposition lines."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines.extend(f"{name}{sample_labels} {number(value)}" for sample_labels, value in samples)
    return lines


def textfile_lines(report: Report, exit_code: int | None = None) -> list[str]:
    """Given a report (and the exit code the command ends with), return the command's common series.

    ``<prefix>_host_ok{host}`` 1 when the host exits 0; ``<prefix>_state{host,check,state}`` 1 for the
    state of each check (one series per state, so a check that stopped failing reads 0);
    ``<prefix>_value{host,check,name}`` for each gauge; ``<prefix>_timestamp_seconds`` and
    ``<prefix>_exit_code`` of the run. Checks of the same name on one host are folded to their worst state.
    """
    prefix = metric_prefix(report.command)
    worst: dict[tuple[str, str], str] = {}
    values: dict[tuple[str, str, str], float] = {}
    for host in report.hosts:
        for check in host.checks:
            key = (host.host, check.check)
            if key not in worst or STATE_RANK[check.state] > STATE_RANK[worst[key]]:
                worst[key] = check.state
            for name, value in check.gauges.items():
                values[(host.host, check.check, name)] = float(value)
    lines: list[str] = []
    lines += family(f"{prefix}_host_ok", f"1 when opsguard {report.command} found the host ok (exit 0), else 0.",
                    [(labels(host=host.host), 1.0 if host.exit_code == EXIT_OK else 0.0) for host in report.hosts])
    lines += family(f"{prefix}_state", f"1 for the state of each opsguard {report.command} check of the host.",
                    [(labels(host=host, check=check, state=state), 1.0 if state == current else 0.0)
                     for (host, check), current in worst.items() for state in STATES])
    if values:
        lines += family(f"{prefix}_value", f"A number opsguard {report.command} measured (the name says what).",
                        [(labels(host=host, check=check, name=name), value) for (host, check, name), value in values.items()])
    lines += family(f"{prefix}_timestamp_seconds", f"Unix time of the last completed opsguard {report.command}.",
                    [("", report.checked_at.timestamp())])
    code = report.exit_code if exit_code is None else exit_code
    lines += family(f"{prefix}_exit_code", f"Exit code of the last opsguard {report.command} (0 ok, 1 failed, 4 unreachable, 78 config).",
                    [("", float(code))])
    return lines


def render_textfile(report: Report, exit_code: int | None = None) -> str:
    """Given a report, return its textfile-collector text (ends with a newline)."""
    return "\n".join(textfile_lines(report, exit_code)) + "\n"
