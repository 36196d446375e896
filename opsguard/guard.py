"""The snapshot guard: the only way to get a session that may change a host.

SAFETY: a ``ChangeSession`` that can run a mutating step is only ever created inside
``snapshot_guard``, after a snapshot of that very host was created and verified complete through
the provider's API, and holds a receipt the guard issued (see opsguard/session.py for why that is
a capability, not a convention).

``snapshot_guard`` is a sequence of acquisitions on one ExitStack, each undone in reverse order:

1. the instance exists, is running and not locked by a provider action; its IP is the host's address;
2. the local lock (this machine) — then, over SSH, the connection must reach one of the instance's
   IPs, the remote lock (every machine) with its heartbeat;
3. where a new snapshot replaces the only one (Hostinger): the ledger and the host's own change
   record must not show an unsettled change whose rollback point that snapshot is; the change record
   must be writable on the host;
4. ONE create request, poll, verify -> the receipt; the host's record says "in-progress";
5. yield the ChangeSession; on the way out: the record gets the outcome, the remote lock is released
   unless a step may still run, the run ends in the ledger, and only then the local lock is released.

Whether anything was changed is DERIVED in one place (``conclude``) from whether a mutating step had
started: before it, a failure keeps its meaning and says "nothing was changed" (a refusal exits 3);
after it, a refusal becomes "outcome unknown" (exit 4) and every error carries the rollback point.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from opsguard import ledger as events
from opsguard.checks import (
    Resolver,
    check_identity,
    check_instance_ready,
    check_overwrite,
    check_overwrite_on_host,
    check_without_ssh,
    explain_provider_error,
    record_problem_refusal,
    resolve_address,
)
from opsguard.errors import (
    ConfigError,
    Interrupted,
    LedgerWriteError,
    OpsguardError,
    OutcomeUnknown,
    ProviderError,
    Refused,
    SnapshotGone,
)
from opsguard.history import HistoryWriteError, append_history
from opsguard.hostconnection import Connector, HostConnection
from opsguard.hoststate import RecordError, check_record_writable, read_change_record, write_change_record
from opsguard.inventory import Host, Inventory, inventory_path, load_inventory
from opsguard.ledger import Ledger, check_free_space, utc_now_text
from opsguard.locks import Heartbeat, LocalLock, RemoteLock, owner_record
from opsguard.output import log
from opsguard.providers import capabilities
from opsguard.providers.base import Provider
from opsguard.receipt import SnapshotReceipt
from opsguard.rollbackrules import check_still_last_change
from opsguard.session import ChangeSession, ReadOnlySession, SessionCore, _core_of, _session_key
from opsguard.snapshotwait import ProgressCallback, poll_gap, reuse_snapshot, take_snapshot, wait_for_snapshot

__all__ = [
    "ChangeSession",
    "ReadOnlySession",
    "SnapshotReceipt",
    "new_run_id",
    "poll_gap",
    "read_only_session",
    "resolve_address",
    "rollback_guard",
    "snapshot_guard",
    "wait_for_snapshot",
]

# The state dir must have room for the run's records before anything starts (a run writes kilobytes).
STATE_DIR_MINIMUM_FREE = 16 * 1024 * 1024


def new_run_id() -> str:
    """Return a new run id: UTC time plus random hex, sortable and unique enough to grep."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# -- test seams (not part of any public signature) ---------------------------------------------------------


@dataclass(frozen=True)
class Seams:
    """What tests and benchmarks may replace: the provider client, the SSH connector, the DNS resolver."""

    provider: Callable[[Host], Provider] | None = None
    connect: Connector | None = None
    resolve: Resolver | None = None


_SEAMS: ContextVar[Seams | None] = ContextVar("opsguard_guard_seams", default=None)
_NO_SEAMS = Seams()


def _seams() -> Seams:
    return _SEAMS.get() or _NO_SEAMS


@contextmanager
def seams(**replacements: Any) -> Iterator[None]:
    """For tests: given provider=, connect= and/or resolve=, use them in every guard and session opened inside."""
    token = _SEAMS.set(Seams(**replacements))
    try:
        yield
    finally:
        _SEAMS.reset(token)


def _provider(host: Host) -> Provider:
    chosen = _seams().provider
    if chosen is not None:
        return chosen(host)
    from opsguard.providers import provider_for

    return provider_for(host)


def host_connector() -> Connector:
    """Return the function that opens an SSH connection to a host (strict host keys; a test seam may replace it)."""
    chosen = _seams().connect
    if chosen is not None:
        return chosen

    def connect(host: Host, settings: Any) -> Any:
        from opsguard.transport import connect as ssh_connect

        return ssh_connect(host, settings)

    return connect


