"""`opsguard restore`: the last resort — put a provider snapshot back onto a host.

Destructive (the disk is replaced), so: identity checked like the guard, the host's local lock
taken, the snapshot checked where the API allows, the host name typed by the person, and every
step in the ledger. No new snapshot is taken first: on Hostinger it would overwrite the very
snapshot being restored.
"""

from __future__ import annotations

import sys

import click

from opsguard import ledger as events
from opsguard.errors import ProviderError, Refused
from opsguard.guard import check_identity, explain_provider_error, new_run_id, resolve_address
from opsguard.inventory import Host, Inventory
from opsguard.ledger import Ledger
from opsguard.locks import LocalLock, owner_record
from opsguard.output import log
from opsguard.providers.base import SnapshotInfo


def confirm_typed(host: Host, snapshot_id: str, typed_host: str | None) -> None:
    """Given the host and what the person typed (or --yes-i-typed-the-host), return if it matches; raise Refused if not."""
    if typed_host is None:
        if not sys.stdin.isatty():
            raise Refused(f"host {host.name}: restore needs the host name typed on a terminal or "
                          f"--yes-i-typed-the-host {host.name}; refused, nothing was changed")
        click.echo(f"RESTORE {host.name} ({host.address}) from snapshot {snapshot_id}: the disk is REPLACED; "
                   "everything written since the snapshot is lost.", err=True)
        typed_host = click.prompt(f"Type the host name ({host.name}) to restore", default="", show_default=False, err=True)
    if typed_host.strip() != host.name:
        raise Refused(f"host {host.name}: typed {typed_host.strip()!r}, not {host.name!r}; refused, nothing was changed")


def check_snapshot_for_host(host: Host, instance: str | int, snapshot: SnapshotInfo | None, snapshot_id: str,
                            foreign: bool) -> None:
    """Given the host, the provider's description of the snapshot (None if unknown) and --foreign-snapshot, return if it
    may be restored onto this host; raise Refused if not.

    SAFETY: Vultr restores any snapshot of the account onto any instance, and a snapshot does not say
    which machine it came from. A wrong id pasted here would put another server's disk on this host,
    so only snapshots opsguard tagged for this host and instance pass without --foreign-snapshot.
    """
    if snapshot is None:
        found = "is not this VM's current snapshot" if host.provider == "hostinger" else "does not exist"
        raise Refused(f"host {host.name}: snapshot {snapshot_id} {found} at {host.provider}; refused, nothing was changed")
    if host.provider != "vultr":
        return
    if snapshot.status != "complete" or not snapshot.size:
        raise Refused(f"host {host.name}: snapshot {snapshot_id} is {snapshot.status!r} (size {snapshot.size}), not a complete "
                      "snapshot; refused, nothing was changed")
    tag = f"opsguard:{host.name}:{instance}:"
    if tag not in (snapshot.description or "") and not foreign:
        raise Refused(
            f"host {host.name}: snapshot {snapshot_id} ({snapshot.description!r}) was not taken by opsguard of this host "
            f"(no {tag} tag); if you are sure it is this server's, pass --foreign-snapshot; refused, nothing was changed"
        )


def restore_snapshot(inventory: Inventory, host: Host, snapshot_id: str, *, typed_host: str | None,
                     foreign_snapshot: bool = False) -> None:
    """Given a host and a snapshot id, start the provider restore after every check; raise Refused if one fails."""
    from opsguard.providers import provider_for

    instance = host.require_instance()
    provider = provider_for(host)
    ledger = Ledger(inventory.settings.state_dir)
    run_id = new_run_id()
    owner = owner_record(run_id, f"restore {snapshot_id}")
    lock = LocalLock(inventory.settings.state_dir, host.name)
    ledger.append(events.RUN_STARTED, run_id=run_id, host=host.name, provider=host.provider, instance=instance,
                  reason=f"restore snapshot {snapshot_id}", command="restore", user=owner["user"], machine=owner["machine"])
    outcome, error_text = events.REFUSED, None
    try:
        try:
            facts = provider.instance_facts(instance)
            check_identity(host, facts, resolve_address)
            if facts.locked:
                raise Refused(f"host {host.name}: instance is locked by another provider action; refused, nothing was changed")
            if host.provider == "hostinger":
                # The VM's one snapshot: one read answers both "which is it" and "is it the one asked for".
                current = provider.current_snapshot(instance)
                if current is None or current.snapshot_id != str(snapshot_id):
                    found = current.snapshot_id if current else "none"
                    raise Refused(f"host {host.name}: Hostinger's current snapshot is {found}, not {snapshot_id}; "
                                  "refused, nothing was changed")
                snapshot: SnapshotInfo | None = current
            else:
                snapshot = provider.snapshot_details(instance, snapshot_id)
        except ProviderError as error:
            raise explain_provider_error(host, "checking before restore", error) from error
        check_snapshot_for_host(host, instance, snapshot, snapshot_id, foreign_snapshot)
        confirm_typed(host, snapshot_id, typed_host)
        lock.acquire(owner)
        # From here on the provider may have started replacing the disk: anything that goes wrong
        # (an error answer, Ctrl-C, a lost connection) leaves the outcome unknown, never "refused".
        outcome = events.UNKNOWN
        try:
            started = provider.restore_snapshot(instance, snapshot_id)
        except ProviderError as error:
            raise explain_provider_error(host, "requesting the restore", error) from error
        outcome = events.OK
        ledger.append(events.STEP, run_id=run_id, host=host.name, step="restore", phase="ended", result=events.OK,
                      command=f"restore snapshot {snapshot_id}", restore_id=started.restore_id, state=started.state)
        log(f"{host.name}: restore of snapshot {snapshot_id} started ({started.state}); the instance stays locked "
            "until the provider finishes")
    except BaseException as error:
        error_text = str(error)
        raise
    finally:
        lock.release()
        ledger.append(events.RUN_ENDED, run_id=run_id, host=host.name, outcome=outcome, error=error_text, failed_step=None)
