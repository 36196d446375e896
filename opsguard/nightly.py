"""What backup-check, audit and health share as unattended commands: run lock, options, monitors, outputs.

Each command builds a report (opsguard/report.py); this module runs it the same way for all three:

- a run lock per command (``<state_dir>/<command>.lock``, flock): a second run waits briefly, then exits 4;
- monitors (``--ping-url``, ``--webhook``): START before anything, then FINISH or FAIL with the exit
  code — also when the run stops early (invalid inventory: 78; lock held: 4);
- outputs: ``--json`` (the versioned document), the table on a terminal, otherwise one
  ``host: problem`` line per problem on stderr (nothing when all is ok: cron mails only on
  trouble), and ``--textfile`` (NOT best effort: a metrics file that cannot be written exits 78,
  because node_exporter would keep serving the previous night's values).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from opsguard.durations import format_duration, parse_duration
from opsguard.errors import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_OK,
    ConfigError,
    OpsguardError,
    OutcomeUnknown,
    worst_exit_code,
)
from opsguard.redact import redact

if TYPE_CHECKING:
    from opsguard.notify import Monitor
    from opsguard.report import Report

LOCK_POLL_SECONDS = 0.1
F = TypeVar("F", bound=Callable[..., Any])


class CommandRunning(OutcomeUnknown):
    """Another run of the same command holds its run lock: this run checked nothing. Exit 4."""


@contextmanager
def run_lock(state_dir: Path, wait_seconds: float, command: str = "backup-check") -> Iterator[Path]:
    """Given the state dir, how long to wait and the command, hold that command's run lock for the block.

    An advisory ``flock`` on ``<state_dir>/<command>.lock`` (created, with the directory, if needed);
    the holder writes its pid and start time into it. Raise CommandRunning (exit 4) naming the holder
    when it stays held for ``wait_seconds``; raise ConfigError if the state dir cannot be created.
    The lock dies with its process, so a crashed run never blocks the next.
    """
    from opsguard.report import iso

    path = state_dir / f"{command}.lock"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ConfigError(f"state_dir {state_dir}: cannot create the {command} lock: {error.strerror or error}") from None
    try:
        give_up = time.monotonic() + max(0.0, wait_seconds)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise CommandRunning(
                        f"another {command} is running ({_read_holder(path)}; lock {path}); "
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


# -- options ----------------------------------------------------------------------------------------


def seconds_option(value: str, option: str) -> float:
    """Given a duration option's value and its name, return seconds; raise click.BadParameter (exit 2) if malformed."""
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def lock_wait_seconds(ctx: click.Context, value: str, variable: str) -> float:
    """Given --lock-wait's value and its environment variable, return seconds.

    A typo on the command line is a usage error (2); the same typo in a cron job's environment is
    configuration (ConfigError, 78, naming the variable). Like every opsguard duration it needs a unit.
    """
    if ctx.get_parameter_source("lock_wait") is not click.core.ParameterSource.ENVIRONMENT:
        return seconds_option(value, "--lock-wait")
    try:
        return parse_duration(value)
    except ValueError:
        raise ConfigError(
            f'{variable}={value!r} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. "10s"'
        ) from None


def report_options(command: str, *, ping_variable: str, lock_variable: str, deadline: str, concurrency: int) -> Callable[[F], F]:
    """Given a command's name, its ping and lock-wait variables and defaults, return the decorator adding the
    options every read-only command takes: --json --textfile --ping-url --webhook --deadline --concurrency --lock-wait."""

    def decorate(function: F) -> F:
        options = [
            click.option("--json", "as_json", is_flag=True, help="Print the JSON report (version 2, shared by every read-only command) on stdout."),
            click.option("--textfile", metavar="PATH", default=None,
                         help=f"Also write Prometheus textfile-collector metrics to PATH (atomically), e.g. "
                              f"/var/lib/node_exporter/textfile/opsguard_{command.replace('-', '_')}.prom."),
            click.option("--ping-url", metavar="URL", default=None, envvar=ping_variable, show_envvar=True,
                         help="healthchecks.io-style URL: URL/start at start, URL on success, URL/<exit code> on failure."),
            click.option("--webhook", metavar="URL", default=None, envvar="OPSGUARD_WEBHOOK_URL", show_envvar=True,
                         help="POST the JSON report to URL when the run fails (exit code not 0; warnings alone do not post)."),
            click.option("--deadline", metavar="DURATION", default=deadline, show_default=True,
                         help="Give up on hosts that have not answered by then (exit 4 for them)."),
            click.option("--concurrency", metavar="N", type=click.IntRange(1, 64), default=concurrency, show_default=True,
                         help="Hosts checked at once."),
            click.option("--lock-wait", metavar="DURATION", default="10s", show_default=True, envvar=lock_variable,
                         show_envvar=True, help=f"How long to wait for another running {command} before exiting 4."),
        ]
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


