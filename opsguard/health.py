"""`opsguard health`: is each host healthy, by its role? Read-only; thresholds are inventory vars.

Every host: disk and inode use of ``disk_paths``; memory available and swap used; pending security
updates; ``reboot-required``; TLS certificate days left for its public names (from the Zpro
backend/frontend ``.env`` URLs, and ``tls_names``); containers running and healthy; extra HTTP
endpoints (``http_urls``, 2xx/3xx).
Zpro hosts: the pm2 processes online and not restart-looping (restarts since the last health run
of the host, from the ledger); the backend answering on its ``PORT`` and the frontend on
``frontend_port``; the WhatsApp channels connected (a read-only query of the ``Whatsapps`` table
through ``docker exec``, in a read-only transaction).
Integrations hosts: n8n ``/healthz/readiness`` and Typebot ``/api/health`` answering 200.

One probe script per host, plus one for the certificates once the names are known from the host's
``.env`` — both over the host's one read-only SSH session. This module is pure (the command runs it).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from opsguard.errors import ConfigError
from opsguard.hostfacts import CHANNEL_QUERY_FAILED, CHANNEL_ROWS_MARK, parse_channel_probe, parse_free
from opsguard.inventory import Host
from opsguard.playbooks.common import (
    CHANNEL_VARS,
    ChannelTable,
    channel_advice,
    channel_probe_command,
    channel_table_param,
    channel_table_problem,
    name_param,
    number_param,
    path_param,
    paths_param,
)
from opsguard.probes import (
    CLOCK,
    Section,
    SectionOutput,
    containers_probe,
    parse_clock,
    parse_containers,
    parse_pm2,
    pm2_probe,
)
from opsguard.report import FAILED, OK, UNKNOWN, WARNING, CheckResult, HostResult, iso

quote = shlex.quote
EVENT = "health"  # the ledger event one checked host leaves (restart counts for the next run)

COMMAND_NAME = "health"
VARS: dict[str, Any] = {
    "deploy_user": "deployzdg",
    "app_dir": "/home/deployzdg/zpro.io",
    "backend_process": "zpro-backend",
    "frontend_process": "zpro-frontend",
    "frontend_port": 4444,
    "db_container": "postgresql",
    "redis_container": "redis-zpro",
    "n8n_url": "http://localhost:5678",  # "" when the host runs no n8n
    "typebot_viewer_url": "http://localhost:8081",  # "" when the host runs no Typebot
    "http_urls": [],  # more endpoints that must answer 2xx/3xx
    "http_timeout": 5.0,
    "disk_paths": ["/", "/var"],
    "disk_warn_percent": 80,
    "disk_fail_percent": 90,
    "inode_warn_percent": 80,
    "inode_fail_percent": 90,
    "memory_warn_available_percent": 10,  # warning below this much RAM available
    "memory_fail_available_percent": 5,
    "swap_warn_percent": 50,  # warning from this much swap used
    "swap_fail_percent": 90,
    "pm2_restart_warn": 1,  # restarts since the last health run: warning from this many
    "pm2_restart_fail": 5,  # ... restart-looping (failed) from this many
    "tls_names": [],  # public names to check besides the .env URLs ("name" or "name:port")
    "tls_from_env": True,  # also the names of BACKEND_URL and FRONTEND_URL (Zpro hosts)
    "tls_address": "",  # connect here instead of the name itself ("host:port"; the name is still sent as SNI)
    "tls_warn_days": 21,
    "tls_fail_days": 7,
    # The WhatsApp channel table: the upgrade's vars (Zpro renames models; channels_table "" = no channels).
    **CHANNEL_VARS,
    "security_updates_warn": 1,  # warning from this many pending security updates
    "reboot_required_file": "/var/run/reboot-required",
}

CONNECTED = "CONNECTED"
CONNECTING = ("OPENING", "PAIRING")
NO_DB_SETTINGS = "OPSGUARD_NO_DB_SETTINGS"
_TLS_NAME = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9.:@%+=,/_~\[\]-]+")


@dataclass(frozen=True)
class HealthParams:
    """The checked vars of one host."""

    zpro: bool
    integrations: bool
    deploy_user: str
    app_dir: str
    backend_process: str
    frontend_process: str
    frontend_port: int
    db_container: str
    redis_container: str
    endpoints: tuple[tuple[str, str, str], ...]  # (name, url, accepts: "any" | "2xx3xx" | "200")
    http_timeout: float
    disk_paths: tuple[str, ...]
    disk: tuple[float, float]
    inodes: tuple[float, float]
    memory: tuple[float, float]
    swap: tuple[float, float]
    pm2_restarts: tuple[int, int]
    tls_names: tuple[str, ...]
    tls_from_env: bool
    tls_address: str
    tls_days: tuple[int, int]
    channels: ChannelTable | None
    security_updates_warn: int
    reboot_required_file: str


def health_params(host: Host, params: Mapping[str, Any]) -> HealthParams:
    """Given a host and its params (VARS overlaid by its inventory vars), return them checked; raise ConfigError if one is bad."""
    zpro, integrations = "zpro" in host.roles, "integrations" in host.roles
    endpoints: list[tuple[str, str, str]] = []
    frontend_port = int(number_param(params, "frontend_port", minimum=1))
    if zpro:
        endpoints.append(("frontend", f"http://localhost:{frontend_port}/", "2xx3xx"))
    if integrations:
        for key, name, path in (("n8n_url", "n8n", "/healthz/readiness"), ("typebot_viewer_url", "typebot", "/api/health")):
            base = params.get(key)
            if not isinstance(base, str):
                raise ConfigError(f"param {key}: must be a URL or \"\" (got {base!r})")
            if base:
                endpoints.append((name, _url(key, base.rstrip("/") + path), "200"))
    extra = params.get("http_urls")
    if not isinstance(extra, list):
        raise ConfigError(f"param http_urls: must be a list of URLs (got {extra!r})")
    endpoints += [(f"url:{index}", _url("http_urls", str(url)), "2xx3xx") for index, url in enumerate(extra)]
    names = params.get("tls_names")
    if not isinstance(names, list) or not all(isinstance(name, str) and _TLS_NAME.fullmatch(name) for name in names):
        raise ConfigError(f"param tls_names: must be a list of host names, each optionally with :port (got {names!r})")
    address = params.get("tls_address")
    if not isinstance(address, str) or (address and not _TLS_NAME.fullmatch(address)):
        raise ConfigError(f"param tls_address: must be \"\" or host:port (got {address!r})")
    return HealthParams(
        zpro=zpro,
        integrations=integrations,
        deploy_user=name_param(params, "deploy_user"),
        app_dir=path_param(params, "app_dir"),
        backend_process=name_param(params, "backend_process"),
        frontend_process=name_param(params, "frontend_process"),
        frontend_port=frontend_port,
        db_container=name_param(params, "db_container"),
        redis_container=name_param(params, "redis_container"),
        endpoints=tuple(endpoints),
        http_timeout=number_param(params, "http_timeout", minimum=0.5),
        disk_paths=tuple(paths_param(params, "disk_paths")),
        disk=_pair(params, "disk_warn_percent", "disk_fail_percent"),
        inodes=_pair(params, "inode_warn_percent", "inode_fail_percent"),
        memory=_pair(params, "memory_fail_available_percent", "memory_warn_available_percent"),
        swap=_pair(params, "swap_warn_percent", "swap_fail_percent"),
        pm2_restarts=(int(number_param(params, "pm2_restart_warn", minimum=1)), int(number_param(params, "pm2_restart_fail", minimum=1))),
        tls_names=tuple(names),
        tls_from_env=bool(params.get("tls_from_env")),
        tls_address=address,
        tls_days=(int(number_param(params, "tls_warn_days")), int(number_param(params, "tls_fail_days"))),
        channels=channel_table_param(params) if zpro else None,
        security_updates_warn=int(number_param(params, "security_updates_warn", minimum=1)),
        reboot_required_file=path_param(params, "reboot_required_file"),
    )


def _pair(params: Mapping[str, Any], low: str, high: str) -> tuple[float, float]:
    first, second = number_param(params, low), number_param(params, high)
    if first > second:
        raise ConfigError(f"params {low} ({first:g}) and {high} ({second:g}): {low} must not be above {high}")
    return first, second


def _url(key: str, url: str) -> str:
    if not _HTTP_URL.fullmatch(url):
        raise ConfigError(f"param {key}: {url!r} is not an http(s) URL of plain characters")
    return url


# -- the probe scripts ----------------------------------------------------------------------------------


def _curl(url_word: str, timeout: float) -> str:
    return f"curl -sS -o /dev/null --max-time {timeout:g} -w '%{{http_code}}\\n' {url_word}"


def _env_value(env_file: str, key: str, keep: str) -> str:
    """Shell text printing KEY's last value in a .env file, only the characters in ``keep`` (a tr set)."""
    return f"$(sed -n 's/^{key}=//p' {env_file} 2>/dev/null | tail -n 1 | tr -dc {quote(keep)})"


