"""`opsguard health`: are the hosts healthy, by role? (read-only, for cron)

Exit 0 when every check passed (warnings included), 1 when one failed, 4 when a host cannot be
read (the others are still reported), 78 for the inventory. Each checked host leaves a ``health``
record in the ledger (its pm2 restart counts): the next run tells a restart loop from a restart.
Output, pings, webhook, textfile and run lock as backup-check (opsguard/nightly.py).
"""

from __future__ import annotations

from datetime import datetime
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
    from opsguard.playbooks.params import check_vars
    from opsguard.probes import script, split_sections

    def prepare(host: Host, nonce: str, records: list[dict[str, Any]], now: datetime) -> tuple[Any, str]:
        settings = checking.health_params(host, check_vars(checking.COMMAND_NAME, checking.VARS, host))
        return settings, script(checking.probe_sections(settings), nonce)

    def targets(settings: Any, first: CommandResult, nonce: str) -> list[tuple[str, str]]:
        # The names come from the host's .env (the first script's env section), and the tls_names var.
        env = split_sections(first.stdout, nonce).get("env")
        return checking.tls_targets(settings, env.text if env else None)

    def certificates(host: Host, settings: Any, nonce: str, session: Any, first: CommandResult) -> CommandResult | None:
        # A second script on the same session, only when there are names to check.
        names = targets(settings, first, nonce)
        if not names:
            return None
        result: CommandResult = session.run(script(checking.tls_sections(names), nonce), timeout=deadline, mutates=False)
        return result

    def evaluate(host: Host, settings: Any, nonce: str, answers: list[CommandResult],
                 records: list[dict[str, Any]]) -> tuple[HostResult, dict[str, Any] | None]:
        sections = split_sections(answers[0].stdout, nonce)
        if len(answers) > 1:
            sections.update(split_sections(answers[1].stdout, nonce))
        checked = checking.evaluate_host(host, settings, sections, targets(settings, answers[0], nonce),
                                         checking.previous_record(host.name, records))
        return checked.result, checked.record

    return probe_hosts(ctx, COMMAND, checking.EVENT, host_names, prepare=prepare, evaluate=evaluate,
                       follow_up=certificates, as_json=as_json, textfile=textfile, deadline=deadline,
                       concurrency=concurrency, wait=wait)
