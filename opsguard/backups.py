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

JSON report (``--json``; version 1 — fields are only ever added, never renamed or removed)
-----------------------------------------------------------------------------------------
::

    {
      "version": 1,
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
          }
        }
      ]
    }

``REPORT_SCHEMA`` below is the same contract as a JSON Schema (the tests validate against it).
No token ever appears in a report: messages are built from provider answers and inventory values.
"""

from __future__ import annotations

import contextlib
import queue
import threading
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
    OutcomeUnknown,
    ProviderError,
    ReadOnlyViolation,
    worst_exit_code,
)
from opsguard.inventory import Host
from opsguard.providers.base import BackupInfo, BackupSchedule, InstanceFacts, Provider, SnapshotInfo

REPORT_VERSION = 1
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

# What is read for each provider. Only reads: the wrapper below refuses anything else.
FACTS_BY_PROVIDER: Mapping[str, tuple[str, ...]] = {
    "vultr": ("instance", "schedule", "backups"),
    "hostinger": ("backups", "snapshot"),
}
_FACT_ACTIONS = {
    "instance": "reading the instance",
    "schedule": "reading the backup schedule",
    "backups": "listing backups",
    "snapshot": "reading the current snapshot",
}


class BackupCheckRunning(OutcomeUnknown):
    """Another backup-check holds the run lock: this run checked nothing. Exit 4."""


@dataclass(frozen=True)
class Problem:
    """One reason a host is not ok: its status kind, a one-line message (no host prefix), exit code."""

    kind: str
    message: str

    @property
    def exit_code(self) -> int:
        return STATUS_EXIT_CODES[self.kind]


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


@dataclass(frozen=True)
class HostJob:
    """The reads of one host: (key, call) pairs, run in parallel with each other."""

    host: str
    reads: tuple[tuple[tuple[str, str], Callable[[], Any]], ...]


def run_bounded(jobs: Sequence[HostJob], workers: int, timeout: float) -> dict[tuple[str, str], tuple[bool, Any]]:
    """Given host jobs, how many hosts to work on at once and a timeout in seconds, run every read
    on daemon threads and return {key: (succeeded, value or exception)} for the reads that
    finished in time. At most ``workers`` hosts are in progress at once; a host's reads run in
    parallel, so at most ``workers`` x (reads per host) requests are in flight.

    Daemon threads on purpose: a call stuck past the deadline is abandoned and cannot keep the
    process alive (a ThreadPoolExecutor would be joined at exit and could hang the run).
    """
    results: dict[tuple[str, str], tuple[bool, Any]] = {}
    total = sum(len(job.reads) for job in jobs)
    if total == 0:
        return results
    pending: queue.SimpleQueue[HostJob] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    lock = threading.Lock()
    done = threading.Event()
    stop = threading.Event()

    def read(key: tuple[str, str], call: Callable[[], Any]) -> None:
        try:
            outcome: tuple[bool, Any] = (True, call())
        except BaseException as error:  # every failure becomes a problem of its host
            outcome = (False, error)
        with lock:
            if not stop.is_set():
                results[key] = outcome
                if len(results) == total:
                    done.set()

    def worker() -> None:
        while not stop.is_set():
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            if not job.reads:
                continue
            helpers = [
                threading.Thread(target=read, args=item, name=f"backup-check-{job.host}", daemon=True)
                for item in job.reads[1:]
            ]
            for helper in helpers:
                helper.start()
            read(*job.reads[0])
            for helper in helpers:
                helper.join()

    for number in range(max(1, min(workers, len(jobs)))):
        threading.Thread(target=worker, name=f"backup-check-worker-{number}", daemon=True).start()
    done.wait(timeout)
    with lock:
        stop.set()  # late answers are dropped: the report must not change after the deadline
        return dict(results)


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
    jobs: list[HostJob] = []
    clients: list[Any] = []
    for host in hosts:
        problems: list[Problem] = []
        prepared[host.name] = problems
        try:
            instance = host.require_instance()
            if host.backups is None:
                raise ConfigError(f"{host.source}: hosts.{host.name}.backups is not set (add schedule and max_age)")
            if host.provider not in FACTS_BY_PROVIDER:
                raise ConfigError(f"{host.source}: hosts.{host.name}.provider: {host.provider!r} is not supported")
            client = provider_for(host)
            clients.append(client)
            provider = ReadOnlyProvider(client)
        except Exception as error:  # a host's set-up problem must not stop the other hosts
            problems.append(problem_from_error(error))
            continue
        reads = tuple(((host.name, fact), _bind(provider, fact, instance)) for fact in FACTS_BY_PROVIDER[host.provider])
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
            for fact in FACTS_BY_PROVIDER[host.provider]:
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
    """Given a host's facts and the time of the check, return its HostReport (pure: no I/O)."""
    host = facts.host
    now = _utc(now) or now
    problems: list[Problem] = list(facts.errors)
    warnings: list[str] = []
    policy = host.backups
    values = facts.values

    backups_enabled: bool | None = None
    if "instance" in values:
        instance_facts: InstanceFacts = values["instance"]
        backups_enabled = instance_facts.backups_enabled
        if backups_enabled is False:
            problems.append(
                Problem("missing", "automatic backups are off: 'auto_backups' is not in the instance features")
            )
        elif backups_enabled is None:
            # Not "off", not "on": the outcome is unknown (exit 4), never a pass. Vultr answers a
            # locked instance (e.g. while a backup runs) with HTTP 500 and no features.
            why = (
                "the instance is locked by another provider action" if instance_facts.locked else "the API does not say"
            )
            problems.append(
                Problem("unreachable", f"cannot tell whether automatic backups are on: {why}; try again later")
            )

    schedule: BackupSchedule | None = values.get("schedule")
    if "schedule" in values and policy is not None:
        if schedule is None:
            problems.append(Problem("missing", "the provider returned no backup schedule"))
        elif not schedule.enabled:
            problems.append(Problem("missing", f"backup schedule is disabled (inventory expects {policy.schedule})"))
        elif schedule.kind not in ACCEPTED_SCHEDULES.get(policy.schedule, frozenset()):
            note = " (runs every other day)" if (schedule.kind or "").startswith("daily_alt") else ""
            problems.append(
                Problem(
                    "missing",
                    f"backup schedule is {schedule.kind or 'unknown'}{note}, inventory expects {policy.schedule}",
                )
            )

    newest_at: datetime | None = None
    newest_age: float | None = None
    count: int | None = None
    if "backups" in values and policy is not None:
        listed: tuple[BackupInfo, ...] = values["backups"]
        complete = [backup for backup in listed if backup.complete]
        count = len(complete)
        dated = [moment for moment in (_utc(backup.created_at) for backup in complete) if moment is not None]
        if not complete:
            pending = len(listed) - len(complete)
            detail = f" ({pending} not complete yet)" if pending else ""
            problems.append(Problem("missing", f"no complete backup found{detail}"))
        elif not dated:
            problems.append(
                Problem("stale", f"{count} backups but none has a creation date: cannot tell how old they are")
            )
        else:
            newest_at = max(dated)
            newest_age = (now - newest_at).total_seconds()
            if newest_age > policy.max_age:
                problems.append(
                    Problem(
                        "stale",
                        f"newest backup is {format_duration(newest_age)} old (max {policy.max_age_text}), "
                        f"taken {iso(newest_at)}",
                    )
                )
            elif newest_age < -FUTURE_TOLERANCE_SECONDS:
                warnings.append(f"newest backup is dated {format_duration(-newest_age)} in the future (clock skew?)")

    snapshot: SnapshotInfo | None = values.get("snapshot")
    expires_in: float | None = None
    if snapshot is not None and snapshot.expires_at is not None:
        expires_at = _utc(snapshot.expires_at)
        assert expires_at is not None
        expires_in = (expires_at - now).total_seconds()
        if expires_in <= 0:
            warnings.append(
                f"current snapshot {snapshot.snapshot_id} expired {iso(expires_at)} (a warning, not a failure)"
            )
        elif expires_in <= SNAPSHOT_WARN_SECONDS:
            warnings.append(
                f"current snapshot {snapshot.snapshot_id} expires in {format_duration(expires_in)} "
                f"at {iso(expires_at)} (a warning, not a failure)"
            )

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
    moment = _utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def host_to_json(report: HostReport) -> dict[str, Any]:
    """Given a HostReport, return its JSON record (see the module docstring)."""
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


