"""Sessions on one host: read-only (before a snapshot) and change (after a verified snapshot).

SAFETY — these are capabilities, not conventions:
- A session holds no public reference to its SSH connection or its receipt. Its state lives in a
  private ``SessionCore`` kept in a module registry keyed by the session, and the session classes
  have ``__slots__``: nothing can be read off them or attached to them (no raw connection, no
  made-up receipt).
- Only ``snapshot_guard`` makes a ChangeSession (the constructor needs a key private to this module
  that only the guard asks for), and before every mutating step the session checks that its receipt
  is one the guard ISSUED (by identity) for this host, instance and run.
- A read-only session runs only text in the read-only vocabulary (opsguard/readonly.py). A change
  session runs read-only text as a recorded read and ANY other text as a mutating step: recorded,
  covered by the receipt, and counted as "the change has started".
- Every command a change session runs is in the ledger (reads marked ``phase: read``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsguard import ledger as events
from opsguard.durations import format_duration
from opsguard.errors import (
    OpsguardError,
    OutcomeUnknown,
    ReadOnlyViolation,
    ReceiptExpired,
    Refused,
    StepTimeout,
)
from opsguard.inventory import Host, Settings
from opsguard.ledger import Ledger
from opsguard.readonly import environment_problem, read_only_problem
from opsguard.receipt import SnapshotReceipt, was_issued

if TYPE_CHECKING:
    from opsguard.fabric_tasks import GuardedConnection
    from opsguard.hostconnection import HostConnection
    from opsguard.locks import RemoteLock
    from opsguard.transport import CommandResult

OutputCallback = Callable[[str, str], None]
DEFAULT_STEP_TIMEOUT = 3600.0

_KEY = object()  # makes the session constructors private to opsguard (guard.py asks for it)


@dataclass(eq=False)
class SessionCore:
    """The private state of one session. Never handed out by a session."""

    host: Host
    settings: Settings
    ledger: Ledger
    run_id: str
    connection: HostConnection | None
    receipt: SnapshotReceipt | None = None
    remote_lock: RemoteLock | None = None
    change_started: float | None = None  # monotonic time the first mutating step was recorded as started
    mutating_steps: int = 0
    failed_step: str | None = None
    unknown_step: str | None = None
    still_running: int | None = None  # process group of a step that may still run on the host
    lock_kept: bool = False  # the remote lock was left held (a step may still run)
    closed: bool = False
    ssh_key: str | None = None  # fingerprint of the key that logged in, for the ledger

    @property
    def started(self) -> bool:
        """Return whether a mutating step has started (from then on nothing can be called "unchanged")."""
        return self.change_started is not None


_CORES: weakref.WeakKeyDictionary[_Session, SessionCore] = weakref.WeakKeyDictionary()


def _core_of(session: _Session) -> SessionCore:
    """Given a session, return its private core (for the guard and the runner only)."""
    return _CORES[session]


def _session_key() -> object:
    """Return the key the session constructors demand (for opsguard's guard only)."""
    return _KEY


class _Session:
    __slots__ = ("__weakref__",)

    def __init__(self, key: object, core: SessionCore) -> None:
        if key is not _KEY:
            # SAFETY: nobody outside opsguard may mint a session; that would bypass the snapshot.
            raise TypeError(f"{type(self).__name__} cannot be created directly; use opsguard.snapshot_guard()")
        _CORES[self] = core

    @property
    def host(self) -> Host:
        """The inventory host this session runs on."""
        return _CORES[self].host

    @property
    def run_id(self) -> str:
        """The run id (ledger, locks, receipt)."""
        return _CORES[self].run_id

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        return _CORES[self].closed



def _usable_connection(core: SessionCore) -> HostConnection:
    """Given a session core, return its connection; raise Refused if the session ended or has none."""
    if core.closed:
        raise Refused(f"host {core.host.name}: the session has ended")
    if core.connection is None:
        raise Refused(f"host {core.host.name}: this session has no SSH connection (snapshot only)")
    return core.connection


class ReadOnlySession(_Session):
    """A session that only reads: it runs text in the read-only vocabulary and refuses everything else."""

    __slots__ = ()

    @property
    def read_only(self) -> bool:
        """Always True."""
        return True

    def run(
        self,
        command: str,
        *,
        mutates: bool = False,
        name: str | None = None,
        timeout: float = DEFAULT_STEP_TIMEOUT,
        ok_codes: tuple[int, ...] = (0,),
        sudo_user: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Given read-only shell text, run it on the host and return its result (non-zero exits are returned).

        Raise ReadOnlyViolation (exit 3, nothing sent) if the text is declared mutating or is not in
        the read-only vocabulary.
        """
        core = _CORES[self]
        step = name or command
        where = f"host {core.host.name}: step {step!r}"
        if mutates:
            raise ReadOnlyViolation(f"{where} changes the host but this session is read-only (no verified snapshot)")
        problem = read_only_problem(command) or environment_problem(env)
        if problem:
            raise ReadOnlyViolation(f"{where} is not known to be read-only ({problem}) and this session has no verified snapshot")
        return _usable_connection(core).run(command, timeout=timeout, sudo_user=sudo_user, env=env, on_output=on_output)


class ChangeSession(_Session):
    """A session whose verified snapshot authorises changes on its host. Get one from ``snapshot_guard``."""

    __slots__ = ()

    @property
    def read_only(self) -> bool:
        """Always False: this session may run mutating steps (each one checked against its receipt)."""
        return False

    @property
    def receipt(self) -> SnapshotReceipt:
        """The receipt of the verified snapshot that authorises this change (read-only)."""
        receipt = _CORES[self].receipt
        assert receipt is not None
        return receipt

    @property
    def started(self) -> bool:
        """Whether a mutating step has started (from then on the host may have changed)."""
        return _CORES[self].started

    @property
    def failed_step(self) -> str | None:
        """The step that failed, if one did."""
        return _CORES[self].failed_step

    @property
    def unknown_step(self) -> str | None:
        """The step whose outcome is unknown (dropped connection, timeout, interrupt), if one is."""
        return _CORES[self].unknown_step

    def run(
        self,
        command: str,
        *,
        mutates: bool = True,
        name: str | None = None,
        timeout: float = DEFAULT_STEP_TIMEOUT,
        ok_codes: tuple[int, ...] = (0,),
        sudo_user: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Given shell text, run it on the host and return its result (non-zero exits are returned, and recorded).

        With ``mutates=False`` text in the read-only vocabulary runs as a recorded read; any other
        text is a mutating step whatever ``mutates`` says. Raise Refused before running a mutating
        step the receipt does not cover, and OutcomeUnknown (exit 4) when the host stops answering.
        """
        core = _CORES[self]
        step = name or command
        connection = _usable_connection(core)
        problem = None if mutates else (read_only_problem(command) or environment_problem(env))
        # A read records its process group too: a read that times out is stopped like a step.
        pid_file = core.remote_lock.step_pid_file if core.remote_lock is not None else None
        if not mutates and problem is None:
            return self._read(core, step, command, lambda: connection.run(
                command, timeout=timeout, sudo_user=sudo_user, env=env, on_output=on_output, pid_file=pid_file))
        return _mutating(core, step, command, lambda: connection.run(
            command, timeout=timeout, sudo_user=sudo_user, env=env, on_output=on_output, pid_file=pid_file),
            ok_codes, declared_read_only=not mutates, problem=problem)

    def upload(self, local_path: Path, remote_path: str, *, name: str | None = None, mode: int | None = None) -> None:
        """Given a local file and a remote path, copy it over SFTP as a mutating step."""
        core = _CORES[self]
        step = name or f"upload {local_path.name}"
        connection = _usable_connection(core)

        def transfer() -> None:
            connection.upload(local_path, remote_path, mode=mode)

        _mutating(core, step, f"sftp put {local_path} {remote_path}", transfer, (0,))

    def fabric(self, *, task: str | None = None, output: OutputCallback | None = None) -> GuardedConnection:
        """Return a Fabric-style connection ``c`` over this session for a Fabric task: c.run, c.sudo, c.put, c.get, c.cd, c.prefix.

        Every call it makes is a recorded step of this session (see opsguard/fabric_tasks.py); what
        would bypass the recording (c.client, port forwarding, pty, watchers) is refused. ``task``
        names the task in messages; ``output(stream, line)`` shows the host's output (default: as
        Fabric prints it).
        """
        from opsguard.fabric_tasks import GuardedConnection

        return GuardedConnection(self, task=task, output=output)

    def note(self, event: str, **fields: Any) -> None:
        """Given an event name and JSON-ready fields, append them to the ledger as a record of this run (what it
        copied off the host, what a rollback of it needs); raise LedgerWriteError if it cannot be written whole.

        Nothing is sent to the host: this only writes the run's own record, through the session so it carries
        this run's id and host (a caller cannot file a record under another run).
        """
        core = _CORES[self]
        core.ledger.append(event, run_id=core.run_id, host=core.host.name, **fields)

    def reconnect(self) -> None:
        """Re-open the SSH connection (after a reboot): same strict host key, same peer check, lock re-taken.

        Raise OutcomeUnknown while the host is down, Refused if the new connection reached another machine.
        """
        _usable_connection(_CORES[self]).reconnect()

    def mark_failed(self, step_name: str, reason: str = "", *, recorded: bool = False) -> None:
        """Given a step that failed (by its check, not only its exit code), record it as the failed step.

        With ``recorded`` the ledger already says the step failed (its exit code): only remember it.
        """
        core = _CORES[self]
        core.failed_step = step_name
        if not recorded:
            core.ledger.append(events.STEP, phase="check", result=events.FAILED, run_id=core.run_id,
                               host=core.host.name, step=step_name, error=reason)

    def _read(self, core: SessionCore, step: str, command: str, action: Callable[[], CommandResult]) -> CommandResult:
        started = time.monotonic()

        def record(**fields: Any) -> None:
            core.ledger.append(events.STEP, phase="read", run_id=core.run_id, host=core.host.name, step=step,
                               command=command, duration=round(time.monotonic() - started, 3), **fields)

        try:
            result = action()
        except BaseException as error:
            # The text went out: whatever became of it, the ledger says it was sent (found by a review: a read
            # that dropped left no record). A read is not a change, so its loss does not make the run unknown;
            # the caller gets the error. A read that timed out is stopped like a step.
            fields: dict[str, Any] = {"result": events.UNKNOWN, "error": str(error) or type(error).__name__}
            if isinstance(error, StepTimeout):
                fields["still_running"] = _stop_timed_out_step(core)
            with suppress(OpsguardError):  # the original error says more than a ledger that failed too
                record(**fields)
            raise
        record(exit_status=result.exit_status)
        return result


def authorise(core: SessionCore, step: str) -> None:
    """Given a session core and a mutating step's name, return if the step may run; raise Refused (exit 3) if not.

    A receipt authorises a change that STARTS within receipt_ttl of verification. Once the change
    has started, later steps go on: stopping a half-done change because a clock ran out would leave
    the host worse off than finishing it with its rollback point in hand.
    """
    where = f"host {core.host.name}: step {step!r}"
    if core.closed:
        raise Refused(f"{where}: the guarded session has ended")
    receipt = core.receipt
    if receipt is None or not was_issued(receipt):
        raise ReadOnlyViolation(f"{where} changes the host but this session holds no snapshot receipt the guard issued")
    bound = (receipt.host, receipt.provider, receipt.instance, receipt.run_id)
    if bound != (core.host.name, core.host.provider, core.host.instance, core.run_id):
        raise ReceiptExpired(f"{where}: the snapshot receipt is for host {receipt.host} instance {receipt.instance} "
                             f"run {receipt.run_id}, not this session's")
    if core.change_started is None and receipt.age() > core.settings.receipt_ttl:
        raise ReceiptExpired(
            f"{where}: snapshot {receipt.snapshot_id} was verified {format_duration(receipt.age())} ago, "
            f"longer than receipt_ttl {format_duration(core.settings.receipt_ttl)}; take a new snapshot"
        )


def _mutating(core: SessionCore, step: str, command: str, action: Callable[[], Any], ok_codes: tuple[int, ...], *,
              declared_read_only: bool = False, problem: str | None = None) -> Any:
    authorise(core, step)
    common: dict[str, Any] = {"run_id": core.run_id, "host": core.host.name, "step": step, "command": command}
    if declared_read_only:
        # Declared read-only but not in the vocabulary: it runs as a change (it may be one) and says why.
        common["declared_read_only"] = problem
    # SAFETY: the "started" record is durable BEFORE the command is sent; if it cannot be written,
    # the step does not run (and nothing has changed).
    core.ledger.append(events.STEP, phase="started", **common)
    if core.change_started is None:
        core.change_started = time.monotonic()
    core.mutating_steps += 1
    started = time.monotonic()

    def ended(result: str, **fields: Any) -> None:
        core.ledger.append(events.STEP, phase="ended", result=result, duration=round(time.monotonic() - started, 3),
                           **common, **fields)

    try:
        outcome = action()
    except StepTimeout as error:
        core.unknown_step = step
        core.still_running = _stop_timed_out_step(core)
        ended(events.UNKNOWN, error=str(error), still_running=core.still_running)
        raise
    except OutcomeUnknown as error:
        core.unknown_step = step
        ended(events.UNKNOWN, error=str(error))
        raise
    except OpsguardError as error:
        core.failed_step = step
        ended(events.FAILED, error=str(error))
        raise
    except BaseException as error:
        # Interrupted mid-step (Ctrl-C, SIGTERM, SIGHUP) or a local failure (a closed stdout pipe, a bug):
        # we stopped watching the command, which may or may not have taken effect. Never "failed", never "ok".
        core.unknown_step = step
        reason = f"interrupted ({error})" if isinstance(error, KeyboardInterrupt) else f"local error: {type(error).__name__}"
        ended(events.UNKNOWN, error=reason.replace("interrupted ()", "interrupted"))
        raise
    exit_status = getattr(outcome, "exit_status", 0)
    ok = exit_status in ok_codes
    if not ok:
        core.failed_step = step
    ended(events.OK if ok else events.FAILED, exit_status=exit_status)
    return outcome


def _stop_timed_out_step(core: SessionCore) -> int | None:
    """After a step timed out: stop its process group and confirm; return the group if it still runs."""
    if core.remote_lock is None:
        return None
    try:
        return core.remote_lock.stop_step()
    except Exception:
        pid_file = core.remote_lock.step_pid_file
        return -1 if pid_file else None
