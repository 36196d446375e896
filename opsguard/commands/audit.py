"""`opsguard audit`: changes made on the hosts outside a guarded window since the last audit (read-only, for cron).

Exit 1 when a change without a snapshot is found, 0 when none (settings that will cause one are
warnings), 4 when a host cannot be read (the others are still reported), 78 for the inventory.
Each audited host leaves an ``audit`` record in the ledger: the next audit starts where it ended.
Output, pings, webhook, textfile and run lock as backup-check (opsguard/nightly.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from opsguard.nightly import (
    Outcome,
    emit,
    lock_wait_seconds,
    monitors_for,
    report_options,
    route_library_logs,
    run_lock,
    run_monitored,
    seconds_option,
)

if TYPE_CHECKING:
    from opsguard.report import HostResult

COMMAND = "audit"
LOCK_WAIT_VARIABLE = "OPSGUARD_AUDIT_LOCK_WAIT"


@click.command()
@click.argument("host_names", metavar="[HOST]...", nargs=-1)
@click.option("--since", metavar="DURATION|TIME", default=None,
              help="Look back this far (26h) or to this time (2026-12-01T06:00:00Z) instead of to the last audit of each host.")
@report_options(COMMAND, ping_variable="OPSGUARD_AUDIT_PING_URL", lock_variable=LOCK_WAIT_VARIABLE, deadline="120s", concurrency=16)
@click.pass_context
def audit(
    ctx: click.Context,
    host_names: tuple[str, ...],
    since: str | None,
    as_json: bool,
    textfile: str | None,
    ping_url: str | None,
    webhook: str | None,
    deadline: str,
    concurrency: int,
    lock_wait: str,
) -> None:
    """Find changes on HOSTs (default: every inventory host) made outside a guarded window. Read-only.

    Reads apt/dpkg history (unattended-upgrades included), reboots, pm2 restarts, containers created
    or recreated, changed files in the code trees, crontabs and authorized_keys since the last audit
    (else 26h), and compares each with the host's history of guarded runs. Also warns about settings
    that will change the host without a snapshot (unattended-upgrades, apt timers, needrestart), with
    the command that turns each off. Exit 1 when an unguarded change is found, 0 when none, 4 when a
    host cannot be read.
    """
    from opsguard.audit import parse_since

    route_library_logs(debug=bool(getattr(ctx.obj, "debug", False)))
    deadline_seconds = seconds_option(deadline, "--deadline")
    wait = lock_wait_seconds(ctx, lock_wait, LOCK_WAIT_VARIABLE)
    fixed_since = None
    if since is not None:
        try:
            fixed_since = parse_since(since, datetime.now(UTC))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--since") from None

    def run() -> Outcome:
        return _run(ctx, host_names, fixed_since, as_json, textfile, deadline_seconds, concurrency, wait)

    ctx.exit(run_monitored(COMMAND, monitors_for(ping_url, webhook), run))


def _run(
    ctx: click.Context,
    host_names: tuple[str, ...],
    fixed_since: datetime | None,
    as_json: bool,
    textfile: str | None,
    deadline: float,
    concurrency: int,
    wait: float,
) -> Outcome:
    """Audit the hosts, record each audited host in the ledger, and print the outcome; return it."""
    from opsguard import audit as auditing
    from opsguard.backups import hosts_to_check
    from opsguard.guard import new_run_id
    from opsguard.ledger import Ledger
    from opsguard.playbooks.params import check_vars
    from opsguard.probes import new_nonce, run_scripts, split_sections, unanswered_host, unread_host
    from opsguard.report import Report

    inventory = ctx.obj.inventory()
    hosts = hosts_to_check(inventory.hosts, host_names, inventory.host)
    with run_lock(inventory.settings.state_dir, wait, COMMAND):
        ledger = Ledger(inventory.settings.state_dir)
        records = [record for record in ledger.records() if record.get("event") == auditing.EVENT]
        now = datetime.now(UTC)
        results: dict[str, HostResult] = {}
        prepared: dict[str, tuple[Any, datetime, str]] = {}
        scripts: dict[str, str] = {}
        for host in hosts:
            try:
                settings = auditing.audit_params(host, check_vars(auditing.COMMAND_NAME, auditing.VARS, host))
            except Exception as error:  # one host's bad vars must not stop the others
                results[host.name] = unread_host(host.name, "inventory", error)
                continue
            since = fixed_since or auditing.since_for(host.name, records, now, settings.first_for)
            nonce = new_nonce()
            prepared[host.name] = (settings, since, nonce)
            scripts[host.name] = auditing.build_script(settings, since, nonce)
        answered = run_scripts([host for host in hosts if host.name in prepared], scripts, inventory,
                               deadline=deadline, concurrency=concurrency)
        run_id = new_run_id()
        for host in hosts:
            if host.name not in prepared:
                continue
            settings, since, nonce = prepared[host.name]
            outcome = answered.get(host.name)
            if outcome is None or not outcome[0]:
                results[host.name] = unanswered_host(host.name, outcome, deadline)
                continue
            sections = split_sections(outcome[1][0].stdout, nonce)
            audited = auditing.evaluate_host(host, settings, sections, since, auditing.previous_record(host.name, records))
            results[host.name] = audited.result
            if audited.record is not None:
                ledger.append(auditing.EVENT, run_id=run_id, host=host.name, **audited.record)
        report = Report(COMMAND, now, tuple(results[host.name] for host in hosts))
        return emit(report, as_json=as_json, textfile=textfile)
