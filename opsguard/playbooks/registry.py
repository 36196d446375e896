"""The ONE registry of playbooks: the CLI, `opsguard plan`, the inventory's var check and every safety test
find playbooks here, so a new playbook cannot skip any of them.

The built-in playbooks are modules of this package listed in BUILTIN (imported only when asked for);
``register`` adds another (a site's own playbook, or a test's). ``upgrade`` is not a playbook: it picks
the playbook whose ``roles`` match the host's.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.plan import Plan
from opsguard.playbooks.base import Playbook

BUILTIN = ("update", "platform_upgrade", "stack_upgrade", "rollback")
# The read-only nightly commands read inventory vars too (their VARS, like a playbook's variables).
CHECK_MODULES = ("opsguard.audit", "opsguard.health")
UPGRADE = "upgrade"
_REGISTERED: dict[str, Playbook] = {}


def register(playbook: Playbook) -> Playbook:
    """Given a playbook, add it to the registry and return it; raise ValueError if its name is taken."""
    if playbook.name in _REGISTERED or playbook.name in BUILTIN or playbook.name == UPGRADE:
        raise ValueError(f"a playbook named {playbook.name!r} is already registered")
    _REGISTERED[playbook.name] = playbook
    return playbook


def unregister(name: str) -> None:
    """Given a name added with ``register``, remove it (tests clean up with this)."""
    _REGISTERED.pop(name, None)


def list_playbooks() -> list[str]:
    """Return every playbook name ("upgrade" is an alias picked by roles, see playbook_for_upgrade)."""
    return [*BUILTIN, *_REGISTERED]


def all_playbooks() -> list[Playbook]:
    """Return every registered playbook."""
    return [playbook_named(name) for name in list_playbooks()]


def playbook_named(name: str) -> Playbook:
    """Given a playbook name, return it; raise ConfigError if there is none."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise ConfigError(f"unknown playbook {name!r} (playbooks: {', '.join(list_playbooks())}, or {UPGRADE!r} by role)")
    playbook: Playbook = importlib.import_module(f"opsguard.playbooks.{name}").PLAYBOOK
    return playbook


def playbook_for_upgrade(host: Host) -> Playbook:
    """Given a host, return the upgrade playbook its roles call for; raise ConfigError unless exactly one matches."""
    chosen = [playbook for playbook in all_playbooks() if set(playbook.roles) & set(host.roles)]
    if len(chosen) != 1:
        roles = ", ".join(host.roles) or "none"
        by_role = ", ".join(f"{role} -> {playbook.name}" for playbook in all_playbooks() for role in playbook.roles)
        raise ConfigError(
            f"{host.source}: hosts.{host.name}.roles: [{roles}]: 'upgrade' needs a role that picks exactly one playbook "
            f"({by_role}), or name the playbook"
        )
    return chosen[0]


def load_playbook(name: str, host: Host | None = None) -> Playbook:
    """Given a playbook name (or "upgrade" with a host), return the playbook; raise ConfigError if unknown."""
    if name == UPGRADE:
        if host is None:
            raise ConfigError("playbook 'upgrade' is picked by the host's roles: name the host")
        return playbook_for_upgrade(host)
    return playbook_named(name)


def known_vars() -> dict[str, list[str]]:
    """Return {var: [playbooks and commands that read it]} over every playbook, audit and health, for checking inventory vars."""
    known: dict[str, list[str]] = {}
    for playbook in all_playbooks():
        for var in playbook.variables:
            known.setdefault(var, []).append(playbook.name)
    for module_name in CHECK_MODULES:
        for var in importlib.import_module(module_name).VARS:
            known.setdefault(var, []).append(module_name.rsplit(".", 1)[-1])
    return known


def build_plan(name: str, host: Host, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Given a playbook name (or "upgrade"), a host and command-line overrides, return the plan.

    Raise ConfigError for an unknown playbook, a bad var or option, a missing required option, or a
    step declared read-only that is not in the read-only vocabulary.
    """
    from opsguard.playbooks.params import params_for

    playbook = load_playbook(name, host)
    params = params_for(playbook, host, overrides)
    try:
        plan = playbook.build(host, params)
    except ConfigError as error:  # the playbook checks its params; say which playbook and host
        raise ConfigError(f"{playbook.name} on {host.name}: {error}") from None
    check_read_only_steps(plan)
    return plan


def check_read_only_steps(plan: Plan) -> None:
    """Given a plan, return if every step it declares read-only is in the read-only vocabulary; raise ConfigError if not.

    SAFETY: preflight runs before the snapshot; a step that only SAYS it reads would change the host
    unprotected. The sessions check the rendered text again before sending it.
    """
    from opsguard.readonly import read_only_problem

    for step in plan.steps():
        if step.mutates:
            continue
        problem = "an upload writes a file" if step.upload is not None else read_only_problem(step.shell_text())
        if problem:
            raise ConfigError(f"{plan.playbook} on {plan.host}: step {step.name!r} is declared read-only but {problem}")