def probe_sections(settings: HealthParams) -> list[Section]:
    """Given a host's health params, return the sections of its first probe (all read-only)."""
    disks = " ".join(quote(path) for path in settings.disk_paths)
    reboot = quote(settings.reboot_required_file)
    sections = [
        Section("clock", CLOCK),
        Section("disk", f"df --output=pcent,ipcent,target {disks}"),
        Section("memory", "free -b"),
        # -s: simulate; no lock taken, and no binary package cache written to /var/cache/apt either.
        Section("security", "apt-get -s -o Debug::NoLocking=1 -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= upgrade"),
        Section("reboot", f"if [ -e {reboot} ]; then echo required; cat {quote(settings.reboot_required_file + '.pkgs')} "
                          "2>/dev/null; true; else echo not-required; fi"),
        Section("containers", containers_probe()),
    ]
    if settings.zpro:
        env_file = quote(f"{settings.app_dir}/backend/.env")
        sections.append(Section("pm2", pm2_probe(settings.deploy_user)))
        sections.append(Section("env", f"grep -E '^(BACKEND_URL|FRONTEND_URL|PORT)=' {env_file}"))
        sections.append(Section("http:backend", f"port={_env_value(env_file, 'PORT', '0-9')}; "
                                                + _curl('"http://localhost:${port:-3000}/"', settings.http_timeout)))
        if settings.channels is not None:
            # The upgrade's own channel probe, in a subshell: it exits early when the column query fails.
            probe = channel_probe_command(settings.db_container, '"$db_user"', '"$db_name"', settings.channels)
            sections.append(Section("whatsapp", f"db_user={_env_value(env_file, 'POSTGRES_USER', 'A-Za-z0-9_.-')}; "
                                                f"db_name={_env_value(env_file, 'POSTGRES_DB', 'A-Za-z0-9_.-')}; "
                                                f"if [ -n \"$db_user\" ] && [ -n \"$db_name\" ]; then (\n{probe}\n); "
                                                f"else echo {NO_DB_SETTINGS}; fi"))
    for name, url, _ in settings.endpoints:
        sections.append(Section(f"http:{name}", _curl(quote(url), settings.http_timeout)))
    return sections


