"""Read-only host probes for audit and health: one remote script per host, cut into named sections.

A probe script is a list of sections; each prints a begin marker, runs its body with stderr into
stdout, and prints an end marker with the body's exit status. The markers carry a random nonce of
the run, so nothing a host prints (a file name, a log line) can pose as a marker. One script, one
SSH channel, one round trip per host; hosts run in parallel (opsguard/parallel.py) under one deadline.

SAFETY: every script is built from literal commands of the read-only vocabulary
(opsguard/readonly.py) with every inventory value quoted; the session refuses anything else, and
the tests check every script of audit and health with ``read_only_problem``. pm2 is asked only
after its daemon is found alive (``PM2_JLIST``), psql only in a read-only transaction
(``read_only_psql``).

Also here: the parsers of what the shared probes print (the host clock, pm2 processes, containers).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from opsguard.playbooks.common import PM2_JLIST
from opsguard.readonly import PM2_NOT_RUNNING, as_user

if TYPE_CHECKING:
    from opsguard.inventory import Host, Inventory
    from opsguard.transport import CommandResult

quote = shlex.quote
_NAME = re.compile(r"[a-z0-9_][a-z0-9_:.-]*")
NO_DOCKER = "OPSGUARD_NO_DOCKER"
DOCKER_UNREADABLE = "OPSGUARD_DOCKER_UNREADABLE"
# What docker inspect prints per container; the Health JSON last (it may hold "|").
CONTAINER_FORMAT = ("{{.Name}}|{{.Created}}|{{.Image}}|{{.Config.Image}}|{{.State.Status}}|{{.State.StartedAt}}|"
                    "{{.RestartCount}}|{{.HostConfig.RestartPolicy.Name}}|{{json .State.Health}}")


@dataclass(frozen=True)
class Section:
    """One named part of a probe script: its shell text."""

    name: str
    body: str


@dataclass(frozen=True)
class SectionOutput:
    """What one section printed (stdout and stderr together) and its exit status (None: the script ended before it)."""

    text: str
    status: int | None

    @property
    def ok(self) -> bool:
        """Return whether the section ran to its end with exit status 0."""
        return self.status == 0


def new_nonce() -> str:
    """Return a fresh marker nonce for one probe script."""
    return secrets.token_hex(6)


def script(sections: Sequence[Section], nonce: str) -> str:
    """Given sections and the run's nonce, return the probe script; raise ValueError for a bad section name."""
    parts = []
    for item in sections:
        if not _NAME.fullmatch(item.name):
            raise ValueError(f"probe section name {item.name!r} is not [a-z0-9_:.-]")
        mark = f":::opsguard-{nonce}"
        parts.append(f"echo '{mark} begin {item.name}'\n{{\n{item.body}\n}} 2>&1\n"
                     f"printf '\\n{mark} end {item.name} %s\\n' \"$?\"")
    return "\n".join(parts) + "\n"


def split_sections(stdout: str, nonce: str) -> dict[str, SectionOutput]:
    """Given a probe script's stdout and its nonce, return {section name: SectionOutput} for every section that began."""
    mark = f":::opsguard-{nonce} "
    sections: dict[str, SectionOutput] = {}
    current: str | None = None
    lines: list[str] = []
    for line in stdout.split("\n"):
        if line.startswith(mark + "begin "):
            if current is not None:  # a section that never ended (cut off): keep what it printed
                sections[current] = SectionOutput("\n".join(lines), None)
            current, lines = line[len(mark) + 6 :].strip(), []
            continue
        if current is not None and line.startswith(f"{mark}end {current} "):
            if lines and lines[-1] == "":
                lines.pop()  # the newline the end marker starts with
            status = line.rsplit(" ", 1)[-1]
            sections[current] = SectionOutput("\n".join(lines), int(status) if status.isdigit() else None)
            current, lines = None, []
            continue
        if current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = SectionOutput("\n".join(lines), None)
    return sections


# -- shared probes --------------------------------------------------------------------------------------

