"""backup-check: read the providers' backup facts, judge them against the inventory, report.

Three stages, each testable alone:

1. **facts** — ``gather_facts()`` asks each host's provider, through a read-only wrapper that
   refuses every mutating call, only what the policy needs: Vultr — the instance (its
   ``auto_backups`` feature), the backup schedule and the backups; Hostinger — the backups
   (every page) and the current snapshot. At most ``concurrency`` hosts (default 8) are read at
   once, each host's reads in parallel, on daemon threads under ONE run deadline, so a hung API
   can never hang the run: a read with no answer by then makes its host ``unreachable``.
2. **policy** — ``evaluate_host()`` is pure: given a host, its facts and "now", return a
   ``HostReport`` with a status, problems and warnings.
3. **report** — ``report_to_json()``, ``render_table()`` and ``problem_lines()``; the Prometheus
   textfile is in ``opsguard/metrics.py``.

Policy (what makes a host fail)
-------------------------------
- every host needs ``instance`` and a ``[hosts.NAME.backups]`` table, else status ``config``;
- Vultr: ``auto_backups`` in the instance features; a schedule that is enabled and *at least as
  frequent* as the inventory's: ``daily`` accepts only ``daily`` (``daily_alt_even`` /
  ``daily_alt_odd`` run every other day, so they are NOT daily); ``weekly`` accepts ``weekly``,
  ``daily``, ``daily_alt_even`` and ``daily_alt_odd``; ``monthly`` is never enough;
- Vultr: only backups with status ``complete`` count (count and newest); Hostinger lists only
  finished backups;
- at least one backup, and the newest one with a creation date no older than ``max_age``;
  a backup without a date cannot prove it is fresh;
- Hostinger: the current snapshot is reported with its ``expires_at``; expiring within 3 days
  (or already expired) is a WARNING only: status ``warn``, exit 0, and a warning line.

Statuses and exit codes (a host's exit code is the worst of its problems; the run's is the
worst host's, per ``errors.worst_exit_code``: 70 > 78 > 1 > 4 > 0):

=============  ====  ============================================================================
status         exit  meaning
=============  ====  ============================================================================
ok             0     every check passed
warn           0     every check passed, with a warning (e.g. the Hostinger snapshot expires soon)
stale          1     backups exist but the newest is older than ``max_age`` (or has no date)
missing        1     no (complete) backup, ``auto_backups`` off, schedule off / absent / too rare
unreachable    4     the API could not be reached (after the client's retries), did not answer
                     before the run's deadline, or could not say whether Vultr backups are on
                     (a locked instance answers HTTP 500 without its features)
config         78    inventory (no ``instance``, no backups policy), missing or rejected token
                     (HTTP 401/403: a wrong token is 78, not 4), or the instance does not exist
error          70    an unexpected error (a bug) while reading this host; the others still report
=============  ====  ============================================================================

JSON report (``--json``; version 2 — fields are only ever added, never renamed or removed)
-----------------------------------------------------------------------------------------
Version 2 is the document all of opsguard's read-only commands share (opsguard/report.py): it
adds ``command`` and, per host, ``state`` (ok | warning | failed | unknown) and ``checks`` (one
record per check: ``check``, ``state``, ``message``, ``facts``) to every field of version 1,
which keep their names and meanings. Only ``version`` changed value (1 -> 2).
::

    {
      "version": 2,
      "command": "backup-check",
      "checked_at": "2026-11-28T03:00:00Z",      # UTC, the "now" ages are measured against
      "exit_code": 1,                            # what the command exits with
      "hosts": [                                 # in inventory (or argument) order
        {
          "host": "chat",
          "provider": "vultr",
          "instance": "cb676a46-66fd-4dfb-b839-443f2e6c0b60",   # string (Vultr), int (Hostinger), or null
          "status": "stale",                     # ok | warn | stale | missing | unreachable | config | error
          "exit_code": 1,
          "problems": ["newest backup is 31h old (max 26h)"],   # why the host is not ok; [] when ok/warn
          "warnings": [],                        # do not fail the host; e.g. snapshot expiring soon
          "max_age_seconds": 93600.0,            # from the inventory, or null without a policy
          "backups_enabled": true,               # Vultr "auto_backups" feature; null when unknown / Hostinger
          "newest_backup_at": "2026-11-26T20:00:00Z",           # newest complete dated backup, or null
          "newest_backup_age_seconds": 111600.0, # or null when unknown
          "backup_count": 2,                     # complete backups; null when they could not be listed
          "schedule": {                          # Vultr only; null elsewhere or when unreadable
            "enabled": true, "type": "daily", "expected": "daily",
            "next_run": "2026-11-29T00:00:00Z"   # or null
          },
          "snapshot": {                          # Hostinger's current snapshot; null when none / Vultr
            "id": "8812", "created_at": "...Z", "expires_at": "...Z",
            "expires_in_seconds": 172800.0       # negative once expired; null without expires_at
          },
          "state": "failed",                     # version 2: ok | warning | failed | unknown
          "checks": [                            # version 2: provider, auto_backups, schedule, backups, snapshot
            {"check": "backups", "state": "failed", "message": "newest backup is 31h old ...", "facts": {...}}
          ]
        }
      ]
    }

``REPORT_SCHEMA`` below is the same contract as a JSON Schema (the tests validate against it).
No token ever appears in a report: messages are built from provider answers and inventory values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsguard.durations import format_duration
from opsguard.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_UNKNOWN,
    ConfigError,
    OpsguardError,
    ProviderError,
    ReadOnlyViolation,
    worst_exit_code,
)
from opsguard.inventory import Host
from opsguard.nightly import CommandRunning
from opsguard.parallel import HostJob, run_bounded
from opsguard.providers import capabilities
from opsguard.providers.base import (
    BackupInfo,
    BackupSchedule,
    InstanceFacts,
    Provider,
    ProviderCapabilities,
    SnapshotInfo,
)
from opsguard.report import (
    FAILED,
    OK,
    UNKNOWN,
    WARNING,
    CheckResult,
    HostResult,
    Report,
    report_document,
    report_schema,
)
from opsguard.report import REPORT_VERSION as REPORT_VERSION  # the version of the --json document
from opsguard.report import iso as _report_iso
from opsguard.report import problem_lines as _report_problem_lines
from opsguard.report import render_table as _report_table
from opsguard.report import summary_line as _report_summary

SNAPSHOT_WARN_SECONDS = 3 * 86400.0  # a Hostinger snapshot expiring sooner than this -> warning
FUTURE_TOLERANCE_SECONDS = 300.0  # clock skew allowed before a backup "from the future" is reported
DEFAULT_DEADLINE_SECONDS = 120.0
DEFAULT_CONCURRENCY = 8

STATUS_EXIT_CODES: Mapping[str, int] = {
    "ok": EXIT_OK,
    "warn": EXIT_OK,
    "stale": EXIT_FAILED,
    "missing": EXIT_FAILED,
    "unreachable": EXIT_UNKNOWN,
    "config": EXIT_CONFIG,
    "error": EXIT_INTERNAL,
}
# Among problems of the same exit code, the status that describes the host best comes first.
_STATUS_RANK = {"error": 6, "config": 5, "missing": 4, "stale": 3, "unreachable": 2, "warn": 1, "ok": 0}

# The schedules that satisfy an inventory schedule: at least as frequent. daily_alt_* run every
# other day, so they do not satisfy "daily".
ACCEPTED_SCHEDULES: Mapping[str, frozenset[str]] = {
    "daily": frozenset({"daily"}),
    "weekly": frozenset({"weekly", "daily", "daily_alt_even", "daily_alt_odd"}),
}



def facts_to_read(capabilities: ProviderCapabilities) -> tuple[str, ...]:
    """Given a provider's capabilities, return what backup-check reads for one of its hosts, in order.

    Only reads: the ReadOnlyProvider wrapper below refuses anything else.
    """
    facts = []
    if capabilities.backup_schedule:
        # The instance says whether automatic backups are on at all; the schedule says how often they run.
        facts += ["instance", "schedule"]
    facts.append("backups")
    if capabilities.single_snapshot_slot:
        facts.append("snapshot")  # the one snapshot: it expires, and the next change replaces it
    return tuple(facts)
_FACT_ACTIONS = {
    "instance": "reading the instance",
    "schedule": "reading the backup schedule",
    "backups": "listing backups",
    "snapshot": "reading the current snapshot",
}


# Another backup-check holds the run lock: this run checked nothing. Exit 4 (every read-only command has one).
BackupCheckRunning = CommandRunning


# A problem's status kind -> the state of its check in the shared report model.
KIND_STATES: Mapping[str, str] = {
    "stale": FAILED, "missing": FAILED, "unreachable": UNKNOWN, "config": UNKNOWN, "error": UNKNOWN, "warn": WARNING,
}


@dataclass(frozen=True)
class Problem:
    """One reason a host is not ok: its status kind, a one-line message (no host prefix), exit code, and the
    check it belongs to (``provider`` for a read that failed)."""

    kind: str
    message: str
    check: str = "provider"

    @property
    def exit_code(self) -> int:
        return STATUS_EXIT_CODES[self.kind]

    def result(self, facts: Mapping[str, Any] | None = None) -> CheckResult:
        """Return this problem as a check result of the shared report model."""
        override = self.exit_code if self.kind in ("config", "error") else None
        return CheckResult(self.check, KIND_STATES[self.kind], self.message, facts or {}, exit_code=override)


@dataclass(frozen=True)
class HostFacts:
    """What the provider said about one host. ``values`` maps a fact name to its value; a fact
    that could not be read is absent from ``values`` and explained in ``errors``."""

    host: Host
    values: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class HostReport:
    """The verdict for one host."""

    host: str
    provider: str
    instance: str | int | None
    status: str
    exit_code: int
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    max_age_seconds: float | None
    backups_enabled: bool | None
    newest_backup_at: datetime | None
    newest_backup_age_seconds: float | None
    backup_count: int | None
    schedule: BackupSchedule | None
    expected_schedule: str | None
    snapshot: SnapshotInfo | None
    snapshot_expires_in_seconds: float | None
    checks: tuple[CheckResult, ...] = ()  # the same verdict, check by check (the shared report model)

    @property
    def ok(self) -> bool:
        """Return whether the host passed (status ok or warn)."""
        return self.exit_code == EXIT_OK


@dataclass(frozen=True)
class BackupReport:
    """The verdict for a whole run."""

    checked_at: datetime
    hosts: tuple[HostReport, ...]

    @property
    def exit_code(self) -> int:
        """Return the worst host exit code (0 when there are no hosts)."""
        return worst_exit_code([host.exit_code for host in self.hosts])


# --------------------------------------------------------------------------------------------
# facts


class ReadOnlyProvider:
    """Wraps a Provider and exposes only its reads; any other attribute raises ReadOnlyViolation.

    Safety: backup-check must never create, delete or restore anything at a provider. Going
    through this wrapper makes that structural rather than a matter of care.
    """

    _READS = frozenset({"name", "instance_facts", "list_backups", "backup_schedule", "current_snapshot"})

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        if name not in self._READS:
            raise ReadOnlyViolation(f"backup-check is read-only: {name} is not allowed")
        return getattr(self._provider, name)

    def __repr__(self) -> str:
        return f"ReadOnlyProvider({getattr(self._provider, 'name', '?')})"


def _fetch(provider: Any, fact: str, instance: str | int) -> Any:
    if fact == "instance":
        facts: InstanceFacts = provider.instance_facts(instance)
        return facts
    if fact == "schedule":
        schedule: BackupSchedule | None = provider.backup_schedule(instance)
        return schedule
    if fact == "backups":
        return tuple(provider.list_backups(instance))
    if fact == "snapshot":
        snapshot: SnapshotInfo | None = provider.current_snapshot(instance)
        return snapshot
    raise ValueError(f"unknown fact {fact!r}")


def problem_from_error(error: BaseException, action: str | None = None) -> Problem:
    """Given an exception raised while reading a host, return the Problem it means.

    Exit 78 errors (token missing or rejected, no such instance) are ``config``; exit 4 errors
    and OS-level network errors are ``unreachable``; anything else is an ``error`` (a bug).
    """
    prefix = f"{action}: " if action else ""
    if isinstance(error, OpsguardError):
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if error.exit_code == EXIT_CONFIG:
            return Problem("config", prefix + text)
        if error.exit_code == EXIT_UNKNOWN:
            return Problem("unreachable", prefix + text)
        return Problem("error", f"{prefix}{type(error).__name__}: {text}")
    if isinstance(error, OSError):  # includes requests' exceptions and socket timeouts
        return Problem("unreachable", f"{prefix}{type(error).__name__}: {error}")
    return Problem("error", f"{prefix}internal error: {type(error).__name__}: {error}")


def gather_facts(
    hosts: Sequence[Host],
    provider_for: Callable[[Host], Provider],
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[HostFacts]:
    """Given hosts and a provider factory, return each host's facts, in host order.

    At most ``concurrency`` hosts are read at once, each host's reads in parallel, and the whole
    gathering stops after ``deadline_seconds``: a read that has not answered by then is an
    ``unreachable`` problem. Configuration problems (no instance, no backups policy, no token)
    are found before any request. Never raises for a host's problem.
    """
    prepared: dict[str, list[Problem]] = {}
    facts_of_host: dict[str, tuple[str, ...]] = {}
    jobs: list[HostJob] = []
    clients: list[Any] = []
    for host in hosts:
        problems: list[Problem] = []
        prepared[host.name] = problems
        try:
            instance = host.require_instance()
            if host.backups is None:
                raise ConfigError(f"{host.source}: hosts.{host.name}.backups is not set (add schedule and max_age)")
            try:
                facts_of_host[host.name] = facts_to_read(capabilities(host.provider))
            except ConfigError as error:
                raise ConfigError(f"{host.source}: hosts.{host.name}.provider: {error}") from None
            client = provider_for(host)
            clients.append(client)
            provider = ReadOnlyProvider(client)
        except Exception as error:  # a host's set-up problem must not stop the other hosts
            problems.append(problem_from_error(error))
            continue
        reads = tuple(((host.name, fact), _bind(provider, fact, instance)) for fact in facts_of_host[host.name])
        jobs.append(HostJob(host.name, reads))

    results = run_bounded(jobs, concurrency, deadline_seconds)
    _close_all(clients)

    facts: list[HostFacts] = []
    for host in hosts:
        problems = prepared[host.name]
        values: dict[str, Any] = {}
        # One outage gives the same error on every read: report it once, with a count.
        failures: dict[Any, list[Any]] = {}
        if not problems:
            for fact in facts_of_host[host.name]:
                outcome = results.get((host.name, fact))
                if outcome is None:
                    key: Any = "deadline"
                    problem = Problem(
                        "unreachable",
                        f"{_FACT_ACTIONS[fact]}: no answer from the {host.provider} API within "
                        f"{format_duration(deadline_seconds)} (run deadline)",
                    )
                elif outcome[0]:
                    values[fact] = outcome[1]
                    continue
                else:
                    key = _same_failure_key(outcome[1])
                    problem = problem_from_error(outcome[1], _FACT_ACTIONS[fact])
                failures.setdefault(key, [problem, 0])[1] += 1
            for problem, count in failures.values():
                if count > 1:
                    problem = Problem(
                        problem.kind, f"{problem.message} (and {count - 1} more reads failed the same way)"
                    )
                problems.append(problem)
        facts.append(HostFacts(host=host, values=values, errors=tuple(problems)))
    return facts


def _same_failure_key(error: BaseException) -> Any:
    # Provider errors differ by path but mean the same outage when class and status agree.
    if isinstance(error, ProviderError):
        return (type(error).__name__, error.status)
    return (type(error).__name__, str(error))


def _close_all(clients: list[Any]) -> None:
    # Release the HTTP connections; a read abandoned at the deadline may fail afterwards, unseen.
    for client in clients:
        close = getattr(client, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # best effort: must not hide the report
                close()


def _bind(provider: Any, fact: str, instance: str | int) -> Callable[[], Any]:
    return lambda: _fetch(provider, fact, instance)


# --------------------------------------------------------------------------------------------
# policy


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    # The contracts say a time without a zone is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def evaluate_host(facts: HostFacts, now: datetime) -> HostReport:
    """Given a host's facts and the time of the check, return its HostReport (pure: no I/O).

    Every problem and warning is also a check result (``HostReport.checks``), next to the ok results
    of the checks that passed, in the order they were judged.
    """
    host = facts.host
    now = _utc(now) or now
    problems: list[Problem] = list(facts.errors)
    warnings: list[str] = []
    results: list[CheckResult] = [problem.result() for problem in facts.errors]
    policy = host.backups
    values = facts.values

    def fail(problem: Problem, **check_facts: Any) -> None:
        problems.append(problem)
        results.append(problem.result(check_facts))

    def warn(check: str, message: str, **check_facts: Any) -> None:
        warnings.append(message)
        results.append(CheckResult(check, WARNING, message, check_facts))

    backups_enabled: bool | None = None
    if "instance" in values:
        instance_facts: InstanceFacts = values["instance"]
        backups_enabled = instance_facts.backups_enabled
        if backups_enabled is False:
            fail(Problem("missing", "automatic backups are off: 'auto_backups' is not in the instance features",
                         "auto_backups"), enabled=False)
        elif backups_enabled is None:
            # Not "off", not "on": the outcome is unknown (exit 4), never a pass. Vultr answers a
            # locked instance (e.g. while a backup runs) with HTTP 500 and no features.
            why = (
                "the instance is locked by another provider action" if instance_facts.locked else "the API does not say"
            )
            fail(Problem("unreachable", f"cannot tell whether automatic backups are on: {why}; try again later",
                         "auto_backups"), enabled=None)
        else:
            results.append(CheckResult("auto_backups", OK, "automatic backups are on", {"enabled": True}))

    schedule: BackupSchedule | None = values.get("schedule")
    if "schedule" in values and policy is not None:
        expected = {"expected": policy.schedule}
        if schedule is None:
            fail(Problem("missing", "the provider returned no backup schedule", "schedule"), **expected)
        elif not schedule.enabled:
            fail(Problem("missing", f"backup schedule is disabled (inventory expects {policy.schedule})", "schedule"),
                 enabled=False, type=schedule.kind, **expected)
        elif schedule.kind not in ACCEPTED_SCHEDULES.get(policy.schedule, frozenset()):
            note = " (runs every other day)" if (schedule.kind or "").startswith("daily_alt") else ""
            fail(Problem("missing", f"backup schedule is {schedule.kind or 'unknown'}{note}, inventory expects {policy.schedule}",
                         "schedule"), enabled=True, type=schedule.kind, **expected)
        else:
            results.append(CheckResult("schedule", OK, f"backup schedule is {schedule.kind} (inventory expects {policy.schedule})",
                                       {"enabled": True, "type": schedule.kind, **expected}))

    newest_at: datetime | None = None
    newest_age: float | None = None
    count: int | None = None
    if "backups" in values and policy is not None:
        listed: tuple[BackupInfo, ...] = values["backups"]
        complete = [backup for backup in listed if backup.complete]
        count = len(complete)
        dated = [moment for moment in (_utc(backup.created_at) for backup in complete) if moment is not None]
        counted = {"count": count, "max_age_seconds": policy.max_age}
        if not complete:
            pending = len(listed) - len(complete)
            detail = f" ({pending} not complete yet)" if pending else ""
            fail(Problem("missing", f"no complete backup found{detail}", "backups"), **counted)
        elif not dated:
            fail(Problem("stale", f"{count} backups but none has a creation date: cannot tell how old they are", "backups"),
                 **counted)
        else:
            newest_at = max(dated)
            newest_age = (now - newest_at).total_seconds()
            dated_facts = {**counted, "newest_at": iso(newest_at), "newest_age_seconds": newest_age}
            if newest_age > policy.max_age:
                fail(Problem("stale", f"newest backup is {format_duration(newest_age)} old (max {policy.max_age_text}), "
                             f"taken {iso(newest_at)}", "backups"), **dated_facts)
            elif newest_age < -FUTURE_TOLERANCE_SECONDS:
                warn("backups", f"newest backup is dated {format_duration(-newest_age)} in the future (clock skew?)",
                     **dated_facts)
            else:
                results.append(CheckResult("backups", OK, f"newest backup is {format_duration(max(0.0, newest_age))} old "
                                           f"(max {policy.max_age_text}), {count} complete", dated_facts))

    snapshot: SnapshotInfo | None = values.get("snapshot")
    expires_in: float | None = None
    if snapshot is not None:
        expires_at = _utc(snapshot.expires_at)
        snapshot_facts = {"id": snapshot.snapshot_id, "expires_at": iso(expires_at)}
        if expires_at is not None:
            expires_in = (expires_at - now).total_seconds()
        if expires_in is not None and expires_in <= 0:
            warn("snapshot", f"current snapshot {snapshot.snapshot_id} expired {iso(expires_at)} (a warning, not a failure)",
                 **snapshot_facts)
        elif expires_in is not None and expires_in <= SNAPSHOT_WARN_SECONDS:
            warn("snapshot", f"current snapshot {snapshot.snapshot_id} expires in {format_duration(expires_in)} "
                 f"at {iso(expires_at)} (a warning, not a failure)", **snapshot_facts)
        else:
            when = f"expires {iso(expires_at)}" if expires_at is not None else "has no expiry date"
            results.append(CheckResult("snapshot", OK, f"current snapshot {snapshot.snapshot_id} {when}", snapshot_facts))

    exit_code = worst_exit_code([problem.exit_code for problem in problems])
    if problems:
        status = max(
            (problem.kind for problem in problems if problem.exit_code == exit_code), key=_STATUS_RANK.__getitem__
        )
    else:
        status = "warn" if warnings else "ok"
    return HostReport(
        host=host.name,
        provider=host.provider,
        instance=host.instance,
        status=status,
        exit_code=exit_code,
        problems=tuple(problem.message for problem in problems),
        warnings=tuple(warnings),
        max_age_seconds=policy.max_age if policy else None,
        backups_enabled=backups_enabled,
        newest_backup_at=newest_at,
        newest_backup_age_seconds=newest_age,
        backup_count=count,
        schedule=schedule,
        expected_schedule=policy.schedule if policy else None,
        snapshot=snapshot,
        snapshot_expires_in_seconds=expires_in,
        checks=tuple(results),
    )


def check_backups(
    hosts: Sequence[Host],
    provider_for: Callable[[Host], Provider],
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    clock: Callable[[], datetime] | None = None,
) -> BackupReport:
    """Given hosts and a provider factory, return the BackupReport of a whole run.

    Reads only (see ReadOnlyProvider); never raises for a host's problem; returns within about
    ``deadline_seconds``.
    """
    facts = gather_facts(hosts, provider_for, deadline_seconds=deadline_seconds, concurrency=concurrency)
    now = _utc((clock or _now)()) or datetime.now(UTC)
    return BackupReport(checked_at=now, hosts=tuple(evaluate_host(item, now) for item in facts))


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# report


def iso(moment: datetime | None) -> str | None:
    """Given a datetime (naive = UTC), return it as "YYYY-MM-DDTHH:MM:SSZ", or None."""
    return _report_iso(moment)


def host_to_json(report: HostReport) -> dict[str, Any]:
    """Given a HostReport, return its backup-check fields (version 1's host record; see the module docstring)."""
    schedule = None
    if report.schedule is not None:
        schedule = {
            "enabled": report.schedule.enabled,
            "type": report.schedule.kind,
            "expected": report.expected_schedule,
            "next_run": iso(report.schedule.next_run),
        }
    snapshot = None
    if report.snapshot is not None:
        snapshot = {
            "id": report.snapshot.snapshot_id,
            "created_at": iso(report.snapshot.created_at),
            "expires_at": iso(report.snapshot.expires_at),
            "expires_in_seconds": _rounded(report.snapshot_expires_in_seconds),
        }
    return {
        "host": report.host,
        "provider": report.provider,
        "instance": report.instance,
        "status": report.status,
        "exit_code": report.exit_code,
        "problems": list(report.problems),
        "warnings": list(report.warnings),
        "max_age_seconds": report.max_age_seconds,
        "backups_enabled": report.backups_enabled,
        "newest_backup_at": iso(report.newest_backup_at),
        "newest_backup_age_seconds": report.newest_backup_age_seconds,
        "backup_count": report.backup_count,
        "schedule": schedule,
        "snapshot": snapshot,
    }


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 1) if seconds is not None else None


