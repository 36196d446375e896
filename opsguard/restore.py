"""`opsguard restore`: the last resort — put a provider snapshot back onto a host.

Destructive (the disk is replaced), so: identity checked like the guard, the snapshot checked where
the API allows, the host name typed by the person, the host's local AND remote lock taken (so no
change from any machine runs while its disk is replaced), and every step in the ledger. No new
snapshot is taken first: on Hostinger it would overwrite the very snapshot being restored.

SAFETY: a restore is "requested" when the provider accepted it and "completed" only once the
provider shows it done; only a completed restore clears the Hostinger overwrite protection (a
requested restore that then fails leaves the failed change's rollback point protected).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress

import click

from opsguard import ledger as events
from opsguard.checks import check_identity, explain_provider_error, resolve_address
from opsguard.durations import format_duration
from opsguard.errors import Failed, LedgerWriteError, OutcomeUnknown, ProviderError, ProviderUnreachable, Refused
from opsguard.guard import new_run_id
from opsguard.inventory import Host, Inventory
from opsguard.ledger import Ledger
from opsguard.locks import LocalLock, RemoteLock, owner_record
from opsguard.output import log
from opsguard.providers import capabilities
from opsguard.providers.base import Provider, RestoreRequest, SnapshotInfo

ProgressCallback = Callable[[str, float], None]


def confirm_typed(host: Host, snapshot_id: str, typed_host: str | None) -> None:
    """Given the host and what the person typed (or --yes-i-typed-the-host), return if it matches; raise Refused if not."""
    if typed_host is None:
        if not sys.stdin.isatty():
            raise Refused(f"host {host.name}: restore needs the host name typed on a terminal or "
                          f"--yes-i-typed-the-host {host.name}")
        click.echo(f"RESTORE {host.name} ({host.address}) from snapshot {snapshot_id}: the disk is REPLACED; "
                   "everything written since the snapshot is lost.", err=True)
        typed_host = click.prompt(f"Type the host name ({host.name}) to restore", default="", show_default=False, err=True)
    if typed_host.strip() != host.name:
        raise Refused(f"host {host.name}: typed {typed_host.strip()!r}, not {host.name!r}")


def check_snapshot_for_host(host: Host, instance: str | int, snapshot: SnapshotInfo | None, snapshot_id: str,
                            foreign: bool) -> None:
    """Given the host, the provider's description of the snapshot (None if unknown) and --foreign-snapshot, return if it
    may be restored onto this host; raise Refused if not.

    SAFETY: Vultr restores any snapshot of the account onto any instance, and a snapshot does not say
    which machine it came from. A wrong id pasted here would put another server's disk on this host,
    so only snapshots opsguard tagged for this host and instance pass without --foreign-snapshot.
    """
    if snapshot is None:
        found = "is not this VM's current snapshot" if capabilities(host.provider).single_snapshot_slot else "does not exist"
        raise Refused(f"host {host.name}: snapshot {snapshot_id} {found} at {host.provider}")
    if not capabilities(host.provider).tagged_snapshots:
        return
    if snapshot.status != "complete" or not snapshot.size:
        raise Refused(f"host {host.name}: snapshot {snapshot_id} is {snapshot.status!r} (size {snapshot.size}), not a complete "
                      "snapshot")
    tag = f"opsguard:{host.name}:{instance}:"
    if tag not in (snapshot.description or "") and not foreign:
        raise Refused(
            f"host {host.name}: snapshot {snapshot_id} ({snapshot.description!r}) was not taken by opsguard of this host "
            f"(no {tag} tag); if you are sure it is this server's, pass --foreign-snapshot"
        )


def _snapshot_to_restore(host: Host, provider: Provider, instance: str | int, snapshot_id: str) -> SnapshotInfo | None:
    if capabilities(host.provider).single_snapshot_slot:
        # The VM's one snapshot: one read answers both "which is it" and "is it the one asked for".
        current = provider.current_snapshot(instance)
        if current is None or current.snapshot_id != str(snapshot_id):
            found = current.snapshot_id if current else "none"
            raise Refused(f"host {host.name}: {host.provider}'s current snapshot is {found}, not {snapshot_id}")
        return current
    return provider.snapshot_details(instance, snapshot_id)


def restore_snapshot(inventory: Inventory, host: Host, snapshot_id: str, *, typed_host: str | None,
                     foreign_snapshot: bool = False, ssh: bool = True, wait: bool = True,
                     on_progress: ProgressCallback | None = None) -> str:
    """Given a host and a snapshot id, restore it after every check; return "completed" or "requested" (with wait=False).

    Raise Refused (nothing started) if a check fails or another run holds the host's lock, Failed if the
    provider says the restore failed, OutcomeUnknown if it cannot be confirmed.
    """
    from opsguard.guard import _provider, host_connector
    from opsguard.hostconnection import HostConnection

    instance = host.require_instance()
    settings = inventory.settings
    provider = _provider(host)
    ledger = Ledger(settings.state_dir)
    run_id = new_run_id()
    owner = owner_record(run_id, f"restore {snapshot_id}")
    ledger.append(events.RUN_STARTED, run_id=run_id, host=host.name, provider=host.provider, instance=instance,
                  reason=f"restore snapshot {snapshot_id}", command="restore", user=owner["user"], machine=owner["machine"])
    outcome, error_text = events.REFUSED, None
    try:
        with ExitStack() as stack:
            try:
                facts = provider.instance_facts(instance)
                matching = check_identity(host, facts, resolve_address)
                if facts.locked:
                    raise Refused(f"host {host.name}: instance is locked by another provider action")
                snapshot = _snapshot_to_restore(host, provider, instance, snapshot_id)
            except ProviderError as error:
                raise explain_provider_error(host, "checking before restore", error) from error
            check_snapshot_for_host(host, instance, snapshot, snapshot_id, foreign_snapshot)
            confirm_typed(host, snapshot_id, typed_host)
            lock = LocalLock(settings.state_dir, host.name)
            lock.acquire(owner)
            stack.callback(lock.release)
            if ssh:
                # Another machine's change must not run while the disk is replaced under it.
                connection = HostConnection(host, settings, host_connector())
                stack.callback(connection.close)
                connection.require_peer(matching)
                remote = RemoteLock(connection, host.name, host.remote_lock)
                remote.acquire(owner)
                stack.callback(_release_quietly, remote)
            else:
                log(f"{host.name}: --no-ssh: the host's remote lock is not taken; make sure no change runs on it")
            # SAFETY: the intent is durable BEFORE the request: if it cannot be written, nothing is requested.
            ledger.append(events.STEP, run_id=run_id, host=host.name, step="restore", phase="started",
                          command=f"restore snapshot {snapshot_id}")
            # From here on the provider may be replacing the disk: anything that goes wrong (an error
            # answer, Ctrl-C, a lost connection, a ledger that can no longer be written) leaves the outcome
            # unknown, never "refused".
            outcome = events.UNKNOWN
            try:
                started = provider.restore_snapshot(instance, snapshot_id)
            except ProviderError as error:
                raise explain_provider_error(host, "requesting the restore", error) from error
            try:
                ledger.append(events.STEP, run_id=run_id, host=host.name, step="restore", phase="requested",
                              result="requested", command=f"restore snapshot {snapshot_id}",
                              restore_id=started.restore_id, state=started.state)
            except LedgerWriteError as error:
                raise OutcomeUnknown(f"host {host.name}: the restore of snapshot {snapshot_id} was requested (restore "
                                     f"{started.restore_id}), the disk is being replaced, but {error}") from None
            log(f"{host.name}: restore of snapshot {snapshot_id} requested ({started.state})")
            if not wait:
                log(f"{host.name}: not waiting (--no-wait): until it is confirmed, the protection of the last change's "
                    "rollback point stays")
                return "requested"
            _wait_for_restore(host, provider, started, settings.snapshot_timeout, on_progress)
            outcome = events.OK
            ledger.append(events.STEP, run_id=run_id, host=host.name, step="restore", phase="ended", result=events.OK,
                          command=f"restore snapshot {snapshot_id}", restore_id=started.restore_id, state="completed")
            log(f"{host.name}: restore of snapshot {snapshot_id} completed")
            return "completed"
    except Failed as error:
        outcome, error_text = events.FAILED, str(error)
        raise
    except BaseException as error:
        error_text = str(error)
        raise
    finally:
        ledger.append(events.RUN_ENDED, run_id=run_id, host=host.name, outcome=outcome, error=error_text, failed_step=None)


def _release_quietly(lock: RemoteLock) -> None:
    # After a restore the host rebooted onto the old disk: the lock dir (tmpfs) is usually gone already.
    with suppress(Exception):
        lock.release()


def _wait_for_restore(host: Host, provider: Provider, started: RestoreRequest, timeout: float,
                      on_progress: ProgressCallback | None, sleep: Callable[[float], None] = time.sleep) -> None:
    """Given a requested restore, poll until the provider confirms it; raise Failed or OutcomeUnknown if it does not."""
    tracked = capabilities(host.provider).restore_status
    floor = max(float(getattr(provider, "min_poll_gap", 1.0)), 0.05)
    begun = time.monotonic()
    seen_busy = False
    state = started.state
    while True:
        elapsed = time.monotonic() - begun
        try:
            progress = provider.poll_restore(started)
            state = f"{progress.state} ({progress.detail})" if progress.detail else progress.state
            seen_busy = seen_busy or progress.busy
            if progress.failed:
                raise Failed(f"host {host.name}: the provider says the restore failed ({state}); the disk may be "
                             "half-restored: check the provider console")
            # Without a restore status, "ready" proves completion only after the restore was seen running.
            if progress.finished and (tracked or seen_busy):
                return
        except ProviderUnreachable as error:
            state = f"API unreachable ({error.status or 'no answer'})"
        except ProviderError as error:
            raise OutcomeUnknown(f"host {host.name}: following the restore: {error}") from error
        if on_progress:
            on_progress(state, elapsed)
        if elapsed >= timeout:
            never = "" if seen_busy or tracked else "; the provider never showed it running"
            raise OutcomeUnknown(f"host {host.name}: the restore was not confirmed within {format_duration(timeout)} "
                                 f"(last state {state!r}{never}); check the provider console")
        sleep(min(max(floor, min(15.0, 0.05 * elapsed)), max(0.0, timeout - elapsed)))
