"""Steps and plans as data: what a playbook will run, shown by `opsguard plan` before anything runs.

A command may refer to facts read on the host by earlier steps with ``{{name}}`` (double braces,
so shell ``${VAR}`` and awk ``{print}`` stay literal). ``render`` fills them in at run time.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PHASES = ("preflight", "change", "verify")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Check:
    """A test of a step's output. ``test(stdout)`` returns None when it passes, else the reason."""

    description: str
    test: Callable[[str], str | None] = field(compare=False)


@dataclass(frozen=True)
class Facts:
    """Reads named facts from a step's output for later steps: ``parse(stdout) -> {name: value}``."""

    names: tuple[str, ...]
    parse: Callable[[str], dict[str, str]] = field(compare=False)


@dataclass(frozen=True)
class Poll:
    """Repeat a step until it passes (exit code and check) or ``within`` seconds have passed.

    With ``hold`` > 0 the step must keep passing for that long (e.g. pm2 restart counts stable).
    """

    every: float
    within: float
    hold: float = 0.0
    reconnect: bool = False  # the host may drop the connection meanwhile (a reboot): re-open it and go on


COPY_KINDS = ("file", "dir", "container-file", "container-env")


@dataclass(frozen=True)
class CopyItem:
    """One thing copied off the host to the machine running opsguard (see opsguard/copies.py).

    ``kind``: "file" (``path`` on the host), "dir" (every regular file under ``path``), "container-file"
    (``path`` inside compose ``service`` of the project in ``compose_dir``), "container-env" (the variable
    ``path`` of that service's environment). ``name`` is where it goes under the run's copy dir. An
    ``optional`` item that is missing on the host is noted in the manifest; a required one fails the step.
    """

    name: str
    path: str
    kind: str = "file"
    service: str = ""
    compose_dir: str = ""
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in COPY_KINDS:
            raise ValueError(f"copy item {self.name}: kind must be one of {', '.join(COPY_KINDS)}, not {self.kind!r}")


@dataclass(frozen=True)
class Download:
    """What a copy step takes off the host: its items, how many runs' copies to keep per host, the size cap, and
    the fact (read in preflight) holding the estimated size in bytes, checked against local free space before
    the snapshot."""

    items: tuple[CopyItem, ...]
    keep: int = 3
    max_bytes: int = 20 * 10**9
    size_fact: str = "copies_bytes"


@dataclass(frozen=True)
class Step:
    """One remote command (or one SFTP upload when ``upload`` is set, or copies off the host when ``download`` is)."""

    name: str
    command: str | tuple[str, ...]
    mutates: bool
    timeout: float = 300.0
    ok_codes: tuple[int, ...] = (0,)
    sudo_user: str | None = None
    check: Check | None = None
    facts: Facts | None = None
    poll: Poll | None = None
    upload: tuple[str, str] | None = None  # (local path, remote path)
    download: Download | None = None  # copies off the host, through read-only commands (opsguard/copies.py)
    # "starts": the first step that stops service; "ends": service back (HTTP healthy); "channels-back": every
    # WhatsApp channel CONNECTED before is again (the second downtime, the one the clients feel).
    downtime: str | None = None
    why: str = ""

    def shell_text(self) -> str:
        """Given this step, return its command as one shell string (argv is quoted)."""
        if isinstance(self.command, tuple):
            return shlex.join(self.command)
        return self.command


@dataclass(frozen=True)
class Plan:
    """A playbook's plan for one host: read-only preflight, the change, and read-only verification."""

    playbook: str
    host: str
    kind: str  # "change" | "read-only"
    summary: str
    preflight: tuple[Step, ...] = ()
    change: tuple[Step, ...] = ()
    verify: tuple[Step, ...] = ()
    rollback: tuple[str, ...] = ()  # advice lines; may hold {{facts}} and {snapshot_id}
    params: Mapping[str, Any] = field(default_factory=dict)

    def phases(self) -> list[tuple[str, tuple[Step, ...]]]:
        """Given this plan, return its (phase name, steps) pairs in running order."""
        return [("preflight", self.preflight), ("change", self.change), ("verify", self.verify)]

    def steps(self) -> list[Step]:
        """Given this plan, return every step in running order."""
        return [*self.preflight, *self.change, *self.verify]


