"""`opsguard plan | run | update | upgrade | rollback | restore`: playbooks on hosts, every change guarded."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opsguard.commands.fab import is_task_spec, print_task_plan
from opsguard.confirm import confirm_change
from opsguard.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    ConfigError,
    InventoryError,
    OpsguardError,
    worst_exit_code,
)
from opsguard.inventory import Host, Inventory
from opsguard.output import log, print_json
from opsguard.plan import Plan, format_plan, plan_to_dict
from opsguard.redact import redact

if TYPE_CHECKING:
    from opsguard.cli import AppContext


def _overrides(variables: tuple[str, ...], package: str | None = None, allow_reboot: bool = False,
               allow_major: bool = False) -> dict[str, object]:
    values: dict[str, object] = {}
    for item in variables:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--var {item!r}: expected KEY=VALUE")
        values[key.strip()] = value
    if package is not None:
        values["package"] = package
    if allow_reboot:
        values["allow_reboot"] = True
    if allow_major:
        values["allow_major"] = True
    return values


def _build(name: str, host: Host, overrides: dict[str, object]) -> Plan:
    from opsguard.playbooks import build_plan

    return build_plan(name, host, overrides)


ROLLBACK = "rollback"
ROLLED_BACK = "rolled_back"  # the rollback playbook's record of the run it undoes: only ever read from the ledger


def _refuse_rollback_record(overrides: dict[str, object]) -> None:
    """Given --var overrides, raise UsageError if they set the rollback's record of the run (it comes from the ledger)."""
    if ROLLED_BACK in overrides:
        raise click.UsageError(f"--var {ROLLED_BACK}: the run to undo is read from this machine's ledger: name it with "
                               "--run RUN")


def _rollback_overrides(inventory: Inventory, host: Host, run_id: str | None) -> dict[str, object]:
    """Given the inventory, a host and the run to undo (None: its last upgrade), return the rollback playbook's
    ``rolled_back`` option: the ledger's record of that run, as JSON; raise Refused if there is nothing to undo."""
    import json

    from opsguard.ledger import Ledger
    from opsguard.playbooks.rollback import rollback_source

    return {"rolled_back": json.dumps(rollback_source(Ledger(inventory.settings.state_dir), host.name, run_id))}


def _run_plan(
    inventory: Inventory, host: Host, plan: Plan, *, yes: bool, reason: str | None, overwrite_snapshot: bool, as_json: bool,
    rollback_of: str | None = None,
) -> None:
    from opsguard.runner import PlanRunner

    def confirm() -> None:
        confirm_change(
            host.name,
            [
                format_plan(plan),
                "",
                f"host {host.name} ({host.address}), {host.provider} instance "
                f"{host.instance if host.instance is not None else 'not set'}: "
                + (f"under run {rollback_of}'s snapshot while the provider still has it (else a new one), then the change above."
                   if rollback_of else "a full snapshot first, then the change above."),
            ],
            assume_yes=yes,
        )

    if plan.kind == "change":
        host.require_instance()  # a missing id is a config error before any SSH, not after preflight
        if not yes and not sys.stdin.isatty():
            confirm_change(host.name, [], assume_yes=False)  # SAFETY: nobody to ask: refuses before touching anything
    runner = PlanRunner(
        plan,
        host,
        inventory,
        reason=reason or f"{plan.playbook} via opsguard",
        overwrite_snapshot=overwrite_snapshot,
        confirm=confirm if plan.kind == "change" else None,
        json_output=as_json,
        rollback_of=rollback_of,
    )
    summary = runner.run()
    if as_json:
        print_json(summary.to_dict())


_COMMON = [
    click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."),
    click.option("--reason", default=None, help="Why (goes to the ledger)."),
    click.option("--overwrite-snapshot", is_flag=True, help="Hostinger: allow overwriting the rollback point of a failed change."),
    click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON."),
    click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Override a playbook var."),
]


def _common(function: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_COMMON):
        function = option(function)
    return function