# -- running and reporting --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its exit code, the ping text, and the JSON document for the webhook (None unless it failed)."""

    exit_code: int
    ping_text: str
    document: dict[str, Any] | None


def monitors_for(ping_url: str | None, webhook: str | None) -> list[Monitor]:
    """Given the --ping-url and --webhook values, return the monitors to tell."""
    from opsguard.notify import PingMonitor, WebhookMonitor

    monitors: list[Monitor] = []
    if ping_url:
        monitors.append(PingMonitor(ping_url))
    if webhook:
        monitors.append(WebhookMonitor(webhook))
    return monitors


def run_monitored(command: str, monitors: Sequence[Monitor], run: Callable[[], Outcome]) -> int:
    """Given a command, its monitors and the run, tell the monitors START, run it, tell them FINISH or FAIL; return the exit code.

    An exception from the run is told as FAIL with its exit code (70 for a bug) and raised again, so
    cli.py prints it as usual. Monitor failures are one warning line each on stderr, nothing more.
    """
    from opsguard.notify import MonitorState, notify_all

    _warn(notify_all(monitors, MonitorState.START, text=f"opsguard {command} starting"))
    try:
        outcome = run()
    except Exception as error:
        code = error.exit_code if isinstance(error, OpsguardError) else EXIT_INTERNAL
        text = str(error).splitlines()[0] if isinstance(error, OpsguardError) else f"internal error: {type(error).__name__}"
        _warn(notify_all(monitors, MonitorState.FAIL, exit_code=code, text=text))
        raise
    state = MonitorState.FINISH if outcome.exit_code == EXIT_OK else MonitorState.FAIL
    _warn(notify_all(monitors, state, exit_code=outcome.exit_code, text=outcome.ping_text, document=outcome.document))
    return outcome.exit_code


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"opsguard: {warning}", err=True)


def emit(
    report: Report,
    *,
    as_json: bool,
    textfile: str | None,
    table: Callable[[], str] | None = None,
    textfile_text: Callable[[], str] | None = None,
    summary: Callable[[], str] | None = None,
    document: Callable[[int], dict[str, Any]] | None = None,
) -> Outcome:
    """Given a report and the output options, write the metrics, print the outcome and return it.

    ``table``, ``textfile_text``, ``summary`` and ``document`` let a command keep its own layout of
    the same report (backup-check's columns and series); by default the shared ones are used.
    """
    from opsguard import report as shared
    from opsguard.metrics import render_report
    from opsguard.output import is_terminal, print_json

    code = report.exit_code
    if textfile:
        code = write_textfile(textfile, (textfile_text or (lambda: render_report(report)))())
        code = worst_exit_code([report.exit_code, code])
    data = document(code) if document else shared.report_document(report, code)
    data["exit_code"] = code  # what the command exits with, a failed textfile included
    lines = shared.problem_lines(report)
    if as_json:
        print_json(data)
    if not as_json and is_terminal():
        click.echo(redact((table or (lambda: shared.render_table(report)))()))
    else:
        for line in lines:
            click.echo(redact(line), err=True)  # SAFETY: problem lines quote host and provider output
    ping_text = "\n".join([(summary or (lambda: shared.summary_line(report)))(), *lines])
    return Outcome(code, ping_text, data if code != EXIT_OK else None)