def _load(inventory: Inventory | str | Path | None) -> Inventory:
    if isinstance(inventory, Inventory):
        return inventory
    return load_inventory(inventory_path(str(inventory) if inventory is not None else None))


# -- read-only sessions -------------------------------------------------------------------------------------


@contextmanager
def read_only_session(host: str | Host, *, inventory: Inventory | str | Path | None = None) -> Iterator[ReadOnlySession]:
    """Given a host, yield a read-only session over one SSH connection: it runs read-only text and refuses the rest."""
    loaded = _load(inventory)
    target = loaded.host(host) if isinstance(host, str) else host
    connection = HostConnection(target, loaded.settings, host_connector())
    core = SessionCore(host=target, settings=loaded.settings, ledger=Ledger(loaded.settings.state_dir),
                       run_id=new_run_id(), connection=connection)
    try:
        yield ReadOnlySession(_session_key(), core)
    finally:
        core.closed = True
        connection.close()


def _reused_connection(host: Host, session: ReadOnlySession) -> HostConnection:
    """Given the guard's host and a read-only session to reuse, return its connection; raise Refused if it may not carry the change.

    SAFETY: the change runs over that session's SSH connection, so it must be open and to this very host;
    a session of another host would get this host's receipt and change the other host unsnapshotted.
    """
    if not isinstance(session, ReadOnlySession):
        raise Refused(f"host {host.name}: snapshot_guard can only reuse a read-only session")
    core = _core_of(session)
    mine = (host.name, host.address, host.port)
    if (core.host.name, core.host.address, core.host.port) != mine:
        why = f"is for host {core.host.name}"
    elif core.closed:
        why = "has ended"
    elif core.connection is None:
        why = "has no SSH connection"
    else:
        return core.connection
    raise Refused(f"host {host.name}: the session passed to snapshot_guard {why}")


# -- the guard ------------------------------------------------------------------------------------------------


@contextmanager
def snapshot_guard(
    host: str | Host,
    *,
    reason: str,
    overwrite_snapshot: bool = False,
    inventory: Inventory | str | Path | None = None,
    ssh: bool = True,
    session: ReadOnlySession | None = None,
    on_progress: ProgressCallback | None = None,
    command: str = "",
) -> Iterator[ChangeSession]:
    """Given a host and a reason, yield a ChangeSession once a snapshot of that host is verified.

    Raise Refused (exit 3) at the first rule that fails, OutcomeUnknown (exit 4) when the API or host
    cannot be reached, ConfigError (78) for a missing instance id, token or unusable state dir. With
    ``ssh=False`` no SSH connection is made (so no remote lock and no host record): the session cannot
    run commands, and where a new snapshot replaces the only one the guard refuses unless
    ``overwrite_snapshot``. Pass ``session`` (from ``read_only_session``) to reuse its connection.
    Errors raised after a mutating step started are "failed" or "outcome unknown", with the rollback point.
    """
    loaded = _load(inventory)
    target = loaded.host(host) if isinstance(host, str) else host

    def new_snapshot(run: _Run) -> SnapshotReceipt:
        return _new_snapshot(loaded, target, run, overwrite_snapshot, on_progress)

    with _guarded(loaded, target, reason=reason, command=command, ssh=ssh, session=session,
                  overwrite_snapshot=overwrite_snapshot, snapshot=new_snapshot) as change:
        yield change