def host_result(report: HostReport) -> HostResult:
    """Given a HostReport, return it in the shared report model (its status word and version-1 fields kept)."""
    return HostResult(host=report.host, checks=report.checks, status=report.status, details=host_to_json(report))


def to_report(report: BackupReport) -> Report:
    """Given a BackupReport, return it in the shared report model (what every output is made from)."""
    return Report(command="backup-check", checked_at=report.checked_at,
                  hosts=tuple(host_result(host) for host in report.hosts))


def report_to_json(report: BackupReport) -> dict[str, Any]:
    """Given a BackupReport, return the version-2 JSON document (see the module docstring)."""
    return report_document(to_report(report))


def problem_lines(report: BackupReport) -> list[str]:
    """Given a report, return one line per problem or warning, each naming its host.

    e.g. ``chat: newest backup is 31h old (max 26h), taken 2026-11-26T20:00:00Z``,
    ``chat2: warning: current snapshot 8812 expires in 2d ... (a warning, not a failure)``.
    """
    return _report_problem_lines(to_report(report))


def _age_cell(host: HostReport) -> str:
    age = format_duration(host.newest_backup_age_seconds) if host.newest_backup_age_seconds is not None else "-"
    if host.newest_backup_age_seconds is not None and host.newest_backup_age_seconds < 0:
        age = "future"
    if host.max_age_seconds is not None and host.newest_backup_age_seconds is not None:
        age += f" / {format_duration(host.max_age_seconds)}"
    return age