def report_to_json(report: BackupReport) -> dict[str, Any]:
    """Given a BackupReport, return the version-1 JSON document (see the module docstring)."""
    return {
        "version": REPORT_VERSION,
        "checked_at": iso(report.checked_at),
        "exit_code": report.exit_code,
        "hosts": [host_to_json(host) for host in report.hosts],
    }


def problem_lines(report: BackupReport) -> list[str]:
    """Given a report, return one line per problem or warning, each naming its host.

    e.g. ``chat: newest backup is 31h old (max 26h), taken 2026-11-26T20:00:00Z``,
    ``chat2: warning: current snapshot 8812 expires in 2d ... (a warning, not a failure)``.
    """
    lines: list[str] = []
    for host in report.hosts:
        lines.extend(f"{host.host}: {message}" for message in host.problems)
        lines.extend(f"{host.host}: warning: {message}" for message in host.warnings)
    return lines


def render_table(report: BackupReport) -> str:
    """Given a report, return the terminal table: one row per host, the reasons in the last column."""
    from opsguard.output import table

    rows: list[list[str]] = []
    for host in report.hosts:
        age = format_duration(host.newest_backup_age_seconds) if host.newest_backup_age_seconds is not None else "-"
        if host.newest_backup_age_seconds is not None and host.newest_backup_age_seconds < 0:
            age = "future"
        if host.max_age_seconds is not None and host.newest_backup_age_seconds is not None:
            age += f" / {format_duration(host.max_age_seconds)}"
        schedule = "-"
        if host.schedule is not None:
            schedule = (host.schedule.kind or "unknown") if host.schedule.enabled else "disabled"
        expiry = "-"
        if host.snapshot_expires_in_seconds is not None:
            seconds = host.snapshot_expires_in_seconds
            expiry = f"in {format_duration(seconds)}" if seconds > 0 else "expired"
        elif host.snapshot is not None:
            expiry = "unknown"
        reasons = [*host.problems, *(f"warning: {message}" for message in host.warnings)]
        rows.append(
            [
                host.host,
                host.provider,
                age,
                str(host.backup_count) if host.backup_count is not None else "-",
                schedule,
                expiry,
                host.status.upper() if host.status != "ok" else "ok",
                "; ".join(reasons) or "-",
            ]
        )
    return table(
        rows, ["HOST", "PROVIDER", "NEWEST / MAX", "COUNT", "SCHEDULE", "SNAPSHOT EXPIRES", "STATUS", "REASON"]
    )


