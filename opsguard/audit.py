"""`opsguard audit`: changes made on a host outside a guarded window, and settings that will make more.

The runbook's rule is "before ANY change, a verified snapshot". opsguard enforces it for its own
runs; this finds the others. For each host, ONE read-only probe script (opsguard/probes.py) reads:

- the host's clock (logs are written in local time) and the history of guarded runs
  (opsguard/history.py: each run's window, from its verified snapshot to its end);
- traces of a change since ``since``: apt runs (``history.log``, unattended-upgrades included, with
  the package count) and dpkg actions outside them (``dpkg.log``), the boot time (a reboot), pm2
  processes (re)started (``pm_uptime``), containers created / recreated / restarted and image
  changes (``docker inspect``), files changed in the code trees (the Zpro app dir or the compose
  dir; logs, media and node_modules left out), crontabs and ``authorized_keys`` files changed;
- settings that guarantee future unguarded changes: unattended-upgrades enabled, the apt timers
  active, needrestart restarting services by itself — each reported with the exact command that
  turns it off (through ``opsguard exec``, so that change is guarded too).

Each trace is compared with the guarded windows: inside one (within ``window_slack_for``) it is
fine; outside it is a failed check, e.g. ``2026-12-01 06:25 apt upgraded 14 packages
(unattended-upgrades) — no snapshot``. A settings finding is a warning. The host's state is
unknown (exit 4) when it cannot be read; a history that exists but cannot be read makes every
trace "cannot tell" (unknown) rather than guessing.

This module is pure: the script builder and the evaluation do no I/O (the command runs them).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsguard.errors import ConfigError
from opsguard.history import (
    GuardedWindow,
    HistoryUnreadable,
    covering_window,
    guarded_windows,
    history_read_command,
    parse_history,
    parse_time,
)
from opsguard.inventory import Host
from opsguard.playbooks.common import name_param, number_param, path_param
from opsguard.probes import (
    CLOCK,
    ContainerInfo,
    HostClock,
    Section,
    SectionOutput,
    containers_probe,
    parse_clock,
    parse_containers,
    parse_pm2,
    pm2_probe,
    script,
)
from opsguard.report import FAILED, OK, UNKNOWN, WARNING, CheckResult, HostResult, iso

quote = shlex.quote
EVENT = "audit"  # the ledger event one audited host leaves (what the next audit starts from)

COMMAND_NAME = "audit"
VARS: dict[str, Any] = {
    "deploy_user": "deployzdg",  # pm2 runs as this user on Zpro hosts
    "app_dir": "/home/deployzdg/zpro.io",  # the code tree of a Zpro host (role zpro)
    "compose_dir": "/opt/stack",  # the code tree of an integrations host (role integrations)
    "extra_code_dirs": [],  # other trees to watch, e.g. a second instance /home/deployzdg/loja/zpro.io
    "code_exclude": ["node_modules", ".git", "logs", "public", ".cache", "tmp"],  # names left out (logs, media)
    "code_files_listed": 200,  # changed files read back by name per tree (the others as counts per minute)
    "apt_log_dir": "/var/log/apt",
    "dpkg_log": "/var/log/dpkg.log",
    "proc_stat_file": "/proc/stat",  # its btime line is the boot time
    "cron_paths": ["/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly",
                   "/etc/cron.monthly", "/var/spool/cron/crontabs"],
    "ssh_key_dirs": ["/root/.ssh", "/home/*/.ssh"],  # where authorized_keys files live (* allowed)
    "apt_conf_dir": "/etc/apt/apt.conf.d",
    "needrestart_conf_dir": "/etc/needrestart",
    "os_release_file": "/etc/os-release",
    "audit_first_for": 93600.0,  # seconds looked back when no earlier audit of the host is recorded (26 h)
    "window_slack_for": 120.0,  # seconds of clock difference allowed around a guarded window
    "open_run_window_for": 21600.0,  # seconds a run without an end entry counts as guarded (6 h)
}

APT_ACTIONS = {"Install": "installed", "Upgrade": "upgraded", "Remove": "removed", "Purge": "purged",
               "Downgrade": "downgraded", "Reinstall": "reinstalled"}  # fmt: skip
DPKG_ACTIONS = ("install", "upgrade", "remove", "purge")
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
BOOT_SETTLE = timedelta(minutes=10)  # pm2 and containers starting this soon after a boot came with the boot
_GLOB_PATH = re.compile(r"/[A-Za-z0-9@%+=:,./_*-]*")
_PACKAGE = re.compile(r"([^\s,()]+) \(")


@dataclass(frozen=True)
class AuditParams:
    """The checked vars of one host."""

    code_dirs: tuple[str, ...]
    code_exclude: tuple[str, ...]
    code_files_listed: int
    deploy_user: str | None  # None: not a Zpro host (no pm2)
    apt_log_dir: str
    dpkg_log: str
    proc_stat_file: str
    cron_paths: tuple[str, ...]
    ssh_key_dirs: tuple[str, ...]
    apt_conf_dir: str
    needrestart_conf_dir: str
    os_release_file: str
    remote_state: str
    first_for: float
    slack: float
    open_for: float


def audit_params(host: Host, params: Mapping[str, Any]) -> AuditParams:
    """Given a host and its params (VARS overlaid by its inventory vars), return them checked; raise ConfigError if one is bad."""
    code_dirs: list[str] = []
    if "zpro" in host.roles:
        code_dirs.append(path_param(params, "app_dir"))
    if "integrations" in host.roles:
        code_dirs.append(path_param(params, "compose_dir"))
    code_dirs += _paths(params, "extra_code_dirs", allow_empty=True)
    excluded = params.get("code_exclude")
    if not isinstance(excluded, list) or not all(isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9._-]+", name)
                                                 for name in excluded):
        raise ConfigError(f"param code_exclude: must be a list of file or directory names (got {excluded!r})")
    return AuditParams(
        code_dirs=tuple(dict.fromkeys(code_dirs)),
        code_exclude=tuple(excluded),
        code_files_listed=int(number_param(params, "code_files_listed", minimum=1)),
        deploy_user=name_param(params, "deploy_user") if "zpro" in host.roles else None,
        apt_log_dir=path_param(params, "apt_log_dir"),
        dpkg_log=path_param(params, "dpkg_log"),
        proc_stat_file=path_param(params, "proc_stat_file"),
        cron_paths=tuple(_paths(params, "cron_paths", allow_empty=True)),
        ssh_key_dirs=tuple(_paths(params, "ssh_key_dirs", allow_empty=True)),
        apt_conf_dir=path_param(params, "apt_conf_dir"),
        needrestart_conf_dir=path_param(params, "needrestart_conf_dir"),
        os_release_file=path_param(params, "os_release_file"),
        remote_state=host.remote_state,
        first_for=number_param(params, "audit_first_for", minimum=60),
        slack=number_param(params, "window_slack_for"),
        open_for=number_param(params, "open_run_window_for"),
    )


def _paths(params: Mapping[str, Any], key: str, *, allow_empty: bool) -> list[str]:
    """Given params and a key holding absolute paths (``*`` allowed: the host's shell expands it), return them."""
    values = params.get(key)
    if not isinstance(values, list) or (not values and not allow_empty):
        raise ConfigError(f"param {key}: must be a list of absolute paths (got {values!r})")
    for value in values:
        if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/") or "\n" in value:
            raise ConfigError(f"param {key}: {value!r} must be an absolute path without '..'")
        if "*" in value and not _GLOB_PATH.fullmatch(value):
            # Left unquoted for the host's shell to expand: only plain characters besides the *.
            raise ConfigError(f"param {key}: {value!r}: a path with * may hold only letters, digits, @%+=:,./_- and *")
    return list(values)


def _words(paths: Iterable[str]) -> str:
    # Quoted unless they hold a *, which the host's shell must expand (their characters are checked above).
    return " ".join(path if "*" in path else quote(path) for path in paths)


# -- the probe script -----------------------------------------------------------------------------------


def build_script(settings: AuditParams, since: datetime, nonce: str) -> str:
    """Given a host's audit params, the time to look back to (UTC) and the marker nonce, return its probe script."""
    return script(probe_sections(settings, since), nonce)


def probe_sections(settings: AuditParams, since: datetime) -> list[Section]:
    """Given a host's audit params and the time to look back to, return the sections of its probe (all read-only)."""
    epoch = int(since.timestamp())
    # Logs are in local time: read from the day before (any zone), the exact cut is made here.
    day = (since - timedelta(days=1)).strftime("%Y-%m-%d")
    apt_files = [f"{settings.apt_log_dir}/history.log.1.gz", f"{settings.apt_log_dir}/history.log.1",
                 f"{settings.apt_log_dir}/history.log"]
    dpkg_files = [f"{settings.dpkg_log}.1", settings.dpkg_log]
    sections = [
        Section("clock", CLOCK),
        Section("history", history_read_command(settings.remote_state)),
        Section("apt", f"for f in {_words(apt_files)}; do if [ -f \"$f\" ]; then zcat -f -- \"$f\"; fi; done"
                       f" | awk -v since={day} '$0 ~ \"^Start-Date:\" {{keep = ($2 >= since)}} keep {{print}}'"),
        Section("dpkg", f"for f in {_words(dpkg_files)}; do if [ -f \"$f\" ]; then cat -- \"$f\"; fi; done"
                        f" | awk -v since={day} '$1 >= since && ($3 == \"install\" || $3 == \"upgrade\" || "
                        f"$3 == \"remove\" || $3 == \"purge\")'"),
        Section("boot", f"grep '^btime ' {quote(settings.proc_stat_file)}"),
        Section("containers", containers_probe()),
    ]
    if settings.deploy_user is not None:
        sections.append(Section("pm2", pm2_probe(settings.deploy_user)))
    pruned = " -o ".join(f"-name {quote(name)}" for name in settings.code_exclude)
    prune = f"\\( {pruned} \\) -prune -o " if pruned else ""
    for index, directory in enumerate(settings.code_dirs):
        sections.append(Section(
            f"code:{index}",
            # The first files by name, the rest as counts per minute: every mtime is judged, the output stays small.
            f"find {quote(directory)} -xdev {prune}-newermt @{epoch} -printf '%T@ %y %p\\n' 2>/dev/null"
            f" | awk 'NR <= {settings.code_files_listed} {{print; next}} {{c[int($1 / 60)]++}} "
            f"END {{for (m in c) print \"minute\", m, c[m]}}'",
        ))
    if settings.cron_paths:
        sections.append(Section("cron", f"find {_words(settings.cron_paths)} -maxdepth 1 -newermt @{epoch} "
                                        "-printf '%T@ %y %p\\n' 2>/dev/null; true"))
    if settings.ssh_key_dirs:
        sections.append(Section("ssh_keys", f"find {_words(settings.ssh_key_dirs)} -maxdepth 1 -name 'authorized_keys*' "
                                            f"-newermt @{epoch} -printf '%T@ %y %p\\n' 2>/dev/null; true"))
    sections += [
        Section("apt_periodic", f"grep -rs 'APT::Periodic::' {quote(settings.apt_conf_dir)}; true"),
        Section("apt_timers", f"systemctl show -p Id -p UnitFileState -p ActiveState {' '.join(APT_TIMERS)}"),
        Section("needrestart", f"if [ -d {quote(settings.needrestart_conf_dir)} ]; then "
                               f"grep -s 'nrconf{{restart}}' {quote(settings.needrestart_conf_dir + '/needrestart.conf')} "
                               f"{quote(settings.needrestart_conf_dir)}/conf.d/*.conf; true; else echo OPSGUARD_NO_NEEDRESTART; fi"),
        Section("os_release", f"cat {quote(settings.os_release_file)}"),
    ]
    return sections


# -- parsers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptRun:
    """One apt run of history.log: local start and end (no zone), its command line and package actions."""

    start: datetime
    end: datetime | None
    commandline: str
    requested_by: str
    actions: Mapping[str, tuple[str, ...]]

    @property
    def package_count(self) -> int:
        """Return how many packages the run changed."""
        return sum(len(names) for names in self.actions.values())

    @property
    def unattended(self) -> bool:
        """Return whether unattended-upgrades ran it."""
        return "unattended-upgrade" in self.commandline

    def describe(self) -> str:
        """Return e.g. "apt upgraded 14 packages (unattended-upgrades)"."""
        counts = [(APT_ACTIONS[key], len(names)) for key, names in self.actions.items() if names]
        total = self.package_count
        if len(counts) == 1:
            verb, number = counts[0]
            text = f"apt {verb} {number} package{'s' if number != 1 else ''}"
        else:
            text = f"apt changed {total} packages ({', '.join(f'{verb} {number}' for verb, number in counts)})"
        if self.unattended:
            source = "unattended-upgrades"
        else:
            command = self.commandline if len(self.commandline) <= 60 else self.commandline[:57] + "..."
            source = command or "no command line"
            if self.requested_by:
                source += f", by {self.requested_by}"
        return f"{text} ({source})"


def _local_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(" ".join(text.split()), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def parse_apt_history(text: str) -> list[AptRun]:
    """Given history.log text, return its runs that changed packages, oldest first (blocks without a start skipped)."""
    runs: list[AptRun] = []
    block: dict[str, str] = {}

    def finish() -> None:
        start = _local_time(block.get("Start-Date", ""))
        actions = {key: tuple(_PACKAGE.findall(block.get(key, ""))) for key in APT_ACTIONS}
        if start is not None and any(actions.values()):
            runs.append(AptRun(start, _local_time(block.get("End-Date", "")), block.get("Commandline", ""),
                               block.get("Requested-By", ""), actions))

    for line in text.splitlines():
        if line.startswith("Start-Date:") and block:
            finish()
            block = {}
        key, separator, value = line.partition(":")
        if separator and key in (*APT_ACTIONS, "Start-Date", "End-Date", "Commandline", "Requested-By"):
            block[key] = value.strip()
    if block:
        finish()
    return runs


@dataclass(frozen=True)
class DpkgAction:
    """One dpkg.log action: local time, action (install | upgrade | remove | purge) and package."""

    at: datetime
    action: str
    package: str


def parse_dpkg_log(text: str) -> list[DpkgAction]:
    """Given dpkg.log lines, return the package actions, in order (other lines skipped)."""
    actions = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in DPKG_ACTIONS:
            moment = _local_time(f"{parts[0]} {parts[1]}")
            if moment is not None:
                actions.append(DpkgAction(moment, parts[2], parts[3]))
    return actions


def parse_boot_time(text: str) -> datetime | None:
    """Given the ``btime`` line of /proc/stat, return the boot time (UTC), or None."""
    match = re.search(r"^btime\s+(\d+)\s*$", text, re.MULTILINE)
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else None


@dataclass(frozen=True)
class ChangedFile:
    """A file (or directory, link) whose mtime is after ``since``."""

    at: datetime
    kind: str  # find's %y: f file, d directory, l link
    path: str


def parse_changed_files(text: str) -> tuple[list[ChangedFile], dict[datetime, int]]:
    """Given ``find -printf '%T@ %y %p'`` lines and ``minute M N`` lines (N more files changed in minute M since
    the epoch), return the files and {minute start (UTC): count}."""
    files = []
    minutes: dict[datetime, int] = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "minute":
            if parts[1].isdigit() and parts[2].strip().isdigit():
                minutes[datetime.fromtimestamp(int(parts[1]) * 60, UTC)] = int(parts[2])
            continue
        try:
            moment = datetime.fromtimestamp(float(parts[0]), UTC)
        except (ValueError, OverflowError):
            continue
        files.append(ChangedFile(moment, parts[1], parts[2]))
    return files, minutes


def parse_units(text: str) -> dict[str, dict[str, str]]:
    """Given ``systemctl show -p Id -p ...`` output (one block per unit), return {unit: {property: value}}."""
    units: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current.get("Id"):
                units[current["Id"]] = current
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return units


def parse_settings(text: str, name: str) -> list[tuple[str, str]]:
    """Given ``grep -r`` output (``file:line``) and a setting's name, return (file, value) for each uncommented
    line setting it, in the order apt and needrestart read them (by file name)."""
    found = []
    for line in text.splitlines():
        path, separator, content = line.partition(":")
        if not separator:
            continue
        content = content.strip()
        if content.startswith(("//", "#")) or name not in content:
            continue
        match = re.search(re.escape(name) + r"""\s*"?\s*=?\s*["']([^"']*)["']""", content)
        if match:
            found.append((path, match.group(1)))
    return sorted(found, key=lambda item: item[0])


# -- evaluation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """One trace of a change: the check it belongs to, when (UTC), what, and JSON-ready facts."""

    check: str
    at: datetime
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditOutcome:
    """One host's audit: its results, and the record the ledger keeps for the next audit (None if unread)."""

    result: HostResult
    record: dict[str, Any] | None


CHECKS = ("apt", "dpkg", "reboot", "pm2", "containers", "code", "cron", "ssh_keys")


def evaluate_host(
    host: Host,
    settings: AuditParams,
    sections: Mapping[str, SectionOutput],
    since: datetime,
    previous: Mapping[str, Any] | None = None,
) -> AuditOutcome:
    """Given a host, its params, what its probe printed, the time looked back to and its previous audit record,
    return the host's results and its new ledger record (pure)."""
    clock_section = sections.get("clock")
    try:
        clock = parse_clock(clock_section.text if clock_section else "")
    except ValueError as error:
        probe = CheckResult("probe", UNKNOWN, f"the audit probe did not run to its end ({error})")
        return AuditOutcome(HostResult(host.name, (probe,)), None)
    results: list[CheckResult] = []
    windows, history_problem = _windows(sections.get("history"), since, results)
    traces, facts = _traces(settings, sections, clock, since, previous, results)
    by_check: dict[str, list[Trace]] = {check: [] for check in CHECKS}
    for trace in traces:
        by_check.setdefault(trace.check, []).append(trace)
    unguarded = 0
    unread = {item.check for item in results if item.state == UNKNOWN}
    for check, items in by_check.items():
        if check in unread and not items:
            continue  # "no change" cannot be said of what could not be read
        judged = _judge(check, items, windows, settings, clock, since, history_problem)
        unguarded += sum(1 for item in judged if item.state == FAILED)
        results += judged
    results += settings_results(host, settings, sections)
    result = HostResult(host.name, tuple(results), details={"since": iso(since), "until": iso(clock.now)})
    record = {"since": iso(since), "until": iso(clock.now), "state": result.state, "unguarded": unguarded, **facts}
    return AuditOutcome(result, record)


def _windows(section: SectionOutput | None, since: datetime, results: list[CheckResult]) -> tuple[list[GuardedWindow], str | None]:
    """Return the guarded windows reaching past ``since`` and, when the history cannot be used, why not."""
    if section is None or section.status != 0:
        problem = "the history of guarded runs could not be read"
        results.append(CheckResult("history", UNKNOWN, problem))
        return [], problem
    try:
        read = parse_history(section.text, since)
    except HistoryUnreadable as error:
        results.append(CheckResult("history", UNKNOWN, str(error)))
        return [], str(error)
    windows = guarded_windows(read.entries)
    facts = {"runs": [window.run_id for window in windows], "skipped_lines": read.skipped_lines, "present": read.present}
    if read.skipped_lines:
        results.append(CheckResult("history", WARNING, f"{read.skipped_lines} unreadable line(s) in the history of "
                                   "guarded runs (torn by a crash?) were skipped", facts))
    else:
        what = f"{len(windows)} guarded run(s) since then" if read.present else "no history of guarded runs on the host yet"
        results.append(CheckResult("history", OK, what, facts))
    return windows, None


def _traces(
    settings: AuditParams,
    sections: Mapping[str, SectionOutput],
    clock: HostClock,
    since: datetime,
    previous: Mapping[str, Any] | None,
    results: list[CheckResult],
) -> tuple[list[Trace], dict[str, Any]]:
    """Return every trace of a change since ``since`` and the facts the next audit compares with."""
    traces: list[Trace] = []
    facts: dict[str, Any] = {}

    def read(name: str, check: str) -> SectionOutput | None:
        section = sections.get(name)
        if section is None or section.status is None:
            results.append(CheckResult(check, UNKNOWN, f"the {check} probe did not run to its end"))
            return None
        return section

    apt_runs: list[AptRun] = []
    if (section := read("apt", "apt")) is not None:
        apt_runs = parse_apt_history(section.text)
        for run in apt_runs:
            at = clock.local_to_utc(run.start)
            if at >= since:
                traces.append(Trace("apt", at, run.describe(), {"packages": run.package_count,
                                                                "unattended": run.unattended}))
    if (section := read("dpkg", "dpkg")) is not None:
        traces += _dpkg_traces(parse_dpkg_log(section.text), apt_runs, clock, since)
    boot = None
    if (section := read("boot", "reboot")) is not None:
        boot = parse_boot_time(section.text)
        if boot is None:
            results.append(CheckResult("reboot", UNKNOWN, f"no boot time in {settings.proc_stat_file}"))
        else:
            facts["boot_time"] = iso(boot)
            if boot >= since:
                traces.append(Trace("reboot", boot, "the host rebooted", {"boot_time": iso(boot)}))
    if settings.deploy_user is not None and (section := read("pm2", "pm2")) is not None:
        traces += _pm2_traces(section.text, boot, since, previous, facts, results)
    if (section := read("containers", "containers")) is not None:
        traces += _container_traces(section.text, boot, since, previous, facts, results)
    for index, directory in enumerate(settings.code_dirs):
        if (section := read(f"code:{index}", "code")) is not None:
            files, minutes = parse_changed_files(section.text)
            for item in files:
                relative = item.path[len(directory):].lstrip("/") or item.path
                traces.append(Trace("code", item.at, f"{relative} changed in {directory}",
                                    {"path": item.path, "tree": directory, "files": 1}))
            for minute, count in minutes.items():
                # Judged as a whole minute: guarded only when a window covers all of it.
                traces.append(Trace("code", minute, f"{count} more file(s) changed in {directory}",
                                    {"tree": directory, "files": count, "until": iso(minute + timedelta(seconds=59))}))
    for name, label in (("cron", "crontab changed"), ("ssh_keys", "authorized_keys changed")):
        if name in sections and (section := read(name, name)) is not None:
            files, _ = parse_changed_files(section.text)
            traces += [Trace(name, item.at, f"{label}: {item.path}", {"path": item.path}) for item in files]
    return [trace for trace in traces if trace.at >= since], facts


def _dpkg_traces(actions: list[DpkgAction], apt_runs: list[AptRun], clock: HostClock, since: datetime) -> list[Trace]:
    """Return dpkg actions outside every apt run (``dpkg -i`` by hand), grouped when minutes apart at most."""
    def inside_apt(moment: datetime) -> bool:
        return any(run.start - timedelta(seconds=2) <= moment <= (run.end or run.start + timedelta(hours=1)) + timedelta(seconds=2)
                   for run in apt_runs)

    groups: list[list[DpkgAction]] = []
    for action in actions:
        if inside_apt(action.at) or clock.local_to_utc(action.at) < since:
            continue
        if groups and action.at - groups[-1][-1].at <= timedelta(minutes=10):
            groups[-1].append(action)
        else:
            groups.append([action])
    traces = []
    for group in groups:
        counts: dict[str, int] = {}
        for action in group:
            counts[action.action] = counts.get(action.action, 0) + 1
        packages = sorted({action.package for action in group})
        shown = ", ".join(packages[:3]) + (", ..." if len(packages) > 3 else "")
        summary = ", ".join(f"{verb} {number}" for verb, number in counts.items())
        traces.append(Trace("dpkg", clock.local_to_utc(group[0].at),
                            f"dpkg changed {len(packages)} package(s) outside apt ({summary}: {shown})",
                            {"packages": packages}))
    return traces


def _pm2_traces(text: str, boot: datetime | None, since: datetime, previous: Mapping[str, Any] | None,
                facts: dict[str, Any], results: list[CheckResult]) -> list[Trace]:
    try:
        processes = parse_pm2(text)
    except ValueError as error:
        results.append(CheckResult("pm2", UNKNOWN, f"cannot read pm2's process list: {error}"))
        return []
    if processes is None:
        results.append(CheckResult("pm2", WARNING, "pm2 is not running for the deploy user (nothing to compare)"))
        return []
    before = (previous or {}).get("pm2") if isinstance((previous or {}).get("pm2"), dict) else {}
    assert isinstance(before, dict)
    facts["pm2"] = {process.name: process.restarts for process in processes}
    traces = []
    for process in processes:
        started = process.started
        if started is None or started < since or _after_boot(started, boot):
            continue
        verb = "started" if process.name not in before and before else "restarted"
        traces.append(Trace("pm2", started, f"pm2 {process.name} {verb} (by hand, or by pm2 after a crash; "
                            f"{process.restarts} restarts in all)", {"process": process.name, "restarts": process.restarts}))
    return traces


def _container_traces(text: str, boot: datetime | None, since: datetime, previous: Mapping[str, Any] | None,
                      facts: dict[str, Any], results: list[CheckResult]) -> list[Trace]:
    try:
        containers: list[ContainerInfo] | None = parse_containers(text)
    except ValueError as error:
        results.append(CheckResult("containers", UNKNOWN, str(error)))
        return []
    if containers is None:
        return []
    before_raw = (previous or {}).get("containers")
    before: dict[str, Any] = before_raw if isinstance(before_raw, dict) else {}
    facts["containers"] = {item.name: {"image_id": item.image_id, "image": item.image, "created": iso(item.created)}
                           for item in containers}
    traces = []
    for item in containers:
        earlier = before.get(item.name) if isinstance(before.get(item.name), dict) else None
        changed_image = earlier is not None and earlier.get("image_id") not in (None, item.image_id)
        if item.created is not None and item.created >= since:
            what = "recreated" if earlier is not None else ("created" if before else "created or recreated")
            image = f"; image changed from {earlier.get('image') or earlier.get('image_id')}" if changed_image and earlier else ""
            traces.append(Trace("containers", item.created, f"container {item.name} {what} from {item.image}{image}",
                                {"container": item.name, "image": item.image, "image_id": item.image_id}))
        elif changed_image and earlier is not None:
            traces.append(Trace("containers", since, f"container {item.name} now runs image {item.image_id[:19]} "
                                f"(was {str(earlier.get('image_id'))[:19]})", {"container": item.name}))
        elif item.started is not None and item.started >= since and not _after_boot(item.started, boot):
            traces.append(Trace("containers", item.started, f"container {item.name} restarted (by hand, by docker "
                                "after a crash, or by its daemon)", {"container": item.name}))
    return traces


def _after_boot(moment: datetime, boot: datetime | None) -> bool:
    return boot is not None and boot <= moment <= boot + BOOT_SETTLE


def _judge(check: str, traces: Sequence[Trace], windows: Sequence[GuardedWindow], settings: AuditParams,
           clock: HostClock, since: datetime, history_problem: str | None) -> list[CheckResult]:
    """Given one check's traces and the guarded windows, return its results: one per unguarded trace (code: one
    per tree), or one ok result."""
    outside: list[Trace] = []
    guarded: dict[str, int] = {}
    for trace in sorted(traces, key=lambda item: item.at):
        window = covering_window(windows, trace.at, slack=settings.slack, open_for=settings.open_for)
        until = parse_time(trace.facts.get("until"))
        if window is not None and until is not None and not window.covers(until, slack=settings.slack, open_for=settings.open_for):
            window = None
        if window is None:
            outside.append(trace)
        else:
            guarded[window.run_id] = guarded.get(window.run_id, 0) + 1
    if history_problem is not None and outside:
        return [CheckResult(check, UNKNOWN, f"{clock.local_text(trace.at)} {trace.text} — cannot tell whether it was "
                            f"guarded ({history_problem})", {**trace.facts, "at": iso(trace.at)}) for trace in outside]
    if check == "code" and outside:
        return _code_results(outside, clock)
    results = [CheckResult(check, FAILED, f"{clock.local_text(trace.at)} {trace.text} — no snapshot",
                           {**trace.facts, "at": iso(trace.at), "guarded": False}) for trace in outside]
    if not results:
        if guarded:
            runs = ", ".join(sorted(guarded))
            message = f"{sum(guarded.values())} change(s) since {clock.local_text(since)}, all inside guarded runs ({runs})"
        else:
            message = f"no change since {clock.local_text(since)}"
        results.append(CheckResult(check, OK, message, {"guarded_runs": sorted(guarded)}))
    return results


def _code_results(outside: list[Trace], clock: HostClock) -> list[CheckResult]:
    """One failed result per code tree: when, how many files, which (the first few by name)."""
    trees: dict[str, list[Trace]] = {}
    for trace in outside:
        trees.setdefault(str(trace.facts.get("tree")), []).append(trace)
    results = []
    for tree, items in trees.items():
        number = sum(int(item.facts.get("files", 1)) for item in items)
        named = [str(item.facts["path"]) for item in items if "path" in item.facts]
        names = ", ".join(path[len(tree):].lstrip("/") for path in named[:3])
        more = ", ..." if number > len(named[:3]) else ""
        span = clock.local_text(items[0].at)
        if clock.local_text(items[-1].at) != span:
            span += f"–{clock.local_text(items[-1].at)[11:]}"
        results.append(CheckResult("code", FAILED, f"{span} {number} file(s) changed in {tree} ({names}{more}) — no snapshot",
                                   {"tree": tree, "files": named, "count": number, "at": iso(items[0].at), "guarded": False}))
    return results


# -- settings that guarantee future unguarded changes ----------------------------------------------------


def exec_fix(host: Host, *words: str) -> str:
    """Given a host and a command's words, return the guarded command line that runs it: ``opsguard exec HOST -- ...``."""
    return f"opsguard exec {host.name} -- {shlex.join(words)}"


def settings_results(host: Host, settings: AuditParams, sections: Mapping[str, SectionOutput]) -> list[CheckResult]:
    """Given a host, its params and its probe's sections, return the warnings about settings that will change the
    host without a snapshot (each with the exact command that turns them off), or ok results."""
    results = []
    periodic = sections.get("apt_periodic")
    if periodic is not None:
        values = parse_settings(periodic.text, "APT::Periodic::Unattended-Upgrade")
        if values and values[-1][1].strip() not in ("", "0"):
            path, value = values[-1]
            fix = exec_fix(host, "sed", "-i", 's/APT::Periodic::Unattended-Upgrade "[0-9]*"/APT::Periodic::Unattended-Upgrade "0"/', path)
            results.append(CheckResult("unattended_upgrades", WARNING,
                                       f"unattended-upgrades is enabled (APT::Periodic::Unattended-Upgrade \"{value}\" in {path}): "
                                       f"it upgrades packages every day without a snapshot; to turn it off: {fix}",
                                       {"file": path, "value": value, "fix": fix}))
        else:
            results.append(CheckResult("unattended_upgrades", OK, "unattended-upgrades is off", {"value": values[-1][1] if values else None}))
    timers = sections.get("apt_timers")
    if timers is not None:
        running = [unit for unit, state in parse_units(timers.text).items()
                   if unit in APT_TIMERS and (state.get("UnitFileState") == "enabled" or state.get("ActiveState") == "active")]
        if running:
            fix = exec_fix(host, "systemctl", "disable", "--now", *running)
            results.append(CheckResult("apt_timers", WARNING, f"{', '.join(running)} enabled or active: apt runs on its own "
                                       f"schedule; to stop it (opsguard update does apt on yours): {fix}",
                                       {"timers": running, "fix": fix}))
        else:
            results.append(CheckResult("apt_timers", OK, "the apt timers are off", {"timers": []}))
    needrestart = sections.get("needrestart")
    if needrestart is not None:
        results.append(_needrestart_result(host, settings, needrestart.text, sections.get("os_release")))
    return results


def _needrestart_result(host: Host, settings: AuditParams, text: str, os_release: SectionOutput | None) -> CheckResult:
    if "OPSGUARD_NO_NEEDRESTART" in text.split():
        return CheckResult("needrestart", OK, "needrestart is not installed", {"mode": None})
    values = parse_settings(text, "$nrconf{restart}")
    release = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', os_release.text, re.MULTILINE)) if os_release else {}
    mode = values[-1][1] if values else None
    defaults_automatic = release.get("ID") == "ubuntu" and _version(release.get("VERSION_ID", "")) >= (24, 4)
    automatic = mode == "a" or (mode is None and defaults_automatic)
    if not automatic:
        return CheckResult("needrestart", OK, f"needrestart does not restart services by itself (mode {mode or 'default'})",
                           {"mode": mode})
    target = f"{settings.needrestart_conf_dir}/conf.d/90-opsguard.conf"
    # Perl accepts "l" as well as 'l': no single quote inside, so the command reads plainly.
    fix = exec_fix(host, "sh", "-c", f'echo "\\$nrconf{{restart}} = \\"l\\";" > {quote(target)}')
    why = f"$nrconf{{restart}} = '{mode}'" if mode else f"the default of {release.get('PRETTY_NAME') or 'this release'}"
    return CheckResult("needrestart", WARNING, f"needrestart restarts services by itself after every apt run ({why}); "
                       f"to make it only list them: {fix}", {"mode": mode or "a (default)", "fix": fix})


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


# -- since ------------------------------------------------------------------------------------------------


def since_for(host: str, records: Sequence[Mapping[str, Any]], now: datetime, first_for: float) -> datetime:
    """Given a host, the ledger's audit records (oldest first), now and how far the first audit looks back, return
    where this audit starts: the end of the host's previous audit, else now minus first_for."""
    from opsguard.history import parse_time

    for record in reversed(records):
        if record.get("host") == host and record.get("event") == EVENT:
            until = parse_time(record.get("until"))
            if until is not None:
                return until
    return now - timedelta(seconds=first_for)


def previous_record(host: str, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Given a host and the ledger's records, return its last audit record, or None."""
    for record in reversed(records):
        if record.get("host") == host and record.get("event") == EVENT:
            return record
    return None


def parse_since(value: str, now: datetime) -> datetime:
    """Given --since's value (a duration such as "26h", or an ISO-8601 time; no zone means UTC) and now, return the time.

    Raise ValueError naming both forms when it is neither, or when the time is in the future.
    """
    from opsguard.durations import parse_duration
    from opsguard.history import parse_time

    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    moment = parse_time(value.replace(" ", "T", 1) if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?", value) else value)
    if moment is None:
        raise ValueError(f"{value!r} is neither a duration (e.g. 26h) nor a time (e.g. 2026-12-01T06:00:00Z)")
    if moment > now:
        raise ValueError(f"{value!r} is in the future")
    return moment