def _schedule_cell(host: HostReport) -> str:
    if host.schedule is None:
        return "-"
    return (host.schedule.kind or "unknown") if host.schedule.enabled else "disabled"


def _expiry_cell(host: HostReport) -> str:
    if host.snapshot_expires_in_seconds is not None:
        seconds = host.snapshot_expires_in_seconds
        return f"in {format_duration(seconds)}" if seconds > 0 else "expired"
    return "unknown" if host.snapshot is not None else "-"


def render_table(report: BackupReport) -> str:
    """Given a report, return the terminal table: one row per host, the reasons in the last column."""
    by_name = {host.host: host for host in report.hosts}
    columns = [
        ("PROVIDER", lambda result: by_name[result.host].provider),
        ("NEWEST / MAX", lambda result: _age_cell(by_name[result.host])),
        ("COUNT", lambda result: str(by_name[result.host].backup_count) if by_name[result.host].backup_count is not None else "-"),
        ("SCHEDULE", lambda result: _schedule_cell(by_name[result.host])),
        ("SNAPSHOT EXPIRES", lambda result: _expiry_cell(by_name[result.host])),
    ]
    return _report_table(to_report(report), columns)


def summary_line(report: BackupReport) -> str:
    """Given a report, return one line such as "backup-check: 3 hosts: 1 stale, 2 ok; exit 1" (for health pings)."""
    return _report_summary(to_report(report), _STATUS_RANK)