def write_textfile(path: str, text: str) -> int:
    """Given the --textfile path and its text, write it atomically; return 0, or 78 after saying why on stderr.

    A failure is loud (exit 78): a stale file would keep showing old values.
    """
    from opsguard.metrics import write_atomically

    try:
        write_atomically(path, text)
    except OSError as error:
        click.echo(f"opsguard: --textfile {path}: cannot write metrics: {error.strerror or error}", err=True)
        return EXIT_CONFIG
    return EXIT_OK


def route_library_logs(*, debug: bool) -> None:
    """Keep library log lines (a provider client's "HTTP 429; retry 1 in 1s", paramiko) off stderr unless --debug.

    Without a handler, Python prints WARNING records through its last-resort handler, and cron
    would mail a night whose retries succeeded. What failed is in the report.
    """
    import logging

    from opsguard.redact import install_log_redaction

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


# -- the probe commands (audit, health): one read-only script a host, judged, recorded, reported --------

# prepare(host, nonce, ledger records of the event, now) -> (the host's state, its probe script)
Prepare = Callable[[Any, str, list[dict[str, Any]], datetime], tuple[Any, str]]
# follow_up(host, state, nonce, session, first result) -> a second result on the same session, or None
FollowUp = Callable[[Any, Any, str, Any, Any], Any]
# evaluate(host, state, nonce, results, ledger records of the event) -> (HostResult, ledger record or None)
Evaluate = Callable[[Any, Any, str, list[Any], list[dict[str, Any]]], tuple[Any, dict[str, Any] | None]]


def probe_hosts(
    ctx: click.Context,
    command: str,
    event: str,
    host_names: tuple[str, ...],
    *,
    prepare: Prepare,
    evaluate: Evaluate,
    follow_up: FollowUp | None = None,
    as_json: bool,
    textfile: str | None,
    deadline: float,
    concurrency: int,
    wait: float,
) -> Outcome:
    """Given a probe command's per-host steps, probe the hosts under the command's run lock, record each
    judged host in the ledger (one run id) and print the report; return the outcome.

    A host whose ``prepare`` raises (bad vars) is reported unread and never contacted; a host that does
    not answer within ``deadline`` is reported unanswered; the others are judged by ``evaluate``.
    """
    from opsguard.backups import hosts_to_check
    from opsguard.guard import new_run_id
    from opsguard.ledger import Ledger
    from opsguard.probes import new_nonce, run_scripts, unanswered_host, unread_host
    from opsguard.report import Report

    inventory = ctx.obj.inventory()
    hosts = hosts_to_check(inventory.hosts, host_names, inventory.host)
    with run_lock(inventory.settings.state_dir, wait, command):
        ledger = Ledger(inventory.settings.state_dir)
        records = [record for record in ledger.records() if record.get("event") == event]
        now = datetime.now(UTC)
        results: dict[str, Any] = {}
        prepared: dict[str, tuple[Any, str]] = {}
        scripts: dict[str, str] = {}
        for host in hosts:
            nonce = new_nonce()
            try:
                state, scripts[host.name] = prepare(host, nonce, records, now)
            except Exception as error:  # one host's bad vars must not stop the others
                results[host.name] = unread_host(host.name, "inventory", error)
                continue
            prepared[host.name] = (state, nonce)

        def second(host: Any, session: Any, first: Any) -> Any:
            state, nonce = prepared[host.name]
            return follow_up(host, state, nonce, session, first) if follow_up else None

        answered = run_scripts([host for host in hosts if host.name in prepared], scripts, inventory,
                               deadline=deadline, concurrency=concurrency, follow_up=second if follow_up else None)
        run_id = new_run_id()
        for host in hosts:
            if host.name not in prepared:
                continue
            state, nonce = prepared[host.name]
            outcome = answered.get(host.name)
            if outcome is None or not outcome[0]:
                results[host.name] = unanswered_host(host.name, outcome, deadline)
                continue
            results[host.name], record = evaluate(host, state, nonce, list(outcome[1]), records)
            if record is not None:
                ledger.append(event, run_id=run_id, host=host.name, **record)
        report = Report(command, now, tuple(results[host.name] for host in hosts))
        return emit(report, as_json=as_json, textfile=textfile)
