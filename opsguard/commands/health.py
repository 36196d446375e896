"""`opsguard health`: are the hosts healthy, by role? (read-only, for cron)

Exit 0 when every check passed (warnings included), 1 when one failed, 4 when a host cannot be
read (the others are still reported), 78 for the inventory. Each checked host leaves a ``health``
record in the ledger (its pm2 restart counts): the next run tells a restart loop from a restart.
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
    from opsguard.inventory import Host
    from opsguard.report import HostResult
    from opsguard.transport import CommandResult

COMMAND = "health"
LOCK_WAIT_VARIABLE = "OPSGUARD_HEALTH_LOCK_WAIT"


@click.command()
@click.argument("host_names", metavar="[HOST]...", nargs=-1)
@report_options(COMMAND, ping_variable="OPSGUARD_HEALTH_PING_URL", lock_variable=LOCK_WAIT_VARIABLE, deadline="120s", concurrency=16)
@click.pass_context
def health(
    ctx: click.Context,
    host_names: tuple[str, ...],
    as_json: bool,
    textfile: str | None,
    ping_url: str | None,
    webhook: str | None,
    deadline: str,
    concurrency: int,
    lock_wait: str,
) -> None:
    """Check the health of HOSTs (default: every inventory host) by role. Read-only.

    pm2 processes online and not restart-looping, containers running and healthy, disk and inode
    use, memory and swap, TLS certificates, HTTP endpoints (backend, frontend, n8n, Typebot),
    WhatsApp channels connected, pending security updates and reboot-required. Thresholds are
    inventory vars. Exit 1 when a check fails, 0 otherwise (warnings too), 4 when a host cannot be read.
    """
    route_library_logs(debug=bool(getattr(ctx.obj, "debug", False)))
    deadline_seconds = seconds_option(deadline, "--deadline")
    wait = lock_wait_seconds(ctx, lock_wait, LOCK_WAIT_VARIABLE)

    def run() -> Outcome:
        return _run(ctx, host_names, as_json, textfile, deadline_seconds, concurrency, wait)

    ctx.exit(run_monitored(COMMAND, monitors_for(ping_url, webhook), run))


def _run(ctx: click.Context, host_names: tuple[str, ...], as_json: bool, textfile: str | None, deadline: float,
         concurrency: int, wait: float) -> Outcome:
    """Check the hosts, record each checked host in the ledger, and print the outcome; return it."""
    from opsguard import health as checking
    from opsguard.backups import hosts_to_check
    from opsguard.guard import new_run_id
    from opsguard.ledger import Ledger
    from opsguard.playbooks.params import check_vars
    from opsguard.probes import new_nonce, run_scripts, script, split_sections, unanswered_host, unread_host
    from opsguard.report import Report

    inventory = ctx.obj.inventory()
    hosts = hosts_to_check(inventory.hosts, host_names, inventory.host)
    with run_lock(inventory.settings.state_dir, wait, COMMAND):
        ledger = Ledger(inventory.settings.state_dir)
        records = [record for record in ledger.records() if record.get("event") == checking.EVENT]
        now = datetime.now(UTC)
        results: dict[str, HostResult] = {}
        prepared: dict[str, tuple[Any, str]] = {}
        scripts: dict[str, str] = {}
        for host in hosts:
            try:
                settings = checking.health_params(host, check_vars(checking.COMMAND_NAME, checking.VARS, host))
            except Exception as error:  # one host's bad vars must not stop the others
                results[host.name] = unread_host(host.name, "inventory", error)
                continue
            nonce = new_nonce()
            prepared[host.name] = (settings, nonce)
            scripts[host.name] = script(checking.probe_sections(settings), nonce)

        def certificates(host: Host, session: Any, first: CommandResult) -> CommandResult | None:
            # The names come from the host's .env: a second script on the same session, only when there are names.
            settings, nonce = prepared[host.name]
            env = split_sections(first.stdout, nonce).get("env")
            targets = checking.tls_targets(settings, env.text if env else None)
            if not targets:
                return None
            result: CommandResult = session.run(script(checking.tls_sections(targets), nonce), timeout=deadline, mutates=False)
            return result

        answered = run_scripts([host for host in hosts if host.name in prepared], scripts, inventory,
                               deadline=deadline, concurrency=concurrency, follow_up=certificates)
        run_id = new_run_id()
        for host in hosts:
            if host.name not in prepared:
                continue
            settings, nonce = prepared[host.name]
            outcome = answered.get(host.name)
            if outcome is None or not outcome[0]:
                results[host.name] = unanswered_host(host.name, outcome, deadline)
                continue
            sections = split_sections(outcome[1][0].stdout, nonce)
            env = sections.get("env")
            targets = checking.tls_targets(settings, env.text if env else None)
            if len(outcome[1]) > 1:
                sections.update(split_sections(outcome[1][1].stdout, nonce))
            checked = checking.evaluate_host(host, settings, sections, targets, checking.previous_record(host.name, records))
            results[host.name] = checked.result
            if checked.record is not None:
                ledger.append(checking.EVENT, run_id=run_id, host=host.name, **checked.record)
        report = Report(COMMAND, now, tuple(results[host.name] for host in hosts))
        return emit(report, as_json=as_json, textfile=textfile)
