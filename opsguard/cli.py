"""The `opsguard` command: a lazy click group, and the ONLY place exceptions become exit codes.

Each command lives in ``opsguard/commands/<module>.py`` and is imported only when it runs, so
`opsguard --help` and `opsguard hosts` start without importing requests, fabric or paramiko.
"""

from __future__ import annotations

import importlib
import io
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click

from opsguard import __version__
from opsguard.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_UNKNOWN, Interrupted, OpsguardError
from opsguard.redact import install_log_redaction, redact

# name -> (module in opsguard.commands, function, one-line help shown by --help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "hosts": ("hosts", "hosts", "List the inventory hosts, providers and backup policies."),
    "validate": ("hosts", "validate", "Check the inventory; exit 0 with a summary, or 78 listing every problem."),
    "discover": ("discover", "discover", "List the provider accounts' instances and match them to hosts by IP."),
    "snapshot": ("snapshot", "snapshot", "Take and verify a full snapshot of a host (no SSH); print the receipt."),
    "exec": ("snapshot", "exec_command", "Snapshot a host, then run one command on it as a guarded change."),
    "fab": ("fab", "fab", "Snapshot a host, then run a Fabric task from a task file on it, each call a guarded step."),
    "ledger": ("ledger", "ledger", "Show the audit ledger of snapshots and changes."),
    "unlock": ("unlock", "unlock", "Break a stale remote lock on a host (only if its owner is gone; recorded)."),
    "plan": ("playbook", "plan", "Show exactly what a playbook would run on a host (no network)."),
    "run": ("playbook", "run", "Run a playbook on a host inside the snapshot guard."),
    "update": ("playbook", "update", "OS update (apt) of one host or --all, one after another, each guarded."),
    "upgrade": ("playbook", "upgrade", "Upgrade the platform on a host (Zpro package or compose stack), guarded."),
    "rollback": ("playbook", "rollback", "Undo a host's last (or --run) upgrade without a provider restore, under its snapshot."),
    "restore": ("playbook", "restore", "Restore a host from a provider snapshot (last resort; typed confirmation)."),
    "backup-check": ("backup_check", "backup_check", "Check the providers' automatic backups are there and fresh."),
    "audit": ("audit", "audit", "Find changes made on the hosts outside a guarded window (read-only, nightly)."),
    "health": ("health", "health", "Check the hosts' health by role: pm2, containers, disk, TLS, WhatsApp... (read-only)."),
    "sandbox": ("sandbox", "sandbox", "Start or stop the built-in sandbox (simulated providers + local sshd hosts)."),
}


@dataclass
class AppContext:
    """What every command gets through click's ``ctx.obj``."""

    inventory_option: str | None
    debug: bool
    _inventory: Any = field(default=None, repr=False)

    def inventory(self) -> Any:
        """Return the loaded, validated inventory (loaded once); raise InventoryError if invalid."""
        if self._inventory is None:
            from opsguard.inventory import inventory_path, load_inventory

            self._inventory = load_inventory(inventory_path(self.inventory_option))
        return self._inventory


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"opsguard.commands.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the registry's help text so --help imports no command module.
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-i",
    "--inventory",
    "inventory_option",
    metavar="PATH",
    default=None,
    help="Inventory file (default: $OPSGUARD_INVENTORY, else ./inventory.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, "--version", prog_name="opsguard")
@click.pass_context
def cli(ctx: click.Context, inventory_option: str | None, debug: bool) -> None:
    """opsguard: no change reaches a VPS until a full snapshot of it is verified.

    Exit codes: 0 ok, 1 failed, 2 usage, 3 refused (nothing changed), 4 outcome unknown,
    78 configuration, 70 internal error.
    """
    ctx.obj = AppContext(inventory_option=inventory_option, debug=debug)
    _configure_logging(debug)