def tls_targets(settings: HealthParams, env_text: str | None) -> list[tuple[str, str]]:
    """Given a host's params and what its ``env`` section printed, return (name, connect address) pairs to check."""
    names = list(settings.tls_names)
    if settings.zpro and settings.tls_from_env and env_text:
        for line in env_text.splitlines():
            key, _, value = line.partition("=")
            if key in ("BACKEND_URL", "FRONTEND_URL"):
                parts = urlsplit(value.strip().strip("\"'; "))
                if parts.scheme == "https" and parts.hostname and _TLS_NAME.fullmatch(parts.hostname):
                    names.append(parts.hostname + (f":{parts.port}" if parts.port else ""))
    targets = []
    for name in dict.fromkeys(names):
        server, _, port = name.partition(":")
        targets.append((name, settings.tls_address or f"{server}:{port or 443}"))
    return targets


def tls_sections(targets: Sequence[tuple[str, str]]) -> list[Section]:
    """Given (name, address) pairs, return one section per certificate: its notAfter date, read with openssl."""
    return [
        # </dev/null: s_client sends its input to the server, so it gets none (the vocabulary requires it).
        Section(f"tls:{index}", f"timeout 10 openssl s_client -connect {quote(address)} -servername "
                                f"{quote(name.partition(':')[0])} </dev/null 2>/dev/null | openssl x509 -noout -enddate")
        for index, (name, address) in enumerate(targets)
    ]


