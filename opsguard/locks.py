"""Host locks: a local flock in the state dir and a remote ``mkdir`` lock dir on the host.

Both must be held for a change: the local one stops two runs on this machine, the remote one
stops two operators on different machines. ``mkdir`` is atomic on every POSIX filesystem, and the
lock dir holds an ``owner`` file (who, when, run id) so a refusal can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shlex
import socket
from pathlib import Path
from typing import Any, Protocol

from opsguard.errors import ConfigError, LockHeld, OutcomeUnknown
from opsguard.ledger import utc_now_text, write_all


def owner_record(run_id: str, reason: str) -> dict[str, Any]:
    """Given a run id and reason, return the who/when/where record stored in a lock and the ledger.

    SAFETY: the user is the OS account running opsguard (its uid's passwd entry, else the uid),
    never $USER or $LOGNAME, which anyone can set to another name.
    """
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return {
        "run_id": run_id,
        "user": user,
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "since": utc_now_text(),
        "reason": reason,
    }


def describe_owner(owner: dict[str, Any] | None) -> str:
    """Given a lock's owner record (or None), return 'run X by user@machine (pid N) since T'."""
    if not owner:
        return "an unknown holder"
    return (
        f"run {owner.get('run_id', '?')} by {owner.get('user', '?')}@{owner.get('machine', '?')} "
        f"(pid {owner.get('pid', '?')}) since {owner.get('since', '?')}"
    )


class LocalLock:
    """An exclusive flock on ``<state_dir>/locks/<host>.lock``; released by the kernel if we die."""

    def __init__(self, state_dir: Path, host: str) -> None:
        self.path = Path(state_dir) / "locks" / f"{host}.lock"
        self.host = host
        self._descriptor: int | None = None

    def acquire(self, owner: dict[str, Any]) -> None:
        """Given our owner record, take the lock; raise LockHeld naming the holder if it is taken.

        Raise ConfigError naming the path if the lock file cannot be created or written (a
        read-only state dir, a file where a directory should be, a full disk).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise self._setup_error("cannot create", error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_json(self.path)
            os.close(descriptor)
            raise LockHeld(f"host {self.host}: locked by {describe_owner(holder)}; refused, nothing was changed") from None
        except OSError as error:
            os.close(descriptor)
            raise self._setup_error("cannot lock", error) from None
        try:
            os.ftruncate(descriptor, 0)
            write_all(descriptor, json.dumps(owner).encode())
            os.fsync(descriptor)
        except OSError as error:
            os.close(descriptor)  # releases the flock: a lock we cannot describe is not taken
            raise self._setup_error("cannot write the owner into", error) from None
        self._descriptor = descriptor

    def _setup_error(self, what: str, error: OSError) -> ConfigError:
        """Given what failed and the OS error, return the one-line configuration error naming the lock path."""
        return ConfigError(f"host {self.host}: {what} the local lock {self.path}: {error.strerror or error}")

    def release(self) -> None:
        """Release the lock if held (idempotent)."""
        if self._descriptor is None:
            return
        try:
            os.ftruncate(self._descriptor, 0)
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    def holder(self) -> dict[str, Any] | None:
        """Return the owner record of a live holder, or None when nobody holds the lock."""
        if not self.path.exists():
            return None
        descriptor = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_json(self.path) or {}
        else:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            return None
        finally:
            os.close(descriptor)


class _Runs(Protocol):
    def run(self, command: str, *, timeout: float) -> Any: ...


class RemoteLock:
    """A lock dir on the host, created with ``mkdir`` (atomic) and holding an ``owner`` file."""

    def __init__(self, connection: _Runs, host: str, lock_dir: str) -> None:
        self.connection = connection
        self.host = host
        self.lock_dir = lock_dir
        self._run_id: str | None = None
        self._owner: dict[str, Any] | None = None

    def acquire(self, owner: dict[str, Any]) -> None:
        """Given our owner record, create the lock dir; raise LockHeld naming the holder if it exists."""
        directory = shlex.quote(self.lock_dir)
        owner_file = shlex.quote(self.lock_dir + "/owner")
        payload = shlex.quote(json.dumps(owner))
        # umask 077: the owner file says who runs changes; no reason for others to read it.
        command = (
            f"umask 077; mkdir -p -- \"$(dirname -- {directory})\" && "
            f"if mkdir -- {directory} 2>/dev/null; then printf '%s' {payload} > {owner_file} && echo ACQUIRED; "
            f"else echo HELD; cat -- {owner_file} 2>/dev/null; fi"
        )
        result = self.connection.run(command, timeout=30)
        first, _, rest = result.stdout.partition("\n")
        if result.exit_status == 0 and first.strip() == "ACQUIRED":
            self._run_id = owner["run_id"]
            self._owner = owner
            return
        if first.strip() == "HELD":
            holder = _parse_json(rest)
            if holder and self._run_id is not None and holder.get("run_id") == self._run_id:
                return  # still ours (re-taken after a reconnect that did not lose it)
            raise LockHeld(
                f"host {self.host}: remote lock {self.lock_dir} is held by {describe_owner(holder)}; "
                f"refused, nothing was changed (if it is stale: opsguard unlock {self.host})"
            )
        raise OutcomeUnknown(f"host {self.host}: could not take the remote lock {self.lock_dir}: {result.stderr.strip() or result.stdout.strip()}")

    def reacquire(self) -> None:
        """Take the lock again with the same owner (after a reboot emptied /run/lock); raise LockHeld if another run took it."""
        if self._owner is not None:
            self.acquire(self._owner)

    def release(self) -> None:
        """Remove the lock dir if it is still ours (checks the run id first); idempotent."""
        if self._run_id is None:
            return
        directory = shlex.quote(self.lock_dir)
        owner_file = shlex.quote(self.lock_dir + "/owner")
        run_id = shlex.quote(f'"run_id": "{self._run_id}"')
        command = f"grep -qF -- {run_id} {owner_file} 2>/dev/null && rm -f -- {owner_file} && rmdir -- {directory}"
        try:
            self.connection.run(command, timeout=30)
        finally:
            self._run_id = None

    def holder(self) -> dict[str, Any] | None:
        """Return the remote lock's owner record, {} if the dir exists without one, None if unlocked."""
        directory = shlex.quote(self.lock_dir)
        owner_file = shlex.quote(self.lock_dir + "/owner")
        result = self.connection.run(f"if [ -d {directory} ]; then echo HELD; cat -- {owner_file} 2>/dev/null; fi", timeout=30)
        first, _, rest = result.stdout.partition("\n")
        if first.strip() != "HELD":
            return None
        return _parse_json(rest) or {}

    def break_lock(self) -> None:
        """Remove the lock dir whoever holds it (used by `opsguard unlock` after confirmation)."""
        directory = shlex.quote(self.lock_dir)
        owner_file = shlex.quote(self.lock_dir + "/owner")
        self.connection.run(f"rm -f -- {owner_file}; rmdir -- {directory}", timeout=30)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return _parse_json(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def _parse_json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text.strip() or "null")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
