"""`opsguard fab`: a Fabric task from the team's task file, run on a host inside the snapshot guard.

The task file is imported, the task found and its arguments parsed BEFORE anything is asked,
snapshotted or sent: a typo in the file, the task's name or an argument costs nothing. Then the
task gets a guarded connection (opsguard/fabric_tasks.py): each call it makes is a recorded step.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsguard.commandline import validate_command_text
from opsguard.confirm import confirm_change
from opsguard.durations import format_duration
from opsguard.inventory import Host, Inventory
from opsguard.output import HostLinePrinter, log, print_json
from opsguard.progress import SnapshotWaitReporter
from opsguard.tables import Table, print_table
from opsguard.textsafe import printable

if TYPE_CHECKING:
    from opsguard.cli import AppContext


@dataclass(frozen=True)
class TaskSpec:
    """``FILE.py:TASK`` as given on the command line."""

    file: Path
    task: str


def is_task_spec(text: str) -> bool:
    """Given a command-line word, return whether it names a task file (``FILE.py`` or ``FILE.py:TASK``), not a playbook."""
    return text.partition(":")[0].endswith(".py")


def parse_task_spec(text: str) -> TaskSpec:
    """Given ``FILE.py:TASK``, return the spec; raise click.UsageError (exit 2) if the task is not named."""
    file, separator, task = text.rpartition(":")
    if not separator or not file.endswith(".py") or not task.strip():
        raise click.UsageError(f"{text!r}: name the task as FILE.py:TASK (opsguard fab --list FILE.py lists them)")
    return TaskSpec(Path(file), task.strip())


@click.command()
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="HOST FILE.py:TASK [-- TASK_ARGS...]")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--reason", default=None, help="Why (goes to the ledger).")
@click.option("--overwrite-snapshot", is_flag=True, help="Allow replacing a snapshot that is the rollback point of a failed change.")
@click.option("--list", "list_file", is_flag=True, help="List the tasks of FILE.py (opsguard fab --list FILE.py).")
@click.pass_obj
def fab(app: AppContext, words: tuple[str, ...], yes: bool, reason: str | None, overwrite_snapshot: bool,
        list_file: bool) -> None:
    """Snapshot HOST, verify it, then run TASK from FILE.py with a guarded connection: each of its calls a recorded step.

    TASK_ARGS (after --) are the task's, as Fabric takes them: --name value, --flag, positionals.
    The task gets c.run, c.sudo, c.put, c.get, c.local, c.cd, c.prefix; c.client, c.transport,
    port forwarding, pty and watchers are refused. Exit 0 task completed, 1 a call or the task failed
    (rollback advice printed), 2 usage, 3 refused (nothing changed), 4 outcome unknown, 78 task file or
    inventory.
    """
    from opsguard.fabric_tasks import check_task_hosts, find_task, load_task_file, parse_task_arguments

    if list_file:
        if len(words) != 1:
            raise click.UsageError("--list takes the task file only: opsguard fab --list FILE.py")
        _print_tasks(words[0])
        return
    if len(words) < 2:
        raise click.UsageError("expected HOST FILE.py:TASK [-- TASK_ARGS...]")
    host, spec_text, task_words = words[0], words[1], words[2:]
    inventory = app.inventory()
    target = inventory.host(host)
    # Every input is checked before anything is asked, snapshotted or sent.
    if reason is not None:
        validate_command_text(reason, what="--reason")
    for word in task_words:
        validate_command_text(word, what="task argument", allow_empty=True)
    spec = parse_task_spec(spec_text)
    task = find_task(load_task_file(spec.file), spec.task)
    check_task_hosts(task, target)
    arguments = parse_task_arguments(task, task_words)
    target.require_instance()
    shown = " ".join([f"{spec.file}:{task.name}", *(shlex.quote(word) for word in task_words)])
    confirm_change(
        target.name,
        [
            f"host      {target.name} ({target.address})",
            f"provider  {target.provider} instance {target.instance if target.instance is not None else 'not set'}",
            "first     a full snapshot, verified complete",
            f"then run  task {printable(shown)}: each of its calls a recorded step",
        ],
        assume_yes=yes,
    )
    reporter = SnapshotWaitReporter(target.name)
    try:
        _fab_guarded(target, inventory, task, arguments, shown, reason, overwrite_snapshot, reporter)
    finally:
        reporter.close()


def _fab_guarded(target: Host, inventory: Inventory, task: Any, arguments: dict[str, Any], shown: str,
                 reason: str | None, overwrite_snapshot: bool, reporter: SnapshotWaitReporter) -> None:
    from opsguard.fabric_tasks import call_task
    from opsguard.guard import snapshot_guard

    with snapshot_guard(
        target,
        reason=reason or f"Fabric task {task.name}",
        inventory=inventory,
        overwrite_snapshot=overwrite_snapshot,
        on_progress=reporter,
        command=f"fab {shown}",
    ) as change:
        snapshot_id = change.receipt.snapshot_id
        reporter.done(f"{target.name}: snapshot {snapshot_id} verified; running task {task.name}")
        connection = change.fabric(task=task.name, output=HostLinePrinter(target.name))
        try:
            call_task(connection, task, arguments)
        finally:
            print_calls(target.name, task.name, connection.calls)
    log(f"{target.name}: task {task.name} done; snapshot {snapshot_id} is the rollback point")


_CALL_COLOURS = {"ok": "green", "read": "green", "failed": "red", "read failed": "red", "error": "yellow"}


def print_calls(host: str, task: str, calls: list[Any]) -> None:
    """Given the calls a task made, print each with its result and duration on stderr: a table on a terminal, lines off one."""
    if not calls:
        return
    title = f"{host}: summary of task {task}"
    plain = [title, *(f"  {call.result:11} {format_duration(call.duration):>8}  {printable(call.name)}" for call in calls)]
    rows = [[call.result, format_duration(call.duration), call.name] for call in calls]
    print_table(Table(["RESULT", "TIME", "CALL"], rows, title=title, right=frozenset({1}),
                      colour=lambda column, cell: _CALL_COLOURS.get(cell) if column == 0 else None),
                stream=sys.stderr, plain=plain)


def _print_tasks(file: str) -> None:
    """Given a task file, print its tasks: name, arguments, first line of the docstring."""
    from opsguard.fabric_tasks import load_task_file

    loaded = load_task_file(Path(file))
    if loaded.plain_functions:
        click.echo(f"{file}: no @task; its public functions of a connection are the tasks")
    rows = []
    for name in loaded.names():
        task = loaded.tasks[name]
        arguments = " ".join(f"--{argument.name}" for argument in task.get_arguments())
        summary = (task.__doc__ or "").strip().splitlines()[0] if (task.__doc__ or "").strip() else ""
        rows.append([name, arguments, summary])
    if not rows:
        click.echo(f"{file}: no tasks")
        return
    # Plain lines on a terminal too: a listing is quick, and rich's import would double its time (BENCHMARKS.md).
    click.echo("\n".join(printable(f"{name:20} {arguments:30} {summary}".rstrip()) for name, arguments, summary in rows))


# -- `opsguard plan HOST FILE.py:TASK` --------------------------------------------------------------------


def guard_steps(host: Host) -> list[tuple[str, str]]:
    """Given a host, return the guard's steps around a task, in order, as (phase, what) pairs."""
    instance = host.instance if host.instance is not None else "not set"
    return [
        ("guard", f"{host.provider} instance {instance}: exists, running, not locked by the provider; its IP is "
                  f"{host.address}"),
        ("guard", f"local lock; SSH to that IP with a strict host key; remote lock {host.remote_lock}"),
        ("guard", f"the host's change record ({host.remote_state}) and the ledger must not protect the rollback "
                  "point of an unsettled change"),
        ("snapshot", "ONE full snapshot requested, polled until complete, verified"),
        ("change", "then: the task's calls (run, sudo, put, get), each a recorded step — read-only text a recorded "
                   "read, anything else a mutating step; a failed call stops the task"),
        ("guard", "the change record gets the outcome, the locks are released, the run ends in the ledger; on "
                  f"failure the rollback point is printed (opsguard restore {host.name} --snapshot ID)"),
    ]


def print_task_plan(host: Host, spec_text: str, as_json: bool) -> None:
    """Given a host and FILE.py:TASK, print what `opsguard fab` would do: the guard's steps around the task (no network).

    Raise click.UsageError / ConfigError as `opsguard fab` would for the same task.
    """
    from opsguard.fabric_tasks import check_task_hosts, find_task, load_task_file

    spec = parse_task_spec(spec_text)
    task = find_task(load_task_file(spec.file), spec.task)
    check_task_hosts(task, host)
    steps = guard_steps(host)
    arguments = [argument.name for argument in task.get_arguments()]
    if as_json:
        print_json({"host": host.name, "kind": "fabric-task", "file": str(spec.file), "task": task.name,
                    "arguments": arguments, "calls_known_in_advance": False,
                    "steps": [{"phase": phase, "what": what} for phase, what in steps]})
        return
    lines = [
        f"plan: task {task.name} from {spec.file} on {host.name} ({host.address})",
        "opsguard cannot know in advance what a Python task will run: its calls are decided as it runs.",
        "The guard's steps around it:",
        *(f"  {phase:9} {what}" for phase, what in steps),
    ]
    click.echo("\n".join(printable(line) for line in lines))