@click.command()
@click.argument("host")
@click.argument("playbook")
@click.option("--package", type=click.Path(dir_okay=False), default=None, help="Zpro release archive (platform_upgrade).")
@click.option("--allow-reboot", is_flag=True, help="update: reboot when the host says it needs one.")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Override a playbook var.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--run", "run_id", default=None, help="rollback: the upgrade run to undo (default: the host's last one).")
@click.pass_obj
def plan(app: AppContext, host: str, playbook: str, package: str | None, allow_reboot: bool,
         variables: tuple[str, ...], as_json: bool, run_id: str | None) -> None:
    """Show exactly what PLAYBOOK would run on HOST (no network): 'upgrade' picks by the host's roles;
    'rollback' is built from this machine's ledger record of the run it undoes.

    For a Fabric task (FILE.py:TASK, as `opsguard fab` takes it): the guard's steps around the task.
    """
    inventory = app.inventory()
    target = inventory.host(host)
    if is_task_spec(playbook):
        if package is not None or allow_reboot or variables or run_id is not None:
            raise click.UsageError("--package, --allow-reboot, --var and --run are playbook options, not a Fabric task's")
        print_task_plan(target, playbook, as_json)
        return
    overrides = _overrides(variables, package, allow_reboot)
    if playbook == ROLLBACK:
        _refuse_rollback_record(overrides)
        overrides.update(_rollback_overrides(inventory, target, run_id))
    built = _build(playbook, target, overrides)
    if as_json:
        print_json(plan_to_dict(built))
    else:
        click.echo(format_plan(built))


@click.command()
@click.argument("host")
@click.argument("playbook")
@click.option("--package", type=click.Path(dir_okay=False), default=None, help="Zpro release archive (platform_upgrade).")
@click.option("--allow-reboot", is_flag=True, help="update: reboot when the host says it needs one.")
@click.option("--allow-major", is_flag=True, help="stack_upgrade: allow n8n or Typebot to jump a major version.")
@_common
@click.pass_obj
def run(app: AppContext, host: str, playbook: str, package: str | None, allow_reboot: bool, allow_major: bool, yes: bool,
        reason: str | None, overwrite_snapshot: bool, as_json: bool, variables: tuple[str, ...]) -> None:
    """Run PLAYBOOK on HOST: preflight, verified snapshot, change, verification."""
    if playbook == ROLLBACK:
        # SAFETY: run like any playbook it would skip guard rule 3d (the run's own snapshot, the run still the host's
        # last change, the ledger's link to it); refused before anything is read or asked.
        raise click.UsageError(f"the rollback playbook runs only through `opsguard rollback {host} [--run RUN]`: it reads "
                               "the run to undo from the ledger and runs under that run's snapshot (guard rule 3d)")
    inventory = app.inventory()
    target = inventory.host(host)
    built = _build(playbook, target, _overrides(variables, package, allow_reboot, allow_major))
    _run_plan(inventory, target, built, yes=yes, reason=reason, overwrite_snapshot=overwrite_snapshot, as_json=as_json)


@click.command()
@click.argument("hosts", nargs=-1)
@click.option("--all", "all_hosts", is_flag=True, help="Every inventory host, one after another.")
@click.option("--allow-reboot", is_flag=True, help="Reboot a host that says it needs one.")
@_common
@click.pass_context
def update(ctx: click.Context, hosts: tuple[str, ...], all_hosts: bool, allow_reboot: bool, yes: bool, reason: str | None,
           overwrite_snapshot: bool, as_json: bool, variables: tuple[str, ...]) -> None:
    """OS update (apt) of HOST... or --all: one host after another, each guarded; stop at the first failure."""
    inventory = ctx.obj.inventory()
    if all_hosts == bool(hosts):
        raise click.UsageError("name the hosts to update, or use --all (not both)")
    names = list(inventory.hosts) if all_hosts else list(hosts)
    targets = [inventory.host(name) for name in names]  # every name checked before the first change
    # Every host's instance id too: a fleet update must not stop half-way on a configuration problem.
    problems = []
    for target in targets:
        try:
            target.require_instance()
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise InventoryError(problems)
    codes: list[int] = []
    for target in targets:
        built = _build("update", target, _overrides(variables, None, allow_reboot))
        try:
            _run_plan(inventory, target, built, yes=yes, reason=reason, overwrite_snapshot=overwrite_snapshot, as_json=as_json)
            codes.append(EXIT_OK)
        except OpsguardError as error:
            if len(targets) == 1:
                raise
            for line in error.lines():
                click.echo(redact(line), err=True)
            updated = [t.name for t in targets[: len(codes)]]
            code = error.exit_code
            if code == EXIT_REFUSED and updated:
                # SAFETY: exit 3 says "nothing was changed"; the hosts before this one were. The fleet failed.
                log(f"{', '.join(updated)} updated before {target.name} was refused: the fleet update failed")
                code = EXIT_FAILED
            codes.append(code)
            rest = [t.name for t in targets[len(codes):]]
            if rest:
                log(f"stopping at the first failure: not updating {', '.join(rest)}")
            break
    ctx.exit(worst_exit_code(codes))


@click.command()
@click.argument("host")
@click.option("--package", type=click.Path(dir_okay=False), default=None, help="Zpro release archive (required for roles zpro).")
@click.option("--allow-major", is_flag=True, help="Compose stack: allow n8n or Typebot to jump a major version.")
@_common
@click.pass_obj
def upgrade(app: AppContext, host: str, package: str | None, allow_major: bool, yes: bool, reason: str | None,
            overwrite_snapshot: bool, as_json: bool, variables: tuple[str, ...]) -> None:
    """Upgrade the platform on HOST: Zpro (roles zpro, needs --package) or the compose stack (roles integrations)."""
    inventory = app.inventory()
    target = inventory.host(host)
    built = _build("upgrade", target, _overrides(variables, package, allow_major=allow_major))
    _run_plan(inventory, target, built, yes=yes, reason=reason, overwrite_snapshot=overwrite_snapshot, as_json=as_json)


@click.command()
@click.argument("host")
@click.option("--run", "run_id", default=None, help="The upgrade run to undo (default: the host's last one).")
@_common
@click.pass_obj
def rollback(app: AppContext, host: str, run_id: str | None, yes: bool, reason: str | None, overwrite_snapshot: bool,
             as_json: bool, variables: tuple[str, ...]) -> None:
    """Undo HOST's last (or --run) platform or stack upgrade without a provider restore: previous code and dump, or
    recorded images and dumps. Runs under that run's snapshot while the provider has it (no new snapshot)."""
    inventory = app.inventory()
    target = inventory.host(host)
    given = _overrides(variables)
    _refuse_rollback_record(given)
    overrides = {**given, **_rollback_overrides(inventory, target, run_id)}
    built = _build(ROLLBACK, target, overrides)
    undone = str(built.params["rolled_back_run"])
    _run_plan(inventory, target, built, yes=yes, reason=reason or f"rollback of run {undone} via opsguard",
              overwrite_snapshot=overwrite_snapshot, as_json=as_json, rollback_of=undone)


@click.command()
@click.argument("host")
@click.option("--snapshot", "snapshot_id", required=True, help="The snapshot id to restore (from the receipt or ledger).")
@click.option("--yes-i-typed-the-host", "typed_host", default=None, metavar="HOST",
              help="For scripts: the host name, as the typed confirmation.")
@click.option("--foreign-snapshot", is_flag=True,
              help="Vultr: allow a snapshot opsguard did not take of this host (e.g. made in the provider console).")
@click.option("--no-ssh", is_flag=True, help="The host cannot be reached over SSH: do not take its remote lock.")
@click.option("--no-wait", is_flag=True, help="Only request the restore; do not wait for the provider to confirm it.")
@click.pass_obj
def restore(app: AppContext, host: str, snapshot_id: str, typed_host: str | None, foreign_snapshot: bool, no_ssh: bool,
            no_wait: bool) -> None:
    """Restore HOST from a provider snapshot (destructive: replaces the disk). Typed confirmation required.

    Exit 0 once the provider confirms the restore complete (or, with --no-wait, accepted it), 1 if it
    says the restore failed, 3 refused (nothing started), 4 not confirmed.
    """
    from opsguard.progress import SnapshotWaitReporter
    from opsguard.restore import restore_snapshot

    inventory = app.inventory()
    target = inventory.host(host)
    reporter = SnapshotWaitReporter(target.name, what="the restore")
    try:
        restore_snapshot(inventory, target, snapshot_id, typed_host=typed_host, foreign_snapshot=foreign_snapshot,
                         ssh=not no_ssh, wait=not no_wait, on_progress=reporter)
    finally:
        reporter.close()
