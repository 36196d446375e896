"""inventory.toml -> frozen dataclasses, validated all at once with path-qualified messages.

Unknown keys are errors on purpose: a typo such as ``snapshot_timout`` must not silently fall
back to a default and weaken a safety setting.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from opsguard.durations import parse_duration
from opsguard.errors import ConfigError, InventoryError
from opsguard.providers import instance_id_problem, provider_names

ROLES = ("zpro", "integrations")
SCHEDULES = ("daily", "weekly")
DEFAULT_PATH = "inventory.toml"

_SETTINGS_DEFAULTS: dict[str, str] = {
    "state_dir": "~/.local/state/opsguard",
    "known_hosts": "~/.ssh/known_hosts",
    "user": "root",
    "snapshot_timeout": "60m",
    "snapshot_poll": "15s",
    "receipt_ttl": "30m",
    "remote_lock": "/run/lock/opsguard",
    "remote_state": "/var/lib/opsguard",
}
_SETTINGS_KEYS = set(_SETTINGS_DEFAULTS) | {"identity_file"}
_SETTINGS_DURATIONS = ("snapshot_timeout", "snapshot_poll", "receipt_ttl")
_HOST_KEYS = {"address", "port", "user", "provider", "instance", "roles", "remote_lock", "remote_state", "backups", "vars"}
_BACKUP_KEYS = {"schedule", "max_age"}
_TOP_KEYS = {"settings", "hosts"}
# Patterns are used with fullmatch(): "$" would also accept a trailing newline (a TOML "\n" escape).
_HOST_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ADDRESS = re.compile(r"[A-Za-z0-9.:_-]+")


@dataclass(frozen=True)
class BackupPolicy:
    """How often the provider backs the host up, and how old the newest backup may be."""

    schedule: str
    max_age: float  # seconds
    max_age_text: str


@dataclass(frozen=True)
class Host:
    """One inventory host. ``instance`` is None until an operator fills it in (see discover)."""

    name: str
    address: str
    port: int
    user: str
    provider: str
    instance: str | int | None
    roles: tuple[str, ...]
    remote_lock: str
    backups: BackupPolicy | None
    vars: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str = DEFAULT_PATH  # the inventory file, for messages
    # Persistent dir on the host for opsguard's own record of the last change (survives reboots).
    remote_state: str = "/var/lib/opsguard"

    def require_instance(self) -> str | int:
        """Given this host, return its provider instance id; raise ConfigError if it is not set."""
        if self.instance is None:
            raise ConfigError(f"{self.source}: hosts.{self.name}.instance is not set (run 'opsguard discover')")
        return self.instance


@dataclass(frozen=True)
class Settings:
    """The ``[settings]`` table with defaults applied; durations in seconds, paths expanded."""

    state_dir: Path
    known_hosts: Path
    identity_file: Path | None
    user: str
    snapshot_timeout: float
    snapshot_poll: float
    receipt_ttl: float
    remote_lock: str
    remote_state: str


@dataclass(frozen=True)
class Inventory:
    """A validated inventory: settings and hosts in file order."""

    path: Path
    settings: Settings
    hosts: Mapping[str, Host]

    def host(self, name: str) -> Host:
        """Given a host name, return the host; raise ConfigError naming the known hosts if absent."""
        try:
            return self.hosts[name]
        except KeyError:
            known = ", ".join(self.hosts) or "none"
            raise ConfigError(f"{self.path}: no host named {name!r} (hosts: {known})") from None


def inventory_path(option: str | None) -> Path:
    """Given the -i option (or None), return the inventory path: option, $OPSGUARD_INVENTORY, ./inventory.toml."""
    return Path(option or os.environ.get("OPSGUARD_INVENTORY") or DEFAULT_PATH)


def load_inventory(path: str | Path) -> Inventory:
    """Given an inventory path, return the validated Inventory; raise InventoryError listing every problem."""
    path = Path(path)
    source = str(path)
    data = _read_toml(path, source)
    problems: list[str] = []
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{source}: {key}: unknown key (expected: settings, hosts)")
    settings = _settings(data.get("settings", {}), path, source, problems)
    hosts = _hosts(data.get("hosts"), settings, source, problems)
    if problems:
        raise InventoryError(problems)
    assert settings is not None
    return Inventory(path=path, settings=settings, hosts=MappingProxyType(hosts))


def _read_toml(path: Path, source: str) -> dict[str, Any]:
    if path.is_dir():
        raise InventoryError([f"{source}: is a directory, not an inventory file"])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError([f"{source}: file not found (use -i PATH or set OPSGUARD_INVENTORY)"]) from None
    except OSError as error:
        raise InventoryError([f"{source}: cannot be read: {error.strerror or error}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InventoryError([f"{source}: line {line}: not valid UTF-8 (byte 0x{raw[error.start]:02x})"]) from None
    if not text.strip():
        raise InventoryError([f"{source}: is empty (expected [hosts.NAME] tables)"])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InventoryError([f"{source}: TOML syntax error: {error}"]) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; no real inventory nests this deep.
        raise InventoryError([f"{source}: arrays or inline tables are nested too deeply to read"]) from None


def _duration(value: Any, where: str, problems: list[str]) -> float | None:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        problems.append(f"{where}: {error}")
        return None
    if seconds <= 0:
        problems.append(f"{where}: must be greater than zero")
        return None
    return seconds


def _path(value: str, base: Path) -> Path:
    expanded = Path(os.path.expanduser(value))
    return expanded if expanded.is_absolute() else (base / expanded)


def _settings(raw: Any, path: Path, source: str, problems: list[str]) -> Settings | None:
    if not isinstance(raw, dict):
        problems.append(f"{source}: settings: must be a table")
        return None
    count = len(problems)
    for key in raw:
        if key not in _SETTINGS_KEYS:
            problems.append(f"{source}: settings.{key}: unknown key (expected one of: {', '.join(sorted(_SETTINGS_KEYS))})")
    values: dict[str, Any] = dict(_SETTINGS_DEFAULTS)
    # File order, not set order: the problem lines must come out the same on every run.
    for key, value in raw.items():
        if key not in _SETTINGS_KEYS:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{source}: settings.{key}: must be a non-empty string")
            continue
        values[key] = value
    seconds = {key: _duration(values[key], f"{source}: settings.{key}", problems) for key in _SETTINGS_DURATIONS}
    if len(problems) > count:
        return None
    base = path.resolve().parent
    # The environment wins; a relative value there is relative to where the command runs,
    # while relative paths written in the inventory are relative to the inventory's directory.
    state_dir_env = os.environ.get("OPSGUARD_STATE_DIR")
    state_dir = _path(state_dir_env, Path.cwd()) if state_dir_env else _path(values["state_dir"], base)
    return Settings(
        state_dir=state_dir,
        known_hosts=_path(values["known_hosts"], base),
        identity_file=_path(values["identity_file"], base) if "identity_file" in values else None,
        user=values["user"],
        snapshot_timeout=seconds["snapshot_timeout"] or 0.0,
        snapshot_poll=seconds["snapshot_poll"] or 0.0,
        receipt_ttl=seconds["receipt_ttl"] or 0.0,
        remote_lock=values["remote_lock"],
        remote_state=values["remote_state"],
    )


def _hosts(raw: Any, settings: Settings | None, source: str, problems: list[str]) -> dict[str, Host]:
    if raw is None:
        problems.append(f"{source}: hosts: no hosts defined (add a [hosts.NAME] table)")
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{source}: hosts: must be a table of [hosts.NAME] tables")
        return {}
    if not raw:
        problems.append(f"{source}: hosts: no hosts defined (add a [hosts.NAME] table)")
    hosts: dict[str, Host] = {}
    seen: dict[tuple[str, int], str] = {}
    for name, table in raw.items():
        where = f"{source}: hosts.{name}"
        if not _HOST_NAME.fullmatch(name):
            problems.append(f"{where}: host name must be lower-case letters, digits, '-' or '_'")
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table")
            continue
        host = _host(name, table, settings, source, problems)
        if host is None:
            continue
        endpoint = (host.address.lower(), host.port)
        if endpoint in seen:
            problems.append(f"{where}.address: {host.address}:{host.port} is also hosts.{seen[endpoint]} (two hosts, one machine)")
        else:
            seen[endpoint] = name
        hosts[name] = host
    return hosts


def _host(name: str, table: dict[str, Any], settings: Settings | None, source: str, problems: list[str]) -> Host | None:
    where = f"{source}: hosts.{name}"
    count = len(problems)
    for key in table:
        if key not in _HOST_KEYS:
            problems.append(f"{where}.{key}: unknown key (expected one of: {', '.join(sorted(_HOST_KEYS))})")

    address: Any = table.get("address")  # checked below; Any so the Host() call type-checks
    if address is None:
        problems.append(f"{where}.address: is required")
    elif not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        problems.append(f"{where}.address: {address!r} is not a DNS name or IP address")

    port = table.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"{where}.port: {port!r} is not a port number (1-65535)")

    user = table.get("user", settings.user if settings else "root")
    if not isinstance(user, str) or not user.strip():
        problems.append(f"{where}.user: must be a non-empty string")

    providers = provider_names()
    provider: Any = table.get("provider")
    if provider is None:
        problems.append(f"{where}.provider: is required (one of: {', '.join(providers)})")
    elif provider not in providers:
        problems.append(f"{where}.provider: {provider!r} is not one of: {', '.join(providers)}")

    instance = table.get("instance")
    if instance is not None and provider in providers:
        problem = instance_id_problem(provider, instance)
        if problem:
            problems.append(f"{where}.instance: {instance!r} {problem}")

    roles = table.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        problems.append(f"{where}.roles: must be a list of strings")
        roles = []
    for role in roles:
        if role not in ROLES:
            problems.append(f"{where}.roles: {role!r} is not one of: {', '.join(ROLES)}")

    remote_lock = table.get("remote_lock", settings.remote_lock if settings else "/run/lock/opsguard")
    if not isinstance(remote_lock, str) or not remote_lock.startswith("/"):
        problems.append(f"{where}.remote_lock: must be an absolute path")

    remote_state = table.get("remote_state", settings.remote_state if settings else "/var/lib/opsguard")
    if not isinstance(remote_state, str) or not remote_state.startswith("/"):
        problems.append(f"{where}.remote_state: must be an absolute path")

    backups = _backups(table.get("backups"), f"{where}.backups", problems)

    variables = table.get("vars", {})
    if not isinstance(variables, dict):
        problems.append(f"{where}.vars: must be a table")
        variables = {}
    for key, value in variables.items():
        if not _is_plain(value):
            problems.append(f"{where}.vars.{key}: must be a string, number, boolean or list of those")

    if len(problems) > count:
        return None
    return Host(
        name=name,
        address=address,
        port=port,
        user=user,
        provider=provider,
        instance=instance,
        roles=tuple(roles),
        remote_lock=remote_lock,
        remote_state=remote_state,
        backups=backups,
        vars=MappingProxyType(dict(variables)),
        source=source,
    )


def _backups(raw: Any, where: str, problems: list[str]) -> BackupPolicy | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    for key in raw:
        if key not in _BACKUP_KEYS:
            problems.append(f"{where}.{key}: unknown key (expected one of: max_age, schedule)")
    schedule = raw.get("schedule")
    if schedule is None:
        problems.append(f"{where}.schedule: is required (one of: {', '.join(SCHEDULES)})")
    elif schedule not in SCHEDULES:
        problems.append(f"{where}.schedule: {schedule!r} is not one of: {', '.join(SCHEDULES)}")
    if "max_age" not in raw:
        problems.append(f"{where}.max_age: is required (e.g. \"26h\")")
        return None
    max_age = _duration(raw["max_age"], f"{where}.max_age", problems)
    if max_age is None or schedule not in SCHEDULES:
        return None
    return BackupPolicy(schedule=schedule, max_age=max_age, max_age_text=raw["max_age"])


def _is_plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(isinstance(item, (str, int, float, bool)) for item in value)
    return False
