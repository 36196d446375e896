"""`opsguard unlock HOST --reason TEXT`: break a stale remote lock — only a dead owner's, and on the record.

SAFETY: a lock whose owner still shows signs of life is not stale: an owner on this machine whose
process is alive (exact), an owner on another machine whose heartbeat is fresh (the running opsguard
refreshes it; stale after locks.HEARTBEAT_STALE), or a step started under the lock that still runs
on the host. Those refuse unless --force. Breaking is
compare-and-delete by the run id the operator saw and confirmed: if another run took the lock in
the meantime, nothing is removed. Who broke which lock, when and why goes to the ledger.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import click

from opsguard.confirm import confirm_change
from opsguard.errors import LockHeld, OutcomeUnknown
from opsguard.inventory import Host, Inventory

if TYPE_CHECKING:
    from opsguard.cli import AppContext


def _owner_is_here(owner: dict[str, object]) -> bool:
    """Given a lock's owner record, return whether it was written on THIS machine (same machine id, not only hostname)."""
    from opsguard.locks import machine_id

    mine = machine_id()
    return bool(mine) and owner.get("machine_id") == mine and owner.get("machine") == socket.gethostname()


def _owner_alive_here(owner: dict[str, object]) -> bool:
    """Given a lock's owner record written on this machine, return whether its process is alive."""
    pid = owner.get("pid")
    return isinstance(pid, int) and pid > 0 and os.path.isdir(f"/proc/{pid}")


@click.command()
@click.argument("host")
@click.option("--reason", required=True, help="Why the lock is stale (goes to the ledger with who and when).")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@click.option("--force", is_flag=True, help="Break it even though its owner still shows signs of life.")
@click.pass_obj
def unlock(app: AppContext, host: str, reason: str, yes: bool, force: bool) -> None:
    """Break the stale remote lock on HOST (its owner is gone); the ledger records who, when and why."""
    from opsguard.commandline import validate_command_text

    inventory = app.inventory()
    target = inventory.host(host)
    validate_command_text(reason, what="--reason")
    from opsguard.locks import LocalLock, describe_owner

    local = LocalLock(inventory.settings.state_dir, target.name).holder()
    if local is not None:
        # A live flock holder is a run in progress on this machine, not a stale lock.
        raise LockHeld(f"host {target.name}: a run on this machine is in progress: {describe_owner(local)}; not unlocking")
    _unlock_remote(inventory, target, reason, yes=yes, force=force)


def _unlock_remote(inventory: Inventory, target: Host, reason: str, *, yes: bool, force: bool) -> None:
    from opsguard import ledger as events
    from opsguard.guard import host_connector
    from opsguard.hostconnection import HostConnection
    from opsguard.ledger import Ledger
    from opsguard.locks import HEARTBEAT_STALE, RemoteLock, owner_record

    settings = inventory.settings
    connection = HostConnection(target, settings, host_connector())
    try:
        lock = RemoteLock(connection, target.name, target.remote_lock)
        state = lock.state()
        if state is None:
            click.echo(f"{target.name}: not locked ({target.remote_lock} does not exist)")
            return
        signs = []
        if _owner_is_here(state.owner):
            # Its owner ran on THIS machine (same machine id): whether its process lives says it exactly.
            if _owner_alive_here(state.owner):
                signs.append(f"its process {state.owner.get('pid')} is alive on this machine")
        elif state.heartbeat_age is not None and state.heartbeat_age < HEARTBEAT_STALE:
            signs.append(f"its heartbeat is fresh ({state.heartbeat_age:.0f}s old)")
        if state.step_running is not None:
            signs.append(f"a step it started still runs (process group {state.step_running})")
        if signs and not force:
            raise LockHeld(f"host {target.name}: remote lock {target.remote_lock} is held by {state.describe()}; its owner "
                           f"is alive ({'; '.join(signs)}): not breaking it (--force breaks it anyway)")
        run_id = str(state.owner.get("run_id", ""))
        confirm_change(
            target.name,
            [f"host {target.name}: remote lock {target.remote_lock} is held by {state.describe()}",
             "Break it only if that run is certainly not running any more."],
            assume_yes=yes,
        )
        answer = lock.break_lock(run_id, force=force)
        if answer == "FREE":
            click.echo(f"{target.name}: the lock was released meanwhile; nothing to do")
            return
        if answer != "RELEASED":
            now = lock.state()
            raise LockHeld(f"host {target.name}: the lock changed meanwhile ({answer.lower()}; now held by "
                           f"{now.describe() if now else 'nobody'}): nothing was removed")
        me = owner_record("", reason)
        Ledger(settings.state_dir).append(events.LOCK_BROKEN, host=target.name, run_id=run_id or "?",
                                          lock=target.remote_lock, holder=state.owner, force=force, reason=reason,
                                          user=me["user"], machine=me["machine"],
                                          heartbeat_age=state.heartbeat_age, step_running=state.step_running)
        click.echo(f"{target.name}: lock {target.remote_lock} of run {run_id or '?'} removed (recorded in the ledger)")
    except OSError as error:
        raise OutcomeUnknown(f"host {target.name}: unlock: {error}") from None
    finally:
        connection.close()