def hosts_to_check(all_hosts: Mapping[str, Host], names: Iterable[str], lookup: Callable[[str], Host]) -> list[Host]:
    """Given the inventory's hosts, the names asked for (empty = all) and a lookup that raises
    ConfigError for an unknown name, return the hosts to check without duplicates, in order."""
    chosen: list[Host] = []
    for name in names:
        host = lookup(name)
        if host not in chosen:
            chosen.append(host)
    return chosen or list(all_hosts.values())


_NULLABLE_NUMBER = {"type": ["number", "null"]}
REPORT_SCHEMA: dict[str, Any] = report_schema(
    "opsguard backup-check report",
    statuses=list(STATUS_EXIT_CODES),
    host_required=[
        "provider",
        "instance",
        "max_age_seconds",
        "backups_enabled",
        "newest_backup_at",
        "newest_backup_age_seconds",
        "backup_count",
        "schedule",
        "snapshot",
    ],
    host_properties={
        "provider": {"enum": ["vultr", "hostinger"]},
        "instance": {"type": ["string", "integer", "null"]},
        "max_age_seconds": _NULLABLE_NUMBER,
        "backups_enabled": {"type": ["boolean", "null"]},
        "newest_backup_at": {"type": ["string", "null"]},
        "newest_backup_age_seconds": _NULLABLE_NUMBER,
        "backup_count": {"type": ["integer", "null"], "minimum": 0},
        "schedule": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["enabled", "type", "expected", "next_run"],
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "type": {"type": ["string", "null"]},
                        "expected": {"type": ["string", "null"]},
                        "next_run": {"type": ["string", "null"]},
                    },
                },
            ]
        },
        "snapshot": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["id", "created_at", "expires_at", "expires_in_seconds"],
                    "properties": {
                        "id": {"type": "string"},
                        "created_at": {"type": ["string", "null"]},
                        "expires_at": {"type": ["string", "null"]},
                        "expires_in_seconds": _NULLABLE_NUMBER,
                    },
                },
            ]
        },
    },
)