# -- evaluation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthOutcome:
    """One host's health: its results, and the record the ledger keeps for the next run (None if unread)."""

    result: HostResult
    record: dict[str, Any] | None


def evaluate_host(
    host: Host,
    settings: HealthParams,
    sections: Mapping[str, SectionOutput],
    tls: Sequence[tuple[str, str]] = (),
    previous: Mapping[str, Any] | None = None,
) -> HealthOutcome:
    """Given a host, its params, its probes' sections, the certificates checked and its previous health record,
    return its results and its new ledger record (pure)."""
    try:
        clock = parse_clock(sections["clock"].text if "clock" in sections else "")
    except ValueError as error:
        return HealthOutcome(HostResult(host.name, (CheckResult("probe", UNKNOWN, f"the health probe did not run to its end ({error})"),)), None)
    results: list[CheckResult] = []
    record: dict[str, Any] = {}
    results += _disk(settings, sections.get("disk"))
    results += _memory(settings, sections.get("memory"))
    if settings.zpro:
        results += _pm2(settings, sections.get("pm2"), previous, record)
    results += _containers(settings, sections.get("containers"))
    for name, url, accepts in (("backend", "", "any"), *settings.endpoints) if settings.zpro else settings.endpoints:
        results.append(_http(name, url, accepts, sections.get(f"http:{name}")))
    if settings.zpro and settings.channels is not None:
        results += _whatsapp(sections.get("whatsapp"), settings.channels)
    for index, (name, address) in enumerate(tls):
        results.append(_certificate(settings, name, address, sections.get(f"tls:{index}"), clock.now))
    results += _security(host, settings, sections.get("security"))
    results += _reboot(host, sections.get("reboot"))
    result = HostResult(host.name, tuple(results), details={"checked_at": iso(clock.now)})
    return HealthOutcome(result, {"state": result.state, **record})


def _unread(check: str, section: SectionOutput | None) -> CheckResult | None:
    if section is None or section.status is None:
        return CheckResult(check, UNKNOWN, f"the {check} probe did not run to its end")
    return None


def _level(value: float, warn: float, fail: float) -> str:
    return FAILED if value >= fail else WARNING if value >= warn else OK


def _disk(settings: HealthParams, section: SectionOutput | None) -> list[CheckResult]:
    if (problem := _unread("disk", section)) or section is None:
        return [problem] if problem else []
    results = []
    seen = set()
    for line in section.text.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) != 3 or not parts[0].endswith("%") or parts[2] in seen:
            continue
        seen.add(parts[2])
        mount = parts[2]
        used = float(parts[0].rstrip("%"))
        state = _level(used, *settings.disk)
        limit = f" ({'failing' if state == FAILED else 'warning'} at {settings.disk[1 if state == FAILED else 0]:g}%)" if state != OK else ""
        results.append(CheckResult("disk", state, f"{mount} is {used:g}% used{limit}", {"mount": mount, "used_percent": used},
                                   gauges={f"used_percent:{mount}": used}))
        if parts[1].endswith("%"):
            inodes = float(parts[1].rstrip("%"))
            state = _level(inodes, *settings.inodes)
            limit = f" ({'failing' if state == FAILED else 'warning'} at {settings.inodes[1 if state == FAILED else 0]:g}%)" if state != OK else ""
            results.append(CheckResult("inodes", state, f"{mount} has {inodes:g}% of its inodes used{limit}",
                                       {"mount": mount, "used_percent": inodes}, gauges={f"used_percent:{mount}": inodes}))
    if not results:
        results.append(CheckResult("disk", UNKNOWN, f"df printed no usage ({section.text.strip()[:120]!r})"))
    return results