def render(text: str, facts: Mapping[str, str]) -> str:
    """Given a command with {{name}} placeholders and the facts read so far, return it filled in.

    Raise KeyError naming the first placeholder no earlier step has provided.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in facts:
            raise KeyError(name)
        return str(facts[name])

    return _PLACEHOLDER.sub(substitute, text)


def placeholders(text: str) -> list[str]:
    """Given a command, return the fact names it refers to, in order."""
    return _PLACEHOLDER.findall(text)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Given a plan, return a JSON-ready dict (the `opsguard plan --json` format)."""

    def step_dict(step: Step) -> dict[str, Any]:
        return {
            "name": step.name,
            "command": step.shell_text() if step.upload is None else None,
            "upload": list(step.upload) if step.upload else None,
            "download": (
                {"items": [{"name": item.name, "kind": item.kind, "path": item.path, "service": item.service or None,
                            "optional": item.optional} for item in step.download.items],
                 "keep": step.download.keep, "max_bytes": step.download.max_bytes}
                if step.download
                else None
            ),
            "mutates": step.mutates,
            "timeout": step.timeout,
            "ok_codes": list(step.ok_codes),
            "sudo_user": step.sudo_user,
            "check": step.check.description if step.check else None,
            "facts": list(step.facts.names) if step.facts else [],
            "poll": (
                {"every": step.poll.every, "within": step.poll.within, "hold": step.poll.hold, "reconnect": step.poll.reconnect}
                if step.poll
                else None
            ),
            "downtime": step.downtime,
            "why": step.why,
        }

    return {
        "playbook": plan.playbook,
        "host": plan.host,
        "kind": plan.kind,
        "summary": plan.summary,
        "params": dict(plan.params),
        "preflight": [step_dict(step) for step in plan.preflight],
        "change": [step_dict(step) for step in plan.change],
        "verify": [step_dict(step) for step in plan.verify],
        "rollback": list(plan.rollback),
    }


def format_plan(plan: Plan) -> str:
    """Given a plan, return the text `opsguard plan` prints: every step, what it changes, where downtime lies."""
    lines = [f"{plan.playbook} on {plan.host} ({plan.kind}): {plan.summary}"]
    if plan.kind == "change" and plan.params.get("rolled_back_run"):
        lines.append(f"  after preflight: run {plan.params['rolled_back_run']}'s verified snapshot, while the provider still "
                     "has it (no new snapshot); if it is gone, a new one, before step 1 of the change")
    elif plan.kind == "change":
        lines.append("  after preflight: a full provider snapshot of the host, verified complete, before step 1 of the change")
    number = 0
    for phase, steps in plan.phases():
        if not steps:
            continue
        lines.append(f"{phase}:")
        for step in steps:
            number += 1
            if step.downtime == "starts":
                lines.append("  ---- downtime starts: services stop here ----")
            marker = "CHANGES" if step.mutates else "read   "
            who = f" (as {step.sudo_user})" if step.sudo_user else ""
            lines.append(f"  {number:2}. [{marker}] {step.name}{who}")
            if step.upload:
                lines.append(f"        upload {step.upload[0]} -> {step.upload[1]}")
            elif step.download:
                for item in step.download.items:
                    where = f"{item.path} in service {item.service}" if item.service else item.path
                    what = {"dir": "every file under ", "container-env": "environment variable "}.get(item.kind, "")
                    optional = " (if present)" if item.optional else ""
                    lines.append(f"        copy {what}{where}{optional} -> copies/{plan.host}/<run>/{item.name}")
                lines.append(f"        sha256 on the host and after the copy must match; keep the last {step.download.keep} "
                             "runs' copies of this host")
            else:
                for text in step.shell_text().splitlines():
                    lines.append(f"        $ {text}")
            if step.check:
                lines.append(f"        check: {step.check.description}")
            if step.poll:
                hold = f", must hold {step.poll.hold:g}s" if step.poll.hold else ""
                lines.append(f"        repeat every {step.poll.every:g}s for up to {step.poll.within:g}s{hold}")
            if step.downtime == "ends":
                lines.append("  ---- downtime ends: service healthy again ----")
            if step.downtime == "channels-back":
                lines.append("  ---- channels back: every WhatsApp channel CONNECTED before is again ----")
    if plan.rollback:
        lines.append("rollback if it fails:")
        # {snapshot_id} is known only once the snapshot is verified; the plan says what it will be.
        lines.extend(f"  {line}".replace("{snapshot_id}", "<the snapshot taken before the change>") for line in plan.rollback)
    return "\n".join(lines)
