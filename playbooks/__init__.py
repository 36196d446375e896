"""Playbooks: commands as data. Each module is one playbook; opsguard.playbooks loads them by name.

A playbook module has:
- ``KIND``: "change" (runs inside the snapshot guard) or "read-only";
- a docstring: what it does and why it is safe;
- ``VARS``: {var: default} it reads from ``[hosts.NAME.vars]`` (defaults = the real host layout);
- ``OPTIONS``: {option: default} it takes from the command line (package, allow_reboot...);
- optionally ``REQUIRED``: {option: how to give it}, e.g. {"package": "--package FILE"};
- a PURE ``plan(host, params) -> opsguard.plan.Plan``: no I/O; params are VARS overlaid by the host's
  vars, then by command-line options, plus the run timestamp ``ts``.

Modules whose name starts with "_" hold shared pieces and are not playbooks.
"""
