"""The playbook contract: what a playbook is, in one typed object the registry, the CLI and the tests share.

A playbook is a module of opsguard/playbooks/ (or any code that calls ``register``) defining
``PLAYBOOK = Playbook(...)``:

- ``name``, ``kind`` ("change": its change steps run inside the snapshot guard; "read-only": it never
  changes the host) and a one-line ``summary``;
- ``variables``: {var: default} it reads from ``[hosts.NAME.vars]`` (the defaults are the real host
  layout; the inventory accepts only vars some playbook declares) and ``--var``;
- ``options``: {option: default} it takes from the command line (``--package``, ``--allow-reboot``);
  ``required``: {option: how to give it};
- ``roles``: the host roles for which ``opsguard upgrade`` picks it;
- ``build``: a PURE ``build(host, params) -> Plan`` (no I/O); params are the variables overlaid by the
  host's vars, then the command line, plus the run timestamp ``ts``. Steps it declares read-only must be
  in the read-only vocabulary (opsguard/readonly.py): the registry checks every plan it builds;
- ``examples``: the shapes it takes (roles and options), which every safety test builds and checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from opsguard.inventory import Host
from opsguard.plan import Plan

Kind = Literal["change", "read-only"]


@dataclass(frozen=True)
class Example:
    """One shape of a playbook for the tests: the host's roles and the command-line options.

    ``package`` names the kind of release archive ("zip", "tar.gz") the tests create for ``--package``.
    """

    roles: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    package: str | None = None


@dataclass(frozen=True)
class Playbook:
    """One playbook: see the module docstring for each field."""

    name: str
    kind: Kind
    summary: str
    variables: Mapping[str, Any]
    build: Callable[[Host, Mapping[str, Any]], Plan] = field(compare=False)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    required: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    roles: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("change", "read-only"):
            raise ValueError(f"playbook {self.name}: kind must be 'change' or 'read-only', not {self.kind!r}")
        if not self.examples:
            raise ValueError(f"playbook {self.name}: give at least one example, so the safety tests build it")