def summary_line(report: BackupReport) -> str:
    """Given a report, return one line such as "3 hosts: 2 ok, 1 stale" (for health pings)."""
    counts: dict[str, int] = {}
    for host in report.hosts:
        counts[host.status] = counts.get(host.status, 0) + 1
    parts = ", ".join(
        f"{number} {status}" for status, number in sorted(counts.items(), key=lambda item: -_STATUS_RANK[item[0]])
    )
    return f"backup-check: {len(report.hosts)} hosts: {parts or 'none'}; exit {report.exit_code}"


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
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "opsguard backup-check report",
    "type": "object",
    "required": ["version", "checked_at", "exit_code", "hosts"],
    "properties": {
        "version": {"const": REPORT_VERSION},
        "checked_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "exit_code": {"enum": [0, 1, 4, 78, 70]},
        "hosts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "host",
                    "provider",
                    "instance",
                    "status",
                    "exit_code",
                    "problems",
                    "warnings",
                    "max_age_seconds",
                    "backups_enabled",
                    "newest_backup_at",
                    "newest_backup_age_seconds",
                    "backup_count",
                    "schedule",
                    "snapshot",
                ],
                "properties": {
                    "host": {"type": "string"},
                    "provider": {"enum": ["vultr", "hostinger"]},
                    "instance": {"type": ["string", "integer", "null"]},
                    "status": {"enum": list(STATUS_EXIT_CODES)},
                    "exit_code": {"enum": [0, 1, 4, 78, 70]},
                    "problems": {"type": "array", "items": {"type": "string"}},
                    "warnings": {"type": "array", "items": {"type": "string"}},
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
            },
        },
    },
}
