"""`opsguard snapshot` (a verified snapshot for another script) and `opsguard exec` (snapshot, then one command)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from opsguard.commandline import CommandAfterHost, positive_duration_option, validate_command_text
from opsguard.confirm import confirm_change
from opsguard.errors import StepFailed
from opsguard.inventory import Host, Inventory
from opsguard.output import HostLinePrinter, log, print_json
from opsguard.progress import SnapshotWaitReporter

if TYPE_CHECKING:
    from opsguard.cli import AppContext


def receipt_lines(receipt: dict[str, object]) -> list[str]:
    """Given a receipt dict, return the human lines that describe it."""
    keys = ("host", "provider", "instance", "snapshot_id", "created_at", "verified_at", "expires_at", "run_id")
    return [f"{key:12} {receipt[key]}" for key in keys if receipt.get(key) is not None]


@click.command()
@click.argument("host")
@click.option("--reason", default="snapshot requested by a script", show_default=True, help="Why (goes to the ledger).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@click.option("--overwrite-snapshot", is_flag=True, help="Allow replacing a snapshot that is the rollback point of a failed change.")
@click.option("--no-ssh", is_flag=True,
              help="The host cannot be reached over SSH: skip its remote lock and change record (refused where a new "
                   "snapshot replaces the only one, unless --overwrite-snapshot).")
@click.pass_obj
def snapshot(app: AppContext, host: str, reason: str, as_json: bool, overwrite_snapshot: bool, no_ssh: bool) -> None:
    """Take a full snapshot of HOST and verify it complete; print the receipt.

    It obeys the same rules as a change: the host's remote lock and change record (over SSH), the
    ledger, and the protection of a failed change's rollback point. Exit 0 verified, 3 refused,
    4 provider or host unreachable, 78 configuration.
    """
    from opsguard.guard import snapshot_guard

    inventory = app.inventory()
    target = inventory.host(host)
    validate_command_text(reason, what="--reason")
    reporter = SnapshotWaitReporter(target.name)
    try:
        with snapshot_guard(
            target,
            reason=reason,
            inventory=inventory,
            ssh=not no_ssh,
            overwrite_snapshot=overwrite_snapshot,
            on_progress=reporter,
            command="snapshot",
        ) as change:
            receipt = change.receipt.to_dict()
    finally:
        reporter.close()
    reporter.done(f"{target.name}: snapshot {receipt['snapshot_id']} verified complete (run {receipt['run_id']})")
    if as_json:
        print_json(receipt)
    else:
        click.echo("\n".join(receipt_lines(receipt)))


def command_text(words: tuple[str, ...]) -> str:
    """Given the command's words, return the shell text: one word is shell text as is, several are quoted."""
    if len(words) == 1:
        return words[0]
    return shlex.join(words)


# Options come before the command's first word; from that word on (or after `--`) every word is the command's.
@click.command(cls=CommandAfterHost)
@click.argument("host")
@click.argument("words", nargs=-1, required=True, type=click.UNPROCESSED, metavar="[--] CMD...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--reason", default=None, help="Why (goes to the ledger).")
@click.option("--timeout", default="60m", show_default=True, help="Give up on CMD after this long (exit 4; it is stopped).")
@click.option("--overwrite-snapshot", is_flag=True, help="Allow replacing a snapshot that is the rollback point of a failed change.")
@click.pass_obj
def exec_command(
    app: AppContext, host: str, words: tuple[str, ...], yes: bool, reason: str | None, timeout: str, overwrite_snapshot: bool
) -> None:
    """Snapshot HOST, verify it, then run CMD on it as one change step, streaming its output.

    Exit 0 if CMD exits 0, 1 if it exits non-zero, 3 refused, 4 connection dropped or timed out.
    """
    inventory = app.inventory()
    target = inventory.host(host)
    # Bad input costs nothing: every input is checked before anything is asked, snapshotted or sent.
    seconds = positive_duration_option(timeout, option="--timeout")
    text = command_text(words)
    validate_command_text(text, what="exec command")
    if reason is not None:
        validate_command_text(reason, what="--reason")
    target.require_instance()
    confirm_change(
        target.name,
        [
            f"host      {target.name} ({target.address})",
            f"provider  {target.provider} instance {target.instance if target.instance is not None else 'not set'}",
            "first     a full snapshot, verified complete",
            f"then run  {text}",
        ],
        assume_yes=yes,
    )
    reporter = SnapshotWaitReporter(target.name)
    stream = HostLinePrinter(target.name)
    try:
        _exec_guarded(target, inventory, text, seconds, reason, overwrite_snapshot, reporter, stream)
    finally:
        reporter.close()


def _exec_guarded(target: Host, inventory: Inventory, text: str, seconds: float, reason: str | None,
                  overwrite_snapshot: bool, reporter: SnapshotWaitReporter, stream: Callable[[str, str], None]) -> None:
    from opsguard.guard import snapshot_guard

    with snapshot_guard(
        target,
        reason=reason or f"exec: {text}",
        inventory=inventory,
        overwrite_snapshot=overwrite_snapshot,
        on_progress=reporter,
        command=f"exec {text}",
    ) as change:
        snapshot_id = change.receipt.snapshot_id
        reporter.done(f"{target.name}: snapshot {snapshot_id} verified; running: {text}")
        result = change.run(text, name="exec", timeout=seconds, on_output=stream)
        if result.exit_status != 0:
            # The guard adds the rollback point to the error (the change had started).
            raise StepFailed(f"host {target.name}: step 'exec' exited {result.exit_status}", step="exec",
                             exit_status=result.exit_status)
    log(f"{target.name}: done (exit 0); snapshot {snapshot_id} is the rollback point")
