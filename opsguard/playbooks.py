"""Playbooks by name: load them, merge their params (defaults < inventory vars < command line), build plans.

``upgrade`` is not a module: it picks the playbook by the host's roles (zpro -> platform_upgrade,
integrations -> stack_upgrade). Every problem is a one-line ConfigError naming the host and the var.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from opsguard.durations import parse_duration
from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.plan import Plan

PLAYBOOKS = ("update", "platform_upgrade", "stack_upgrade", "backup_check")
UPGRADE = "upgrade"
UPGRADE_BY_ROLE = {"zpro": "platform_upgrade", "integrations": "stack_upgrade"}
# Options every playbook takes: the run timestamp names this run's backup and staging directories.
COMMON_OPTIONS: dict[str, Any] = {"ts": None}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def list_playbooks() -> list[str]:
    """Return the playbook names ("upgrade" is an alias picked by roles, see playbook_for_upgrade)."""
    return list(PLAYBOOKS)


def playbook_for_upgrade(host: Host) -> str:
    """Given a host, return the upgrade playbook its roles call for; raise ConfigError unless it has exactly one."""
    names = [UPGRADE_BY_ROLE[role] for role in host.roles if role in UPGRADE_BY_ROLE]
    if len(names) != 1:
        roles = ", ".join(host.roles) or "none"
        raise ConfigError(
            f"{host.source}: hosts.{host.name}.roles: [{roles}]: 'upgrade' needs exactly one of "
            f"{', '.join(UPGRADE_BY_ROLE)} (or name the playbook: {', '.join(UPGRADE_BY_ROLE.values())})"
        )
    return names[0]


def load_playbook(name: str, host: Host | None = None) -> ModuleType:
    """Given a playbook name (or "upgrade" with a host), return its module; raise ConfigError if unknown."""
    if name == UPGRADE:
        if host is None:
            raise ConfigError("playbook 'upgrade' is picked by the host's roles: name the host")
        name = playbook_for_upgrade(host)
    if name not in PLAYBOOKS:
        raise ConfigError(f"unknown playbook {name!r} (playbooks: {', '.join(PLAYBOOKS)}, or {UPGRADE!r} by role)")
    return importlib.import_module(f"playbooks.{name}")


def playbook_name(module: ModuleType) -> str:
    """Given a playbook module, return its short name (e.g. "update")."""
    return module.__name__.rsplit(".", 1)[-1]


def known_vars() -> dict[str, list[str]]:
    """Return {var: [playbooks that read it]} over every playbook, for checking inventory vars."""
    known: dict[str, list[str]] = {}
    for name in PLAYBOOKS:
        for var in load_playbook(name).VARS:
            known.setdefault(var, []).append(name)
    return known


def params_for(module: ModuleType, host: Host, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Given a playbook module, a host and command-line overrides, return the plan's params.

    Params are the module's VARS defaults, overlaid by the host's inventory vars, then by the overrides
    (its VARS and OPTIONS, and ``ts``). The package, when the playbook takes one, is resolved to an
    absolute path and its sha256 computed here. Raise ConfigError (one line) for an inventory var no
    playbook knows, an override this playbook does not take, a value of the wrong type, a missing
    required option, or a package that is not a readable file or does not match a given sha256.
    """
    name = playbook_name(module)
    variables: dict[str, Any] = dict(module.VARS)
    options: dict[str, Any] = {**COMMON_OPTIONS, **getattr(module, "OPTIONS", {})}

    known = known_vars()
    unknown = [key for key in host.vars if key not in known]
    if unknown:
        raise ConfigError(
            f"{host.source}: hosts.{host.name}.vars: unknown var{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    params: dict[str, Any] = {}
    for key, default in variables.items():
        if key in host.vars:
            params[key] = _coerce(host.vars[key], default, f"{host.source}: hosts.{host.name}.vars.{key}")
        else:
            params[key] = default
    params.update(options)

    for key, value in (overrides or {}).items():
        if key in variables:
            params[key] = _coerce(value, variables[key], f"{name} on {host.name}: --var {key}")
        elif key in options:
            params[key] = _coerce(value, options[key], f"{name} on {host.name}: {_flag(key)}")
        else:
            label = _flag(key) if key in _all_options() else f"--var {key}"
            users = [other for other in PLAYBOOKS if other != name and key in _accepted(load_playbook(other))]
            hint = f"it is for {', '.join(users)}" if users else f"its vars: {', '.join(variables)}"
            raise ConfigError(f"{name} on {host.name} does not take {label} ({hint})")

    for key, how in getattr(module, "REQUIRED", {}).items():
        if params.get(key) in (None, ""):
            raise ConfigError(f"{name} on {host.name} needs {how}")
    if params.get("ts") is None:
        params["ts"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if "package" in options and params.get("package"):
        _resolve_package(params, name, host)
    return params


def build_plan(name: str, host: Host, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Given a playbook name (or "upgrade"), a host and command-line overrides, return the plan.

    Raise ConfigError for an unknown playbook, a bad var or option, or a missing required option.
    """
    module = load_playbook(name, host)
    params = params_for(module, host, overrides)
    try:
        plan: Plan = module.plan(host, params)
    except ConfigError as error:  # the playbook checks its params; say which playbook and host
        raise ConfigError(f"{playbook_name(module)} on {host.name}: {error}") from None
    return plan


def file_sha256(path: Path) -> str:
    """Given a local file, return its lower-case hex sha256; raise OSError if it cannot be read."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve_package(params: dict[str, Any], name: str, host: Host) -> None:
    given = str(params["package"])
    path = Path(given).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name} on {host.name}: package {given} not found (or not a file)")
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise ConfigError(f"{name} on {host.name}: package {given} cannot be read: {error.strerror or error}") from None
    expected = params.get("package_sha256")
    if expected and str(expected).strip().lower() != digest:
        raise ConfigError(f"{name} on {host.name}: package {given} has sha256 {digest}, not the expected {expected}")
    params["package"] = str(path.resolve())
    params["package_sha256"] = digest


def _accepted(module: ModuleType) -> set[str]:
    return {*module.VARS, *getattr(module, "OPTIONS", {}), *COMMON_OPTIONS}


def _all_options() -> set[str]:
    options = set(COMMON_OPTIONS)
    for name in PLAYBOOKS:
        options.update(getattr(load_playbook(name), "OPTIONS", {}))
    return options


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Given a value from the inventory or command line and the default it replaces, return it as the default's type."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {value!r} is not true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise ConfigError(f"{where}: {value!r} is not a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            try:
                return parse_duration(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: {value!r} is not a number of seconds or a duration such as \"60s\"")
    if isinstance(default, list):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(f"{where}: {value!r} is not a list of strings")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {value!r} is not a string")
