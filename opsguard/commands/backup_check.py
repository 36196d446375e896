"""`opsguard backup-check`: are the providers' automatic backups there and fresh? (read-only, for cron)

Quiet when all is well: off a terminal nothing is printed when every host is ok, so cron mails
only on trouble; each problem or warning is one line on stderr naming its host. On a terminal a
table; with ``--json`` the version-2 report (documented in opsguard/backups.py) on stdout.

Never hangs: every host is read under one run deadline (``--deadline``), pings and the webhook
time out after 5 s, and a second run waits at most ``--lock-wait`` for the first, then exits 4.

Unattended extras, shared with audit and health (opsguard/nightly.py), all best effort (a failure
is one warning line on stderr, never a different exit code): ``--ping-url`` pings ``URL/start``,
then ``URL`` (exit 0) or ``URL/<exit code>`` — also for a run that stops early (invalid inventory:
78; another run holds the lock: 4); ``--webhook`` POSTs the JSON report when the exit code is not
0 (a warning alone does not post). ``--textfile`` is NOT best effort: a metrics file that cannot
be written exits 78, because node_exporter would keep serving the previous night's values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    from collections.abc import Callable

    from opsguard.inventory import Host
    from opsguard.providers.base import Provider

COMMAND = "backup-check"
LOCK_NAME = f"{COMMAND}.lock"
LOCK_WAIT_VARIABLE = "OPSGUARD_BACKUP_CHECK_LOCK_WAIT"


@click.command()
@click.argument("host_names", metavar="[HOST]...", nargs=-1)
# 12 hosts x 2-3 reads stays under Vultr's ~30 requests/s per IP on a 200 ms API; 429s are retried.
@report_options(COMMAND, ping_variable="OPSGUARD_PING_URL", lock_variable=LOCK_WAIT_VARIABLE, deadline="120s", concurrency=12)
@click.pass_context
def backup_check(
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
    """Check the providers' automatic backups of HOSTs (default: every inventory host). Read-only.

    Fails (exit 1) when a host's newest backup is older than its max_age, when there is none,
    or when Vultr automatic backups are off or their schedule is disabled or too rare. Exit 4
    when a provider cannot be reached, 78 for inventory or token problems. A Hostinger snapshot
    expiring within 3 days is a warning only (exit 0).
    """
    route_library_logs(debug=bool(getattr(ctx.obj, "debug", False)))
    deadline_seconds = seconds_option(deadline, "--deadline")
    lock_wait_seconds_ = lock_wait_seconds(ctx, lock_wait, LOCK_WAIT_VARIABLE)

    def run() -> Outcome:
        return _run(ctx, host_names, as_json, textfile, deadline_seconds, concurrency, lock_wait_seconds_)

    ctx.exit(run_monitored(COMMAND, monitors_for(ping_url, webhook), run))


def _run(
    ctx: click.Context,
    host_names: tuple[str, ...],
    as_json: bool,
    textfile: str | None,
    deadline_seconds: float,
    concurrency: int,
    lock_wait_seconds_: float,
) -> Outcome:
    """Check the hosts, write the metrics and print the outcome; return it."""
    from opsguard import backups
    from opsguard.metrics import render_textfile

    inventory = ctx.obj.inventory()
    hosts = backups.hosts_to_check(inventory.hosts, host_names, inventory.host)
    with run_lock(inventory.settings.state_dir, lock_wait_seconds_, COMMAND):
        checked = backups.check_backups(
            hosts, _provider_factory(deadline_seconds), deadline_seconds=deadline_seconds, concurrency=concurrency
        )
        return emit(
            backups.to_report(checked),
            as_json=as_json,
            textfile=textfile,
            table=lambda: backups.render_table(checked),
            textfile_text=lambda: render_textfile(checked),
            summary=lambda: backups.summary_line(checked),
        )


def _provider_factory(deadline_seconds: float) -> Callable[[Host], Provider]:
    """Return provider_for, with each client's GET retries kept inside the run deadline, so a
    429 storm or an outage ends with the client's own precise message rather than a timeout."""
    from dataclasses import replace

    from opsguard.providers import provider_for
    from opsguard.providers.http import RetryPolicy

    def build(host: Host) -> Provider:
        policy = RetryPolicy.from_environment()
        retry = replace(policy, budget=min(policy.budget, max(1.0, deadline_seconds * 0.75)))
        return provider_for(host, retry=retry)

    return build