@contextmanager
def rollback_guard(
    host: str | Host,
    *,
    rolled_back_run: str,
    reason: str,
    inventory: Inventory | str | Path | None = None,
    command: str = "rollback",
    overwrite_snapshot: bool = False,
    on_progress: ProgressCallback | None = None,
) -> Iterator[ChangeSession]:
    """Given a host and the run R whose change is undone, yield a ChangeSession authorised by R's verified snapshot.

    Guard rule 3d, checked once both locks are held: R's records in the ledger are intact (hash chain), R was not
    rolled back already, and R is still the host's last change by this machine's ledger, the host's change
    record and its history of guarded runs (a failed or unknown rollback of R does not count: this is its
    retry); else raise Refused (exit 3, nothing changed). Then, while the provider still has R's snapshot (a
    single-slot provider: it is still the instance's current snapshot and not expired; else: complete and
    tagged exactly for this host, instance and run R), it is the rollback point of the rollback too, and NO
    new snapshot is taken (on a single-slot provider a new one would destroy it). Only when the provider
    says R's snapshot is gone is a new one taken, as for any change (rule 3 applies; ``overwrite_snapshot``).
    Everything else is the guard's as for a change: identity, locks, host record, ledger.
    """
    loaded = _load(inventory)
    target = loaded.host(host) if isinstance(host, str) else host

    def rollback_snapshot(run: _Run) -> SnapshotReceipt:
        # SAFETY: R's snapshot is the rollback point only while R is the host's LAST change: a later change's work
        # would be lost by going back to a point before it. Checked here, with both locks held, so a rollback or a
        # change that ended while this one was prepared (read the ledger, ran its preflight, asked) is seen, and
        # none can start before this run ends. Not being the last change is a refusal, never a new snapshot.
        check_still_last_change(target, run.ledger, rolled_back_run, run.connection)
        try:
            return reuse_snapshot(target, run.api, run.ledger, run.run_id, rolled_back_run)
        except SnapshotGone as gone:
            # Only the provider's answer that R's snapshot is gone lands here: a normal guarded change under the
            # same locks (its reason, not a "refused" line: the rollback goes on).
            log(f"{target.name}: {gone.reason}; the rollback runs as a normal guarded change: a new snapshot first")
            return _new_snapshot(loaded, target, run, overwrite_snapshot, on_progress)

    with _guarded(loaded, target, reason=reason, command=command, ssh=True, session=None,
                  overwrite_snapshot=overwrite_snapshot, snapshot=rollback_snapshot) as change:
        yield change


def _new_snapshot(loaded: Inventory, target: Host, run: _Run, overwrite_snapshot: bool,
                  on_progress: ProgressCallback | None) -> SnapshotReceipt:
    """Given the guard's inventory, host and run, take a new snapshot; raise Refused where it would overwrite a
    failed change's rollback point (rule 3, by the ledger and the host's record)."""
    check_overwrite(target, run.ledger, overwrite_snapshot)
    if run.connection is not None:
        check_overwrite_on_host(target, read_change_record(run.connection, target.remote_state), overwrite_snapshot)
    return take_snapshot(target, loaded.settings, run.api, run.ledger, run.run_id, on_progress=on_progress)


@dataclass
class _Run:
    """What the snapshot step of a guarded run may use."""

    api: Provider
    ledger: Ledger
    run_id: str
    connection: HostConnection | None


@contextmanager
def _guarded(
    loaded: Inventory,
    target: Host,
    *,
    reason: str,
    command: str,
    ssh: bool,
    session: ReadOnlySession | None,
    overwrite_snapshot: bool,
    snapshot: Callable[[_Run], SnapshotReceipt],
) -> Iterator[ChangeSession]:
    """The guard's acquisitions around a snapshot step (a new snapshot, or a rolled-back run's): see the module docstring."""
    from opsguard.commandline import validate_command_text


    settings = loaded.settings
    instance = target.require_instance()
    validate_command_text(reason, what="--reason", allow_empty=True)
    api = _provider(target)
    # Room for every record of the run, before the first one (a full disk fails before anything starts).
    check_free_space(settings.state_dir, STATE_DIR_MINIMUM_FREE)
    ledger = Ledger(settings.state_dir)
    reused = _core_of(session) if session is not None else None
    run_id = reused.run_id if reused is not None else new_run_id()
    owner = owner_record(run_id, reason)
    core: SessionCore | None = None
    failure: BaseException | None = None
    held: list[LocalLock] = []  # the local lock once taken: released only after the run's end is in the ledger
    try:
        ledger.append(events.RUN_STARTED, run_id=run_id, host=target.name, provider=target.provider,
                      instance=instance, reason=reason, command=command, user=owner["user"],
                      machine=owner["machine"], pid=os.getpid())
        with ExitStack() as stack:
            reused_connection = _reused_connection(target, session) if session is not None else None
            try:
                facts = api.instance_facts(instance)
            except ProviderError as error:
                raise explain_provider_error(target, "reading the instance", error) from error
            check_instance_ready(target, facts)
            matching = check_identity(target, facts, _seams().resolve or resolve_address)
            local_lock = LocalLock(settings.state_dir, target.name)
            local_lock.acquire(owner)
            held.append(local_lock)
            connection: HostConnection | None = None
            remote_lock: RemoteLock | None = None
            if ssh:
                connection = reused_connection
                if connection is None:
                    connection = HostConnection(target, settings, host_connector())
                    stack.callback(connection.close)
                connection.require_peer(matching)
                # Who, beyond the OS account: the key that logged in (an agent key names its person).
                key = connection.authenticated_key()
                if key:
                    owner = {**owner, "ssh_key": key}
                remote_lock = RemoteLock(connection, target.name, target.remote_lock)
                remote_lock.acquire(owner)
                stack.push(_Releaser(remote_lock, lambda: core))
                stack.enter_context(Heartbeat(remote_lock))
                # A reboot empties /run/lock: take the lock again as soon as the host answers.
                connection.after_reconnect(remote_lock.reacquire)
            else:
                check_without_ssh(target, overwrite_snapshot)
            keeps_record = connection is not None and _record_writable(target, connection)
            receipt = snapshot(_Run(api, ledger, run_id, connection))
            if connection is not None and keeps_record:
                record = {"run_id": run_id, "snapshot_id": receipt.snapshot_id, "user": owner["user"],
                          "machine": owner["machine"], "since": owner["since"], "reason": reason, "command": command}
                started_at = utc_now_text()
                try:
                    write_change_record(connection, target.remote_state, {**record, "outcome": "in-progress"})
                    # The host's history of guarded runs: what `opsguard audit` compares changes with, from any machine.
                    append_history(connection, target.remote_state, _history_entry(record, started_at, None, "in-progress"))
                except (RecordError, HistoryWriteError) as error:
                    raise record_problem_refusal(target, target.remote_state, error.reason) from None
                stack.push(_RecordWriter(connection, target, record, lambda: core, started_at))
            core = SessionCore(host=target, settings=settings, ledger=ledger, run_id=run_id, connection=connection,
                               receipt=receipt, remote_lock=remote_lock, ssh_key=owner.get("ssh_key"))
            try:
                yield ChangeSession(_session_key(), core)
            finally:
                core.closed = True
    except BaseException as error:
        failure = error
        concluded = conclude(target, core, error)
        if concluded is error:
            raise
        raise concluded from error
    finally:
        try:
            _end_run(ledger, target, run_id, core, failure)
        finally:
            # SAFETY: after the run's end is in the ledger: a run of this machine waiting for the lock (a second
            # rollback of the same run) must find this one ended, not "unknown", which would let it run again.
            for lock in held:
                lock.release()


