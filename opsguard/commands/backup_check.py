"""`opsguard backup-check`: are the providers' automatic backups there and fresh? (read-only, for cron)

Quiet when all is well: off a terminal nothing is printed when every host is ok, so cron mails
only on trouble; each problem or warning is one line on stderr naming its host. On a terminal a
table; with ``--json`` the version-1 report (documented in opsguard/backups.py) on stdout.

Never hangs: every host is read under one run deadline (``--deadline``), pings and the webhook
time out after 5 s, and a second run waits at most ``--lock-wait`` for the first, then exits 4.

Unattended extras, all best effort (a failure is one warning line on stderr, never a different
exit code): ``--ping-url`` pings ``URL/start``, then ``URL`` (exit 0) or ``URL/<exit code>`` —
also for a run that stops early (invalid inventory: 78; another run holds the lock: 4);
``--webhook`` POSTs the JSON report when the exit code is not 0 (a warning alone does not post).
``--textfile`` is NOT best effort: a metrics file that cannot be written exits 78, because
node_exporter would keep serving the previous night's values.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opsguard.durations import format_duration, parse_duration
from opsguard.errors import EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK, ConfigError, OpsguardError, worst_exit_code
from opsguard.redact import install_log_redaction, redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from opsguard.backups import BackupReport
    from opsguard.inventory import Host
    from opsguard.providers.base import Provider

LOCK_NAME = "backup-check.lock"
LOCK_POLL_SECONDS = 0.1


@contextmanager
def run_lock(state_dir: Path, wait_seconds: float) -> Iterator[Path]:
    """Given the state dir and how long to wait, hold the backup-check lock for the block.

    An advisory ``flock`` on ``<state_dir>/backup-check.lock`` (created, with the directory, if
    needed); the holder writes its pid and start time into it. Raise BackupCheckRunning (exit 4)
    naming the holder when it stays held for ``wait_seconds``; raise ConfigError if the state
    dir cannot be created. The lock dies with its process, so a crashed run never blocks the next.
    """
    from opsguard.backups import BackupCheckRunning, iso

    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ConfigError(
            f"state_dir {state_dir}: cannot create the backup-check lock: {error.strerror or error}"
        ) from None
    try:
        give_up = time.monotonic() + max(0.0, wait_seconds)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    holder = _read_holder(path)
                    raise BackupCheckRunning(
                        f"another backup-check is running ({holder}; lock {path}); "
                        f"gave up after waiting {format_duration(wait_seconds)}"
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid={os.getpid()} started={iso(datetime.now(UTC))}\n".encode(), 0)
        yield path
    finally:
        os.close(descriptor)  # closing the descriptor releases the flock


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    if "pid" not in fields:
        return "holder unknown"
    return f"pid {fields['pid']}, started {fields.get('started', 'at an unknown time')}"


def _route_provider_logs(*, debug: bool) -> None:
    """Keep the clients' retry messages (e.g. "HTTP 429; retry 1 in 1s") off stderr unless --debug.

    Without a handler, Python prints WARNING records through its last-resort handler, and cron
    would mail a night whose 429s were retried successfully. What failed is in the report.
    """
    import logging

    logger = logging.getLogger("opsguard")
    if logger.handlers:
        return
    if debug:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.setLevel(logging.DEBUG)
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)
    install_log_redaction(logger)  # SAFETY: this handler prints records too, so it redacts them


def _seconds(value: str, option: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
    return seconds


LOCK_WAIT_VARIABLE = "OPSGUARD_BACKUP_CHECK_LOCK_WAIT"


def _lock_wait_seconds(ctx: click.Context, value: str) -> float:
    """Given --lock-wait's value, return seconds; raise ConfigError (78) naming the variable if it came from the environment.

    A typo on the command line is a usage error (2); the same typo in a cron job's environment is
    configuration. Like every opsguard duration it needs a unit: a bare "10" could mean anything.
    """
    if ctx.get_parameter_source("lock_wait") is not click.core.ParameterSource.ENVIRONMENT:
        return _seconds(value, "--lock-wait")
    try:
        return parse_duration(value)
    except ValueError:
        raise ConfigError(
            f'{LOCK_WAIT_VARIABLE}={value!r} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. "10s"'
        ) from None


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(redact(line), err=True)  # SAFETY: problem lines quote provider messages


def _warn(warning: str | None) -> None:
    if warning:
        click.echo(f"opsguard: {warning}", err=True)


@click.command()
@click.argument("host_names", metavar="[HOST]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the version-1 JSON report on stdout.")
@click.option(
    "--textfile",
    metavar="PATH",
    default=None,
    help="Also write Prometheus textfile-collector metrics to PATH (atomically), e.g. /var/lib/node_exporter/textfile/opsguard_backups.prom.",
)
@click.option(
    "--ping-url",
    metavar="URL",
    default=None,
    envvar="OPSGUARD_PING_URL",
    show_envvar=True,
    help="healthchecks.io-style URL: URL/start at start, URL on success, URL/<exit code> on failure.",
)
@click.option(
    "--webhook",
    metavar="URL",
    default=None,
    envvar="OPSGUARD_WEBHOOK_URL",
    show_envvar=True,
    help="POST the JSON report to URL when the run fails (exit code not 0; warnings alone do not post).",
)
@click.option(
    "--deadline",
    metavar="DURATION",
    default="120s",
    show_default=True,
    help="Give up on hosts that have not answered by then (exit 4 for them).",
)
@click.option(
    "--concurrency",
    metavar="N",
    type=click.IntRange(1, 64),
    # 12 hosts x 2-3 reads stays under Vultr's ~30 requests/s per IP on a 200 ms API; 429s are retried.
    default=12,
    show_default=True,
    help="Hosts checked at once (each host's 2-3 reads run in parallel).",
)
@click.option(
    "--lock-wait",
    metavar="DURATION",
    default="10s",
    show_default=True,
    envvar="OPSGUARD_BACKUP_CHECK_LOCK_WAIT",
    show_envvar=True,
    help="How long to wait for another running backup-check before exiting 4.",
)
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
    from opsguard import notify

    _route_provider_logs(debug=bool(getattr(ctx.obj, "debug", False)))
    deadline_seconds = _seconds(deadline, "--deadline")
    lock_wait_seconds = _lock_wait_seconds(ctx, lock_wait)
    if ping_url:
        _warn(notify.ping(ping_url, "start", "opsguard backup-check starting"))

    try:
        code, ping_text, report_json = _run(
            ctx, host_names, as_json, textfile, deadline_seconds, concurrency, lock_wait_seconds
        )
    except Exception as error:
        # Tell the health check how the run ended, then let cli.py print and exit as usual.
        if ping_url:
            code = error.exit_code if isinstance(error, OpsguardError) else EXIT_INTERNAL
            text = (
                str(error).splitlines()[0]
                if isinstance(error, OpsguardError)
                else f"internal error: {type(error).__name__}"
            )
            _warn(notify.ping(ping_url, str(code), text))
        raise

    if ping_url:
        _warn(notify.ping(ping_url, "" if code == EXIT_OK else str(code), ping_text))
    if webhook and report_json is not None:
        _warn(notify.post_json(webhook, report_json))
    ctx.exit(code)


def _run(
    ctx: click.Context,
    host_names: tuple[str, ...],
    as_json: bool,
    textfile: str | None,
    deadline_seconds: float,
    concurrency: int,
    lock_wait_seconds: float,
) -> tuple[int, str, dict[str, object] | None]:
    """Check the hosts, write the metrics and print the outcome; return (exit code, ping text,
    report for the webhook or None when the run did not fail)."""
    from opsguard import backups
    from opsguard.output import is_terminal, print_json

    inventory = ctx.obj.inventory()
    hosts = backups.hosts_to_check(inventory.hosts, host_names, inventory.host)
    with run_lock(inventory.settings.state_dir, lock_wait_seconds):
        report = backups.check_backups(
            hosts, _provider_factory(deadline_seconds), deadline_seconds=deadline_seconds, concurrency=concurrency
        )
        code = report.exit_code
        if textfile:
            code = _write_textfile(textfile, report, code)
        document = backups.report_to_json(report)
        document["exit_code"] = code  # what the command exits with, a failed textfile included
        lines = backups.problem_lines(report)
        if as_json:
            print_json(document)
        if not as_json and is_terminal():
            click.echo(redact(backups.render_table(report)))
        else:
            _echo_lines(lines)

    ping_text = "\n".join([backups.summary_line(report), *lines])
    return code, ping_text, (document if code != EXIT_OK else None)


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


def _write_textfile(path: str, report: BackupReport, code: int) -> int:
    """Write the metrics; a failure is loud (exit 78): a stale file would keep showing old values."""
    from opsguard.metrics import render_textfile, write_atomically

    try:
        write_atomically(path, render_textfile(report))
    except OSError as error:
        click.echo(f"opsguard: --textfile {path}: cannot write metrics: {error.strerror or error}", err=True)
        return worst_exit_code([code, EXIT_CONFIG])
    return code