def _memory(settings: HealthParams, section: SectionOutput | None) -> list[CheckResult]:
    if (problem := _unread("memory", section)) or section is None:
        return [problem] if problem else []
    try:
        memory = parse_free(section.text)
    except ValueError as error:
        return [CheckResult("memory", UNKNOWN, f"cannot read free -b: {error}")]
    available = 100.0 * memory.ram_available / memory.ram_total if memory.ram_total else 0.0
    fail, warn = settings.memory
    state = FAILED if available < fail else WARNING if available < warn else OK
    results = [CheckResult("memory", state, f"{available:.0f}% of {memory.ram_total / 2**30:.1f} GiB RAM available"
                           + (f" (below {fail if state == FAILED else warn:g}%)" if state != OK else ""),
                           {"available_percent": round(available, 1), "total_bytes": memory.ram_total},
                           gauges={"available_percent": round(available, 1)})]
    if memory.swap_total:
        used = 100.0 * (memory.swap_total - memory.swap_free) / memory.swap_total
        state = _level(used, *settings.swap)
        results.append(CheckResult("swap", state, f"{used:.0f}% of {memory.swap_total / 2**30:.1f} GiB swap used"
                                   + (f" ({'failing' if state == FAILED else 'warning'} at "
                                      f"{settings.swap[1 if state == FAILED else 0]:g}%)" if state != OK else ""),
                                   {"used_percent": round(used, 1)}, gauges={"used_percent": round(used, 1)}))
    else:
        results.append(CheckResult("swap", OK, "no swap configured", {"used_percent": None}))
    return results


def _pm2(settings: HealthParams, section: SectionOutput | None, previous: Mapping[str, Any] | None,
         record: dict[str, Any]) -> list[CheckResult]:
    if (problem := _unread("pm2", section)) or section is None:
        return [problem] if problem else []
    try:
        processes = parse_pm2(section.text)
    except ValueError as error:
        return [CheckResult("pm2", UNKNOWN, f"cannot read pm2's process list: {error}")]
    if processes is None:
        return [CheckResult("pm2", FAILED, f"pm2 is not running for {settings.deploy_user} (no live daemon): "
                            f"{settings.backend_process} and {settings.frontend_process} are down")]
    record["pm2"] = {process.name: process.restarts for process in processes}
    earlier_raw = (previous or {}).get("pm2")
    earlier: dict[str, Any] = earlier_raw if isinstance(earlier_raw, dict) else {}
    when = str((previous or {}).get("time", "the last check"))
    results = []
    listed = {process.name for process in processes}
    for expected in (settings.backend_process, settings.frontend_process):
        if expected not in listed:
            results.append(CheckResult("pm2", FAILED, f"{expected} is not in pm2's list for {settings.deploy_user}",
                                       {"process": expected}))
    warn, fail = settings.pm2_restarts
    for process in processes:
        facts = {"process": process.name, "status": process.status, "restarts": process.restarts}
        before = earlier.get(process.name)
        delta = process.restarts - before if isinstance(before, int) and process.restarts >= before else None
        gauges = {f"restarts:{process.name}": float(process.restarts)}
        if process.status != "online":
            results.append(CheckResult("pm2", FAILED, f"{process.name} is {process.status}", facts, gauges=gauges))
        elif delta is not None and delta >= fail:
            results.append(CheckResult("pm2", FAILED, f"{process.name} is restart-looping: {delta} restarts since {when} "
                                       f"(failing from {fail})", {**facts, "since_last": delta}, gauges=gauges))
        elif delta is not None and delta >= warn:
            results.append(CheckResult("pm2", WARNING, f"{process.name} restarted {delta} time(s) since {when}",
                                       {**facts, "since_last": delta}, gauges=gauges))
        else:
            note = f", {delta} since {when}" if delta is not None else " (no earlier health run to compare)"
            results.append(CheckResult("pm2", OK, f"{process.name} online, {process.restarts} restarts in all{note}",
                                       {**facts, "since_last": delta}, gauges=gauges))
    return results


