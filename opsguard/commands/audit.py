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
    lock_wait_seconds,
    monitors_for,
    probe_hosts,
    report_options,
    route_library_logs,
    run_monitored,
    seconds_option,
)

if TYPE_CHECKING:
    from opsguard.inventory import Host
    from opsguard.report import HostResult
    from opsguard.transport import CommandResult

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
    from opsguard.playbooks.params import check_vars
    from opsguard.probes import split_sections

    def prepare(host: Host, nonce: str, records: list[dict[str, Any]], now: datetime) -> tuple[Any, str]:
        settings = auditing.audit_params(host, check_vars(auditing.COMMAND_NAME, auditing.VARS, host))
        since = fixed_since or auditing.since_for(host.name, records, now, settings.first_for)
        return (settings, since), auditing.build_script(settings, since, nonce)

    def evaluate(host: Host, state: Any, nonce: str, answers: list[CommandResult],
                 records: list[dict[str, Any]]) -> tuple[HostResult, dict[str, Any] | None]:
        settings, since = state
        sections = split_sections(answers[0].stdout, nonce)
        audited = auditing.evaluate_host(host, settings, sections, since, auditing.previous_record(host.name, records))
        return audited.result, audited.record

    return probe_hosts(ctx, COMMAND, auditing.EVENT, host_names, prepare=prepare, evaluate=evaluate, as_json=as_json,
                       textfile=textfile, deadline=deadline, concurrency=concurrency, wait=wait)