def _configure_logging(debug: bool) -> None:
    """Show library log lines (e.g. provider retries) to a person at a terminal; keep cron quiet.

    Cron mails whatever a job prints, so off a terminal only errors are shown (and everything
    with --debug). SAFETY: every record passes the redacting filter (message, arguments and
    traceback), so a token a library logs (urllib3 at DEBUG, say) is never printed.
    """
    import logging

    level = logging.DEBUG if debug else (logging.WARNING if sys.stderr.isatty() else logging.ERROR)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    install_log_redaction()


def _debug_requested(argv: list[str]) -> bool:
    # --debug is an option of `opsguard` itself: only the words before the command name count (after it,
    # a word may belong to a remote command: `opsguard exec chat echo --debug`).
    for index, word in enumerate(argv):
        if word in COMMANDS or word == "--":
            return "--debug" in argv[:index]
    return "--debug" in argv


def _interrupt_on_termination() -> None:
    """Make SIGTERM and SIGHUP stop opsguard the way Ctrl-C does (recorded unknown mid-step, locks kept honest).

    Only the first one interrupts: later ones are ignored, so the outcome can still be recorded and the
    locks handled (SIGKILL remains for a real emergency).
    """
    import signal

    def interrupt(number: int, frame: object) -> None:
        for ignored in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(ignored, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(number).name)

    for handled in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(handled, interrupt)
        except ValueError:  # not the main thread (an embedding program): leave its handlers alone
            return


def _exit_interrupted(error: BaseException) -> None:
    """Given the KeyboardInterrupt that stopped the command, print one line (and the way back) and exit."""
    if isinstance(error, Interrupted):
        for line in error.lines():
            _print_error(line)
        sys.exit(error.exit_code)
    _print_error(f"opsguard: interrupted{f' ({error})' if str(error) else ''}")
    sys.exit(EXIT_INTERRUPTED)


def _print_error(text: str) -> None:
    """Given an error text (one or more lines), print it on stderr with every token value redacted."""
    click.echo(redact(text), err=True)


def _print_traceback() -> None:
    """Print the traceback of the exception being handled, redacted (--debug only)."""
    _print_error(traceback.format_exc().rstrip("\n"))


def main(argv: list[str] | None = None) -> None:
    """Run the CLI with argv; turn every exception into its exit code and one line per problem.

    SAFETY: everything printed here, the --debug traceback included, passes opsguard.redact.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    _interrupt_on_termination()
    try:
        # standalone_mode=False: click returns ctx.exit()'s code instead of exiting itself.
        result = cli.main(args=args, prog_name="opsguard", standalone_mode=False)
    except click.exceptions.Abort as error:
        # SAFETY: click turns Ctrl-C anywhere in a command into Abort; that is not "nothing was changed".
        if isinstance(error.__cause__, KeyboardInterrupt):
            _exit_interrupted(error.__cause__)
        if error.__cause__ is not None:
            # click turns an EOFError anywhere into Abort: that says nothing about whether the host changed.
            _print_error(f"opsguard: aborted: {type(error.__cause__).__name__} {error.__cause__}".rstrip())
            sys.exit(EXIT_UNKNOWN)
        _print_error("opsguard: aborted; nothing was changed")
        sys.exit(3)
    except click.ClickException as error:  # usage errors: click's own message and exit 2
        shown = io.StringIO()
        error.show(file=shown)
        _print_error(shown.getvalue().rstrip("\n"))
        sys.exit(error.exit_code)
    except click.exceptions.Exit as error:
        sys.exit(error.exit_code)
    except OpsguardError as error:
        if debug:
            _print_traceback()
        for line in error.lines():
            _print_error(line)
        sys.exit(error.exit_code)
    except KeyboardInterrupt as error:
        _exit_interrupted(error)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:  # a bug: say so in one line, traceback only with --debug
        if debug:
            _print_traceback()
        _print_error(f"opsguard: internal error: {type(error).__name__}: {error} (run with --debug for the traceback)")
        sys.exit(EXIT_INTERNAL)
    sys.exit(result if isinstance(result, int) else 0)