def _containers(settings: HealthParams, section: SectionOutput | None) -> list[CheckResult]:
    if (problem := _unread("containers", section)) or section is None:
        return [problem] if problem else []
    try:
        containers = parse_containers(section.text)
    except ValueError as error:
        return [CheckResult("containers", UNKNOWN, str(error))]
    if containers is None:
        return [CheckResult("containers", FAILED if settings.zpro else OK, "docker is not installed"
                            + (f" ({settings.db_container} and {settings.redis_container} cannot run)" if settings.zpro else ""))]
    results = []
    names = {item.name for item in containers}
    if settings.zpro:
        for expected in (settings.db_container, settings.redis_container):
            if expected not in names:
                results.append(CheckResult("containers", FAILED, f"container {expected} does not exist", {"container": expected}))
    for item in containers:
        facts = {"container": item.name, "status": item.status, "health": item.health, "image": item.image,
                 "restart_count": item.restart_count}
        if item.status != "running":
            if item.restart_policy in ("always", "unless-stopped", "on-failure"):
                results.append(CheckResult("containers", FAILED, f"container {item.name} is {item.status} "
                                           f"(restart policy {item.restart_policy})", facts))
            continue  # a one-off container that ended is not a service
        if item.health == "unhealthy":
            results.append(CheckResult("containers", FAILED, f"container {item.name} is unhealthy", facts))
        elif item.health == "starting":
            results.append(CheckResult("containers", WARNING, f"container {item.name} is still starting (health check)", facts))
        else:
            results.append(CheckResult("containers", OK, f"container {item.name} running"
                                       + (f" and {item.health}" if item.health else ""), facts))
    return results


def _http(name: str, url: str, accepts: str, section: SectionOutput | None) -> CheckResult:
    check = f"http:{name}"
    target = url or "the backend's PORT"
    if section is None or section.status is None:
        return CheckResult(check, UNKNOWN, f"the {check} probe did not run to its end")
    codes = [line.strip() for line in section.text.splitlines() if re.fullmatch(r"\d{3}", line.strip())]
    code = int(codes[-1]) if codes else 0
    facts = {"url": url or None, "status": code}
    if code == 0:
        said = " ".join(line for line in section.text.splitlines() if not re.fullmatch(r"\d{3}", line.strip()))
        return CheckResult(check, FAILED, f"{name}: no answer from {target}" + (f" ({said.strip()[:120]})" if said.strip() else ""), facts)
    good = {"any": True, "200": code == 200, "2xx3xx": 200 <= code < 400}[accepts]
    if good:
        return CheckResult(check, OK, f"{name}: {target} answered HTTP {code}", facts)
    expected = "200" if accepts == "200" else "2xx or 3xx"
    return CheckResult(check, FAILED, f"{name}: {target} answered HTTP {code} (expected {expected})", facts)


def _without_error_lines(text: str) -> str:
    """Given the channel probe's section (stderr merged in), return it without psql's error lines after the rows mark
    when the SELECT failed: the failure marker says it, and the column list says why (a missing table or column)."""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    if CHANNEL_QUERY_FAILED not in stripped or CHANNEL_ROWS_MARK not in stripped:
        return text
    head = lines[: stripped.index(CHANNEL_ROWS_MARK) + 1]
    return "\n".join([*head, CHANNEL_QUERY_FAILED]) + "\n"


def _whatsapp(section: SectionOutput | None, table: ChannelTable) -> list[CheckResult]:
    """Given the channel probe's section and the table it read, return one result per channel not CONNECTED, then the count."""
    if (problem := _unread("whatsapp", section)) or section is None:
        return [problem] if problem else []
    text = section.text.strip()
    if NO_DB_SETTINGS in text.split():
        return [CheckResult("whatsapp", UNKNOWN, "POSTGRES_USER / POSTGRES_DB not found in the backend's .env")]
    try:
        probe = parse_channel_probe(_without_error_lines(section.text))
    except ValueError as error:
        if CHANNEL_ROWS_MARK in (line.strip() for line in text.split("\n")):
            # The probe ran to its rows but they cannot be read (a repeated id): say why, not a query failure.
            return [CheckResult("whatsapp", UNKNOWN, str(error))]
        last = text.splitlines()[-1][:160] if text else "no output"
        return [CheckResult("whatsapp", UNKNOWN, f"the channel query failed: {last}")]
    if (missing := channel_table_problem(probe, table)) is not None:
        return [CheckResult("whatsapp", UNKNOWN, missing)]
    if probe.query_failed:
        return [CheckResult("whatsapp", UNKNOWN, f"the SELECT of the channels in table {table.table!r} failed")]
    results = []
    for channel in probe.channels:
        if channel.connected:
            continue
        facts = {"channel": channel.name, "id": channel.id, "tenant": channel.tenant, "status": channel.status, "type": channel.type}
        if channel.status in CONNECTING:
            who = f"{channel.name!r} (id {channel.id}, tenant {channel.tenant}, {channel.type or 'type unknown'})"
            results.append(CheckResult("whatsapp", WARNING, f"{who} is {channel.status} (still connecting)", facts))
        else:
            results.append(CheckResult("whatsapp", FAILED, channel_advice(channel, channel.id, "now"), facts))
    connected = [channel.name for channel in probe.channels if channel.connected]
    if not probe.channels:
        results.append(CheckResult("whatsapp", WARNING, "no WhatsApp channel in the database", {"channels": 0}))
    elif connected:
        results.append(CheckResult("whatsapp", OK, f"{len(connected)} of {len(probe.channels)} WhatsApp channel(s) connected",
                                   {"connected": connected, "channels": len(probe.channels)},
                                   gauges={"connected": float(len(connected)), "channels": float(len(probe.channels))}))
    return results