def _record_writable(host: Host, connection: HostConnection) -> bool:
    """Given a host and its connection, return whether its change record can be kept; raise Refused where it must be."""
    problem = check_record_writable(connection, host.remote_state)
    if problem is None:
        return True
    if capabilities(host.provider).single_snapshot_slot:
        raise record_problem_refusal(host, host.remote_state, problem)
    # Where snapshots are not overwritten, the record only informs: go on, and say so.
    print(f"opsguard: warning: host {host.name}: cannot keep the change record in {host.remote_state} ({problem})",
          file=sys.stderr)
    return False


class _Releaser:
    """On the way out: release the remote lock unless a step this run started may still run on the host."""

    def __init__(self, lock: RemoteLock, core: Callable[[], SessionCore | None]) -> None:
        self.lock = lock
        self.core = core

    def __call__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> bool:
        core = self.core()
        if core is not None and core.unknown_step is not None:
            # SAFETY: a step whose outcome is unknown (timed out, interrupted, connection lost) may still run,
            # or have started something that left its process group (sudo with use_pty, docker exec, setsid):
            # the lock stays until a person has looked (opsguard unlock refuses while its group runs).
            core.lock_kept = True
            return False
        try:
            still_running = self.lock.release()
        except Exception:  # the host may be gone: the lock dir stays for `opsguard unlock`
            return False
        if still_running is not None and core is not None:
            core.still_running = still_running
            core.lock_kept = True
        return False


class _RecordWriter:
    """On the way out: write the run's outcome into the host's change record (best effort: "in-progress" = unknown)."""

    def __init__(self, connection: HostConnection, host: Host, record: dict[str, Any],
                 core: Callable[[], SessionCore | None], started_at: str) -> None:
        self.connection = connection
        self.host = host
        self.record = record
        self.core = core
        self.started_at = started_at

    def __call__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> bool:
        outcome, _ = outcome_of(self.core(), error)
        with suppress(Exception):  # unreachable now: "in-progress" stays behind and counts as unknown
            write_change_record(self.connection, self.host.remote_state, {**self.record, "outcome": outcome})
        with suppress(Exception):  # unreachable now: the history keeps the open window (audit bounds it)
            append_history(self.connection, self.host.remote_state,
                           _history_entry(self.record, self.started_at, utc_now_text(), outcome))
        return False


def _history_entry(record: dict[str, Any], start: str, end: str | None, outcome: str) -> dict[str, Any]:
    """Given the run's host record, its start and end times and its outcome, return its history entry."""
    return {"run_id": record["run_id"], "start": start, "end": end, "snapshot_id": str(record["snapshot_id"]),
            "outcome": outcome, "user": record["user"], "machine": record["machine"], "command": record["command"] or None}


