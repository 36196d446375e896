"""Playbooks: commands as data. Each is a ``Playbook`` (opsguard/playbooks/base.py, the contract) found
through one registry (registry.py); params are merged and checked in params.py, release packages in
release.py; the steps several playbooks share live in common.py.

Public API: ``build_plan``, ``list_playbooks``, ``load_playbook``, ``register``, ``known_vars``,
``params_for``, ``Playbook``, ``Example``.
"""

from __future__ import annotations

from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.params import params_for
from opsguard.playbooks.registry import (
    UPGRADE,
    all_playbooks,
    build_plan,
    known_vars,
    list_playbooks,
    load_playbook,
    playbook_for_upgrade,
    register,
    unregister,
)

__all__ = [
    "UPGRADE",
    "Example",
    "Playbook",
    "all_playbooks",
    "build_plan",
    "known_vars",
    "list_playbooks",
    "load_playbook",
    "params_for",
    "playbook_for_upgrade",
    "register",
    "unregister",
]

