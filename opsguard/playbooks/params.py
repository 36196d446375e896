"""A playbook's params: its defaults, overlaid by the host's inventory vars, then by the command line.

Every value is checked here, before any snapshot: the wrong type, a number that is not finite or above
its bound (a nan or inf wait would make a verification poll forever), text that is not strict UTF-8 or
holds a NUL (it ends up in shell text), an option the playbook does not take, a missing required option,
a bad release package. Each problem is a one-line ConfigError naming the host and the var.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from opsguard.commandline import validate_command_text
from opsguard.durations import parse_duration
from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.playbooks.base import Playbook
from opsguard.playbooks.common import number_maximum
from opsguard.playbooks.registry import all_playbooks, known_vars
from opsguard.playbooks.release import resolve_package

# Options every playbook takes: the run timestamp names this run's backup and staging directories.
COMMON_OPTIONS: dict[str, Any] = {"ts": None}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
# ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
_WHOLE_NUMBER = re.compile(r"\s*[0-9]+\s*", re.ASCII)
_LONGEST_WHOLE_NUMBER = 15


def params_for(playbook: Playbook, host: Host, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Given a playbook, a host and command-line overrides, return the plan's params.

    Params are the playbook's variables' defaults, overlaid by the host's inventory vars, then by the overrides
    (its VARS and OPTIONS, and ``ts``). The package, when the playbook takes one, is resolved to an
    absolute path and its sha256 computed here. Raise ConfigError (one line) for an inventory var no
    playbook knows, an override this playbook does not take, a value of the wrong type, a missing
    required option, or a package that is not a readable file, does not match a given sha256, or is
    not a release archive the host can unpack safely (see release_archive_problem).
    """
    name = playbook.name
    variables: dict[str, Any] = dict(playbook.variables)
    options: dict[str, Any] = {**COMMON_OPTIONS, **playbook.options}

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
            params[key] = _coerce(host.vars[key], default, key, f"{host.source}: hosts.{host.name}.vars.{key}")
        else:
            params[key] = default
    params.update(options)

    for key, value in (overrides or {}).items():
        if key in variables:
            params[key] = _coerce(value, variables[key], key, f"{name} on {host.name}: --var {key}")
        elif key in options:
            params[key] = _coerce(value, options[key], key, f"{name} on {host.name}: {_flag(key)}")
        else:
            label = _flag(key) if key in _all_options() else f"--var {key}"
            users = [other.name for other in all_playbooks() if other.name != name and key in _accepted(other)]
            hint = f"it is for {', '.join(users)}" if users else f"its vars: {', '.join(variables)}"
            raise ConfigError(f"{name} on {host.name} does not take {label} ({hint})")

    for key, how in playbook.required.items():
        if params.get(key) in (None, ""):
            raise ConfigError(f"{name} on {host.name} needs {how}")
    if params.get("ts") is None:
        params["ts"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if "package" in options and params.get("package"):
        resolve_package(params, name, host)
    return params




def check_vars(name: str, variables: Mapping[str, Any], host: Host) -> dict[str, Any]:
    """Given a read-only command's name (audit, health), the vars it reads {var: default} and a host, return its
    values: defaults overlaid by the host's inventory vars, each checked as a playbook's are; raise ConfigError."""
    return {key: _coerce(host.vars[key], default, key, f"{host.source}: hosts.{host.name}.vars.{key}")
            if key in host.vars else default for key, default in variables.items()}


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _coerce(value: Any, default: Any, key: str, where: str) -> Any:
    """Given a value from the inventory or command line, the default it replaces and its key, return it as the default's type.

    Numbers must be finite, not negative and at most number_maximum(key) (7 days for a duration):
    a nan or inf wait would make a verification poll forever. Text (and each list item) must be
    strict UTF-8 without NUL: it ends up in shell text sent to the host. Raise ConfigError naming ``where``.
    """
    for text in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(text, str):
            validate_command_text(text, what=where, allow_empty=True)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {value!r} is not true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return _bounded(value, key, where, shown=_quoted(value))
        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
            digits = value.strip().lstrip("0") or "0"
            if len(digits) > _LONGEST_WHOLE_NUMBER:  # int() refuses > 4300 digits; no bound is that long
                raise ConfigError(f"{where}: {_quoted(value)} is above the maximum of {number_maximum(key)[1]}")
            return _bounded(int(digits), key, where, shown=_quoted(value))
        raise ConfigError(f"{where}: {_quoted(value)} is not a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(_bounded(value, key, where, shown=_quoted(value)))
        if isinstance(value, str):
            seconds = _seconds(value)
            if seconds is not None:
                return float(_bounded(seconds, key, where, shown=_quoted(value)))
        raise ConfigError(f"{where}: {_quoted(value)} is not a number of seconds or a duration such as \"60s\"")
    if isinstance(default, list):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(f"{where}: {value!r} is not a list of strings")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {value!r} is not a string")


def _seconds(text: str) -> float | None:
    """Given a number of seconds ("50", "0.5", "nan" too) or a duration ("60s"), return seconds; None if neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _bounded(number: int | float, key: str, where: str, *, shown: str) -> int | float:
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}: {shown} is not a finite number")
    if number < 0:
        raise ConfigError(f"{where}: {shown} is negative")
    highest, words = number_maximum(key)
    if number > highest:
        raise ConfigError(f"{where}: {shown} is above the maximum of {words}")
    return number


def _quoted(value: Any) -> str:
    """Given a value from outside, return its repr, cut short when long (a 5000-digit number stays one short line)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _accepted(playbook: Playbook) -> set[str]:
    return {*playbook.variables, *playbook.options, *COMMON_OPTIONS}


def _all_options() -> set[str]:
    options = set(COMMON_OPTIONS)
    for playbook in all_playbooks():
        options.update(playbook.options)
    return options