def _certificate(settings: HealthParams, name: str, address: str, section: SectionOutput | None, now: datetime) -> CheckResult:
    check = f"tls:{name}"
    if section is None or section.status is None:
        return CheckResult(check, UNKNOWN, f"the certificate probe of {name} did not run to its end")
    match = re.search(r"notAfter=(.+)", section.text)
    expires = None
    if match:
        try:
            expires = datetime.strptime(" ".join(match.group(1).split()), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
        except ValueError:
            expires = None
    if expires is None:
        return CheckResult(check, FAILED, f"cannot read the TLS certificate of {name} from {address}", {"name": name, "address": address})
    days = (expires - now).total_seconds() / 86400
    warn, fail = settings.tls_days
    state = FAILED if days < fail else WARNING if days < warn else OK
    text = f"expired {-days:.0f} day(s) ago" if days < 0 else f"expires in {days:.0f} day(s)"
    return CheckResult(check, state, f"TLS certificate of {name} {text} ({iso(expires)})",
                       {"name": name, "expires_at": iso(expires), "days_left": round(days, 1)}, gauges={"days_left": round(days, 1)})


def _security(host: Host, settings: HealthParams, section: SectionOutput | None) -> list[CheckResult]:
    if (problem := _unread("security_updates", section)) or section is None:
        return [problem] if problem else []
    pending = re.findall(r"^Inst (\S+) .*$", section.text, re.MULTILINE)
    security = sorted({match.group(1) for match in re.finditer(r"^Inst (\S+) .*[Ss]ecurity.*$", section.text, re.MULTILINE)})
    facts = {"pending": len(pending), "security": security}
    gauges = {"pending": float(len(pending)), "security": float(len(security))}
    if section.status != 0 and not pending:
        return [CheckResult("security_updates", UNKNOWN, f"apt-get -s upgrade failed: {section.text.strip()[-160:]}")]
    if len(security) >= settings.security_updates_warn:
        shown = ", ".join(security[:5]) + (", ..." if len(security) > 5 else "")
        return [CheckResult("security_updates", WARNING, f"{len(security)} security update(s) pending ({shown}): "
                            f"opsguard update {host.name}", facts, gauges=gauges)]
    return [CheckResult("security_updates", OK, f"no security update pending ({len(pending)} other update(s))", facts, gauges=gauges)]


def _reboot(host: Host, section: SectionOutput | None) -> list[CheckResult]:
    if (problem := _unread("reboot_required", section)) or section is None:
        return [problem] if problem else []
    lines = [line.strip() for line in section.text.splitlines() if line.strip()]
    if lines[:1] == ["required"]:
        packages = lines[1:]
        shown = f" by {', '.join(packages[:5])}{', ...' if len(packages) > 5 else ''}" if packages else ""
        return [CheckResult("reboot_required", WARNING, f"a reboot is required{shown}: opsguard update {host.name} --allow-reboot",
                            {"required": True, "packages": packages})]
    return [CheckResult("reboot_required", OK, "no reboot required", {"required": False})]


def previous_record(host: str, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Given a host and the ledger's records, return its last health record, or None."""
    for record in reversed(records):
        if record.get("host") == host and record.get("event") == EVENT:
            return record
    return None