def outcome_of(core: SessionCore | None, error: BaseException | None) -> tuple[str, str | None]:
    """Given the session core (None before the snapshot) and the exception that ended the block, return (outcome, step)."""
    if isinstance(error, GeneratorExit):
        error = None
    if core is None or not core.started:
        if error is None:
            return events.OK, None
        return (events.ABORTED if core is not None else events.REFUSED), None
    unknown = (KeyboardInterrupt, OutcomeUnknown, Refused, ConfigError, LedgerWriteError, RecordError)
    if core.unknown_step or isinstance(error, unknown):
        return events.UNKNOWN, core.unknown_step or core.failed_step
    if core.failed_step or error is not None:
        return events.FAILED, core.failed_step
    return events.OK, None


def rollback_advice(host: Host, core: SessionCore) -> list[str]:
    """Given a host and a session whose change started, return the advice lines: the rollback point, and what may still run."""
    lines = []
    if core.lock_kept:
        group = f" (process group {core.still_running})" if core.still_running and core.still_running > 0 else ""
        lines.append(f"{host.name}: step {core.unknown_step!r} may still be running on the host{group}; the remote lock "
                     f"{host.remote_lock} stays held: check what runs there, then opsguard unlock {host.name} --reason TEXT "
                     "(it refuses while the step's process group runs)")
    if core.receipt is not None:
        snapshot = core.receipt.snapshot_id
        lines.append(f"{host.name}: rollback point: snapshot {snapshot} (opsguard restore {host.name} --snapshot {snapshot})")
    return lines


def conclude(host: Host, core: SessionCore | None, error: BaseException) -> BaseException:
    """Given the host, the session core (None before the snapshot) and the error that ended the guard, return the error to raise.

    SAFETY: this is the ONE place that decides whether a failure may say "nothing was changed":
    only when no mutating step had started. After that, a refusal (a peer mismatch after a reboot,
    the lock lost on reconnect, a ledger that can no longer be written) becomes "outcome unknown"
    (exit 4), and every error carries the rollback point.
    """
    started = core is not None and core.started
    if isinstance(error, GeneratorExit | SystemExit):
        return error
    if isinstance(error, KeyboardInterrupt) and not isinstance(error, Interrupted):
        where = f" during step {core.unknown_step!r}" if started and core is not None and core.unknown_step else ""
        interrupted = Interrupted(f"host {host.name}: interrupted{where} ({error or 'Ctrl-C'})", changed=started)
        error = interrupted
    if not started:
        if isinstance(error, LedgerWriteError):
            refused = Refused(error.reason)
            refused.changed = False
            return refused
        if isinstance(error, OpsguardError):
            error.changed = False
        return error
    assert core is not None
    advice = rollback_advice(host, core)
    if isinstance(error, Refused | ConfigError | LedgerWriteError | RecordError):
        unknown = OutcomeUnknown(error.reason)
        unknown.changed = True
        unknown.advice = [*error.advice, *advice]
        return unknown
    if isinstance(error, OpsguardError):
        error.changed = True
        error.advice = [*error.advice, *(line for line in advice if line not in error.advice)]
        return error
    if isinstance(error, Exception):
        # A local failure mid-change (an EOF from the SSH library, a closed pipe, a bug in the caller's block):
        # the host may have changed and nobody knows how far. Unknown, with the way back; the cause is kept.
        unknown = OutcomeUnknown(f"host {host.name}: {type(error).__name__}: {error}")
        unknown.changed = True
        unknown.advice = advice
        return unknown
    return error


def _end_run(ledger: Ledger, host: Host, run_id: str, core: SessionCore | None, failure: BaseException | None) -> None:
    outcome, step = outcome_of(core, failure)
    error_text = str(failure) if failure is not None and not isinstance(failure, GeneratorExit) else None
    try:
        ledger.append(events.RUN_ENDED, run_id=run_id, host=host.name, outcome=outcome, failed_step=step,
                      error=error_text, still_running=core.still_running if core is not None else None,
                      lock_kept=core.lock_kept if core is not None else False,
                      ssh_key=core.ssh_key if core is not None else None,
                      snapshot_id=core.receipt.snapshot_id if core is not None and core.receipt else None)
    except LedgerWriteError as error:
        if failure is not None:
            # The run is already ending with an error; this one can only be said.
            print(f"opsguard: {error}", file=sys.stderr)
            return
        raise conclude(host, core, error) from None