CLOCK = "date +%s; date +%z; readlink /etc/localtime 2>/dev/null || cat /etc/timezone 2>/dev/null || true"


def pm2_probe(deploy_user: str) -> str:
    """Given the deploy user, return the probe listing its pm2 processes (only when its daemon runs)."""
    return as_user(deploy_user, PM2_JLIST)  # sudo as every step runs it: the text reaches bash as written


def containers_probe() -> str:
    """Return the probe printing one CONTAINER_FORMAT line per container (a marker when docker is missing)."""
    return ("if command -v docker >/dev/null 2>&1; then if ids=$(docker ps -aq); then "
            f"if [ -n \"$ids\" ]; then docker inspect --format {quote(CONTAINER_FORMAT)} $ids; fi; "
            f"else echo {DOCKER_UNREADABLE}; fi; else echo {NO_DOCKER}; fi")


# -- parsers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostClock:
    """The host's clock: its time and how it writes local times (logs are in local time without a zone)."""

    now: datetime  # UTC
    offset: timedelta
    zone: str | None

    def local_to_utc(self, naive: datetime) -> datetime:
        """Given a local time as the host writes it (no zone), return it in UTC (DST-correct when the zone is known)."""
        zone = _zone(self.zone)
        if zone is not None:
            return naive.replace(tzinfo=zone).astimezone(UTC)
        return naive.replace(tzinfo=timezone(self.offset)).astimezone(UTC)

    def local_text(self, moment: datetime) -> str:
        """Given a UTC time, return it as the host's local "YYYY-MM-DD HH:MM"."""
        zone = _zone(self.zone) or timezone(self.offset)
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _zone(name: str | None) -> Any:
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_clock(text: str) -> HostClock:
    """Given the CLOCK probe's output, return the host clock; raise ValueError if the time is missing."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].isdigit():
        raise ValueError(f"no epoch time in the clock probe's output ({text.strip()[:60]!r})")
    now = datetime.fromtimestamp(int(lines[0]), UTC)
    offset = timedelta()
    match = re.fullmatch(r"([+-])(\d\d)(\d\d)", lines[1]) if len(lines) > 1 else None
    if match:
        sign = -1 if match.group(1) == "-" else 1
        offset = sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    zone = None
    if len(lines) > 2:
        name = lines[2].split("zoneinfo/", 1)[-1]
        zone = name if re.fullmatch(r"[A-Za-z0-9_+\-/]+", name) else None
    return HostClock(now, offset, zone)


@dataclass(frozen=True)
class Pm2Info:
    """One pm2 process: name, status, restart counts and when it last started (UTC; None when pm2 does not say)."""

    name: str
    status: str
    restarts: int
    unstable_restarts: int
    started: datetime | None


def parse_pm2(text: str) -> list[Pm2Info] | None:
    """Given the pm2 probe's output, return its processes, or None when no pm2 daemon runs.

    Raise ValueError when the output holds no process list. Only the fields named here are read:
    pm2's listing also carries each process's environment (secrets), which is never kept.
    """
    if PM2_NOT_RUNNING in text.split():
        return None
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return [_pm2_info(item) for item in value]
    raise ValueError("no pm2 process list (a JSON array) in the output of pm2 jlist")


def _pm2_info(item: Mapping[str, Any]) -> Pm2Info:
    environment = item.get("pm2_env") if isinstance(item.get("pm2_env"), dict) else {}
    assert isinstance(environment, dict)
    uptime = environment.get("pm_uptime")
    started = datetime.fromtimestamp(uptime / 1000, UTC) if isinstance(uptime, (int, float)) and uptime > 0 else None
    return Pm2Info(
        name=str(item.get("name", "")),
        status=str(environment.get("status", "unknown")),
        restarts=_whole(environment.get("restart_time")),
        unstable_restarts=_whole(environment.get("unstable_restarts")),
        started=started,
    )


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class ContainerInfo:
    """One container as docker inspect describes it."""

    name: str
    created: datetime | None
    image_id: str
    image: str
    status: str
    started: datetime | None
    restart_count: int
    restart_policy: str
    health: str | None  # healthy | unhealthy | starting; None without a health check


def parse_containers(text: str) -> list[ContainerInfo] | None:
    """Given the containers probe's output, return the containers, or None when docker is not installed.

    Raise ValueError (with docker's words) when docker is installed but could not list its containers
    (a stopped daemon). Other lines that are not CONTAINER_FORMAT lines are ignored.
    """
    if NO_DOCKER in text.split():
        return None
    if DOCKER_UNREADABLE in text.split():
        said = " ".join(line.strip() for line in text.splitlines() if line.strip() and DOCKER_UNREADABLE not in line)
        raise ValueError(f"docker could not list the containers: {said[:200] or 'no reason given'}")
    found = []
    for line in text.splitlines():
        fields = line.split("|", 8)
        if len(fields) != 9 or not fields[0].startswith("/"):
            continue
        name, created, image_id, image, status, started, restarts, policy, health = fields
        found.append(ContainerInfo(
            name=name[1:], created=docker_time(created), image_id=image_id, image=image, status=status,
            started=docker_time(started), restart_count=int(restarts) if restarts.isdigit() else 0,
            restart_policy=policy, health=_health(health),
        ))
    return found


def docker_time(text: str) -> datetime | None:
    """Given a docker timestamp (RFC 3339 with nanoseconds), return it in UTC; None for docker's zero time or junk."""
    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        return None
    fraction = (match.group(2) or "")[:7]
    try:
        moment = datetime.fromisoformat(match.group(1) + fraction + match.group(3).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _health(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    status = value.get("Status") if isinstance(value, dict) else None
    return str(status) if status else None


# -- running --------------------------------------------------------------------------------------------


def run_scripts(
    hosts: Sequence[Host],
    scripts: Mapping[str, str],
    inventory: Inventory,
    *,
    deadline: float,
    concurrency: int,
    follow_up: Callable[[Host, Any, CommandResult], CommandResult | None] | None = None,
) -> dict[str, tuple[bool, Any]]:
    """Given hosts, {host name: probe script}, the inventory, the run deadline and how many hosts at once,
    run each script over its host's ONE read-only SSH session; return {host name: (True, results) or
    (False, exception)} for the hosts that answered before the deadline.

    ``results`` is the list of CommandResults: the script's, then the one ``follow_up(host, session,
    first result)`` ran on the same session, if it ran one (health's certificate probe).
    """
    from opsguard.guard import read_only_session
    from opsguard.parallel import HostJob, run_bounded

    def probe(host: Host) -> list[CommandResult]:
        with read_only_session(host, inventory=inventory) as session:
            first = session.run(scripts[host.name], timeout=deadline, mutates=False)
            results = [first]
            if follow_up is not None:
                second = follow_up(host, session, first)
                if second is not None:
                    results.append(second)
            return results

    jobs = [HostJob(host.name, (((host.name, "probe"), _bind(probe, host)),)) for host in hosts]
    outcomes = run_bounded(jobs, concurrency, deadline)
    return {name: outcome for (name, _), outcome in outcomes.items()}


def _bind(function: Callable[[Host], Any], host: Host) -> Callable[[], Any]:
    return lambda: function(host)


def unread_host(host_name: str, check: str, error: BaseException) -> Any:
    """Given a host, the check that could not start and why, return the host's one ``unknown`` HostResult."""
    from opsguard.report import HostResult, unknown_from_error

    return HostResult(host_name, (unknown_from_error(check, error),))


def unanswered_host(host_name: str, outcome: tuple[bool, Any] | None, deadline: float) -> Any:
    """Given a host whose probe raised (``outcome`` (False, error)) or never answered (None), return its HostResult."""
    from opsguard.durations import format_duration
    from opsguard.report import UNKNOWN, CheckResult, HostResult

    if outcome is None:
        return HostResult(host_name, (CheckResult("ssh", UNKNOWN, f"no answer within {format_duration(deadline)} (run deadline)"),))
    return unread_host(host_name, "ssh", outcome[1])
