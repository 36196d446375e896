"""`opsguard ledger`: the audit trail of every snapshot, step and outcome."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsguard.output import print_json
from opsguard.textsafe import printable

if TYPE_CHECKING:
    pass


def describe(record: dict[str, Any]) -> str:
    """Given a ledger record, return its one-line human description."""
    event = record.get("event", "?")
    if event == "run-started":
        return f"started: {record.get('command') or ''} ({record.get('reason', '')}) by {record.get('user', '?')}@{record.get('machine', '?')}"
    if event == "snapshot-requested":
        previous = record.get("previous_snapshot") or {}
        extra = f", overwrites {previous.get('snapshot_id')}" if previous else ""
        handle = record.get("snapshot_id") or f"action {record.get('action_id')}"
        return f"snapshot requested: {handle}{' (recovered after a lost answer)' if record.get('recovered') else ''}{extra}"
    if event == "snapshot-verified":
        receipt = record.get("receipt") or {}
        return f"snapshot verified: {receipt.get('snapshot_id')} created {receipt.get('created_at')}"
    if event == "snapshot-failed":
        return f"snapshot failed ({record.get('stage')}): {record.get('error')}"
    if event == "step":
        if record.get("phase") == "started":
            return f"step started, no end recorded: {record.get('step')}"
        if record.get("phase") == "check":
            return f"step failed its check: {record.get('step')} — {record.get('error', '')}"
        status = record.get("exit_status")
        if record.get("phase") == "read":
            return f"read: {record.get('step')}" + (f" (exit {status})" if status not in (None, 0) else "")
        return f"step {record.get('result')}: {record.get('step')}" + (f" (exit {status})" if status is not None else "")
    if event == "lock-broken":
        holder = record.get("holder") or {}
        return (f"lock {record.get('lock')} broken by {record.get('user', '?')}@{record.get('machine', '?')}"
                f"{' (--force)' if record.get('force') else ''}: it was held by run {holder.get('run_id', '?')} of "
                f"{holder.get('user', '?')}@{holder.get('machine', '?')} — {record.get('reason', '')}")
    if event == "audit":
        return (f"audit: {record.get('state')}, {record.get('unguarded', 0)} change(s) without a snapshot "
                f"from {record.get('since')} to {record.get('until')}")
    if event == "health":
        return f"health: {record.get('state')}"
    if event == "run-ended":
        step = f" at step {record['failed_step']!r}" if record.get("failed_step") else ""
        return f"ended: {record.get('outcome')}{step}" + (f" — {record['error']}" if record.get("error") else "")
    return str(event)


@click.command()
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.option("--last", "last", type=int, default=50, show_default=True, help="How many records (0 = all).")
@click.option("--verify", is_flag=True, help="Check the hash chain of the whole ledger; exit 1 naming where it breaks.")
@click.pass_context
def ledger(ctx: click.Context, host: str | None, as_json: bool, last: int, verify: bool) -> None:
    """Show the audit ledger (every snapshot and change), optionally for one HOST; --verify checks its hash chain."""
    from opsguard.ledger import Ledger

    inventory = ctx.obj.inventory()
    if verify:
        ctx.exit(_verify(Ledger(inventory.settings.state_dir).path, as_json))
    if host is not None:
        inventory.host(host)  # a typo in the host name is an error, not an empty list
    book = Ledger(inventory.settings.state_dir)
    records = book.records(host)
    if last > 0:
        records = records[-last:]
    try:
        if as_json:
            print_json(records)  # exact values for scripts: JSON escapes control characters itself
        else:
            _print_records(records, book.path, host)
    finally:
        if book.skipped_lines:
            # Once, after the records: the operator must know the trail has gaps.
            click.echo(printable(f"ledger {book.path}: skipped {book.skipped_lines} unreadable line(s)"), err=True)


def _verify(path: Path, as_json: bool) -> int:
    """Given the ledger path, print what its hash chain shows; return 0 when intact, 1 when it breaks."""
    from opsguard.errors import EXIT_FAILED, EXIT_OK
    from opsguard.ledger import verify_chain

    report = verify_chain(path)
    if as_json:
        print_json({"ledger": str(path), "intact": report.intact, "records": report.records, "unchained": report.unchained,
                    "unreadable": report.unreadable,
                    "breaks": [{"line": item.line, "message": item.message} for item in report.breaks]})
        return EXIT_OK if report.intact else EXIT_FAILED
    notes = []
    if report.unchained:
        notes.append(f"the first {report.unchained} written before records were chained")
    if report.unreadable:
        notes.append(f"{report.unreadable} unreadable line(s), covered by the chain")
    detail = f" ({'; '.join(notes)})" if notes else ""
    if report.intact:
        click.echo(printable(f"ledger {path}: {report.records} records, chain intact{detail}"))
        return EXIT_OK
    for item in report.breaks:
        click.echo(printable(f"ledger {path}: line {item.line} {item.message}"))
    click.echo(printable(f"ledger {path}: {report.records} records, chain BROKEN at {len(report.breaks)} place(s){detail}"))
    return EXIT_FAILED


def _print_records(records: list[dict[str, Any]], path: Path, host: str | None) -> None:
    """Given records, print one line each; SAFETY: every line goes through printable (no forged lines)."""
    if not records:
        click.echo(printable(f"ledger {path}: no records" + (f" for {host}" if host else "")))
        return
    # A step's "started" record only matters when no "ended" follows (a crash mid-step): show those alone.
    ended = {(r.get("run_id"), r.get("step")) for r in records if r.get("event") == "step" and r.get("phase") == "ended"}
    for record in records:
        if record.get("event") == "step" and record.get("phase") == "started" and (record.get("run_id"), record.get("step")) in ended:
            continue
        click.echo(printable(f"{record['time']}  {record['host']:6}  {record['run_id']}  {describe(record)}"))
