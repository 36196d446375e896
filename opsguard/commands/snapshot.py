"""`opsguard snapshot` (for scripts; no SSH) and `opsguard exec` (snapshot, then one command)."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import click

from opsguard.confirm import confirm_change
from opsguard.durations import parse_duration
from opsguard.errors import ConfigError, StepFailed
from opsguard.inventory import Host, Inventory
from opsguard.output import HostLinePrinter, log, print_json
from opsguard.progress import SnapshotWaitReporter


def receipt_lines(receipt: dict[str, object]) -> list[str]:
    """Given a receipt dict, return the human lines that describe it."""
    keys = ("host", "provider", "instance", "snapshot_id", "created_at", "verified_at", "expires_at", "run_id")
    return [f"{key:12} {receipt[key]}" for key in keys if receipt.get(key) is not None]


@click.command()
@click.argument("host")
@click.option("--reason", default="snapshot requested by a script", show_default=True, help="Why (goes to the ledger).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@click.option("--overwrite-snapshot", is_flag=True, help="Hostinger: allow overwriting the rollback point of a failed change.")
@click.pass_obj
def snapshot(app: object, host: str, reason: str, as_json: bool, overwrite_snapshot: bool) -> None:
    """Take a full snapshot of HOST and verify it complete; print the receipt.

    Exit 0 verified, 3 refused, 4 provider unreachable, 78 configuration.
    """
    from opsguard.guard import snapshot_guard

    inventory = app.inventory()  # type: ignore[attr-defined]
    target = inventory.host(host)
    reporter = SnapshotWaitReporter(target.name)
    try:
        with snapshot_guard(
            target,
            reason=reason,
            inventory=inventory,
            ssh=False,
            overwrite_snapshot=overwrite_snapshot,
            on_progress=reporter,
            command="snapshot",
        ) as change:
            assert change.receipt is not None
            receipt = change.receipt.to_dict()
    finally:
        reporter.close()
    reporter.done(f"{target.name}: snapshot {receipt['snapshot_id']} verified complete")
    if as_json:
        print_json(receipt)
    else:
        click.echo("\n".join(receipt_lines(receipt)))


def command_text(words: tuple[str, ...]) -> str:
    """Given the words after `--`, return the shell text: one word is shell text as is, several are quoted."""
    if len(words) == 1:
        return words[0]
    return shlex.join(words)


# Options may come after HOST (`exec chat --yes -- cmd`); after `--` every word belongs to CMD.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("words", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--reason", default=None, help="Why (goes to the ledger).")
@click.option("--timeout", default="60m", show_default=True, help="Give up on CMD after this long (exit 4).")
@click.option("--overwrite-snapshot", is_flag=True, help="Hostinger: allow overwriting the rollback point of a failed change.")
@click.pass_obj
def exec_command(
    app: object, host: str, words: tuple[str, ...], yes: bool, reason: str | None, timeout: str, overwrite_snapshot: bool
) -> None:
    """Snapshot HOST, verify it, then run CMD on it as one change step, streaming its output.

    Exit 0 if CMD exits 0, 1 if it exits non-zero, 3 refused, 4 connection dropped.
    """

    inventory = app.inventory()  # type: ignore[attr-defined]
    target = inventory.host(host)
    try:
        seconds = parse_duration(timeout)
    except ValueError as error:
        raise ConfigError(f"--timeout: {error}") from None
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise click.UsageError("give the command after --, e.g. opsguard exec chat -- uptime")
    text = command_text(words)
    target.require_instance()  # a configuration problem is reported before asking anything
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
        assert change.receipt is not None
        snapshot_id = change.receipt.snapshot_id
        reporter.done(f"{target.name}: snapshot {snapshot_id} verified; running: {text}")
        result = change.run(text, name="exec", timeout=seconds, on_output=stream)
        if result.exit_status != 0:
            raise StepFailed(
                f"host {target.name}: step 'exec' exited {result.exit_status}; rollback point: snapshot {snapshot_id} "
                f"(opsguard restore {target.name} --snapshot {snapshot_id})",
                step="exec",
                exit_status=result.exit_status,
            )
    log(f"{target.name}: done (exit 0); snapshot {snapshot_id} is the rollback point")
