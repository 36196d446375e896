"""Host locks: a local flock in the state dir and a remote ``mkdir`` lock dir on the host.

Both must be held for a change: the local one stops two runs on this machine, the remote one
stops two operators on different machines. ``mkdir`` is atomic on every POSIX filesystem, and the
lock dir holds an ``owner`` file (who, when, run id) so a refusal can say who holds it, a
``heartbeat`` the running opsguard refreshes (so any machine can tell a live holder from a stale
one), and ``step.pid``, the process group of the step running under the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import posixpath
import pwd
import shlex
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
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
        "machine_id": machine_id(),
        "pid": os.getpid(),
        "since": utc_now_text(),
        "reason": reason,
    }


def machine_id() -> str:
    """Return this machine's id (/etc/machine-id; else this boot's id), "" if neither: two machines may share a hostname."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return ""


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
            raise LockHeld(f"host {self.host}: locked by {describe_owner(holder)} on this machine") from None
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


# The running opsguard touches <lock>/heartbeat this often; a lock whose heartbeat is older than
# HEARTBEAT_STALE has no live owner on any machine (unless a step it started still runs: see step.pid).
HEARTBEAT_EVERY = 15.0
HEARTBEAT_STALE = 90.0
_REMOTE_TIMEOUT = 30.0


@dataclass(frozen=True)
class LockState:
    """What the host says about its remote lock: who holds it, how fresh its heartbeat is, whether a step runs."""

    owner: dict[str, Any]  # {} when the dir exists without a readable owner file
    heartbeat_age: float | None  # seconds, measured on the host's clock; None without a heartbeat file
    step_running: int | None  # the process group of a step that still runs under the lock

    @property
    def alive(self) -> bool:
        """Return whether the holder shows signs of life: a fresh heartbeat or a step still running."""
        fresh = self.heartbeat_age is not None and self.heartbeat_age < HEARTBEAT_STALE
        return fresh or self.step_running is not None

    def describe(self) -> str:
        """Return 'run X by user@machine (pid N) since T; heartbeat 5s ago; step still running (group G)'."""
        parts = [describe_owner(self.owner)]
        if self.heartbeat_age is None:
            parts.append("no heartbeat")
        else:
            parts.append(f"heartbeat {_age_text(self.heartbeat_age)} ago")
        if self.step_running is not None:
            parts.append(f"a step it started still runs (process group {self.step_running})")
        return "; ".join(parts)


class RemoteLock:
    """A lock dir on the host, created with ``mkdir`` (atomic), holding ``owner``, ``heartbeat`` and ``step.pid``.

    SAFETY: every command here writes only inside the lock dir (and creates its parent), with literal
    paths, so the tests' oracle can tell opsguard's bookkeeping from a change. Release and break are
    compare-and-delete by run id, and neither removes a lock while a step started under it still runs.
    """

    def __init__(self, connection: _Runs, host: str, lock_dir: str) -> None:
        self.connection = connection
        self.host = host
        self.lock_dir = lock_dir.rstrip("/") or "/"
        self._run_id: str | None = None
        self._owner: dict[str, Any] | None = None

    # -- paths ----------------------------------------------------------------------------------------
    def _path(self, name: str = "") -> str:
        return shlex.quote(f"{self.lock_dir}/{name}" if name else self.lock_dir)

    @property
    def step_pid_file(self) -> str:
        """The file a mutating step writes its process group into (see transport.render_command)."""
        return f"{self.lock_dir}/step.pid"

    @property
    def held(self) -> bool:
        """Return whether this object holds the lock."""
        return self._run_id is not None

    # -- taking and keeping -----------------------------------------------------------------------------
    def acquire(self, owner: dict[str, Any]) -> None:
        """Given our owner record, create the lock dir; raise LockHeld naming the holder if another run has it.

        Raise OutcomeUnknown if the host's answer cannot be understood (the lock may or may not be ours).
        """
        parent = shlex.quote(posixpath.dirname(self.lock_dir) or "/")
        payload = shlex.quote(json.dumps(owner))
        # umask 077: the owner file says who runs changes; no reason for others to read it.
        command = (
            f"umask 077; mkdir -p -- {parent} && if mkdir -- {self._path()} 2>/dev/null; then "
            f"printf '%s' {payload} > {self._path('owner')} && touch -- {self._path('heartbeat')} && echo ACQUIRED; "
            f"else echo HELD; {self._state_script()}; fi"
        )
        result = self.connection.run(command, timeout=_REMOTE_TIMEOUT)
        first, _, rest = result.stdout.partition("\n")
        if result.exit_status == 0 and first.strip() == "ACQUIRED":
            self._run_id = owner["run_id"]
            self._owner = owner
            return
        if first.strip() == "HELD":
            state = _parse_state(rest)
            if self._owner is not None and state.owner.get("run_id") == self._owner["run_id"]:
                self._run_id = self._owner["run_id"]
                return  # still ours (re-taken after a reconnect that did not lose it)
            hint = (f"if that run is certainly over: opsguard unlock {self.host} --reason TEXT"
                    if not state.alive else "wait for it to finish")
            raise LockHeld(f"host {self.host}: remote lock {self.lock_dir} is held by {state.describe()}; {hint}")
        raise OutcomeUnknown(
            f"host {self.host}: could not take the remote lock {self.lock_dir}: "
            f"{result.stderr.strip() or result.stdout.strip() or f'exit {result.exit_status}'}"
        )

    def reacquire(self) -> None:
        """Take the lock again with the same owner (after a reboot emptied /run/lock); raise LockHeld if another run took it."""
        if self._owner is not None:
            self.acquire(self._owner)

    def beat(self) -> None:
        """Refresh the heartbeat, if the lock is still ours (so another machine can see this run is alive)."""
        if self._run_id is None:
            return
        mine = shlex.quote(_run_id_text(self._run_id))
        self.connection.run(
            f"grep -qF -- {mine} {self._path('owner')} 2>/dev/null && touch -- {self._path('heartbeat')}",
            timeout=_REMOTE_TIMEOUT,
        )

    # -- a step that may still run ----------------------------------------------------------------------
    def stop_step(self, grace: float = 10.0) -> int | None:
        """Stop the process group of the last step (TERM, then KILL) and confirm; return its group if it still runs.

        Called after a step timed out: the channel is closed but the command may go on on the host.
        """
        pid_file = self._path("step.pid")
        rounds = max(1, int(grace / 0.5))
        command = "\n".join(
            [
                f'pg=$(cat -- {pid_file} 2>/dev/null); if [ -z "$pg" ]; then echo ENDED; exit 0; fi',
                'if ! pgrep -g "$pg" >/dev/null 2>&1; then echo ENDED; exit 0; fi',
                'kill -TERM -- "-$pg" 2>/dev/null',
                f'i=0; while [ "$i" -lt {rounds} ]; do pgrep -g "$pg" >/dev/null 2>&1 || {{ echo STOPPED; exit 0; }}; '
                "sleep 0.5; i=$((i + 1)); done",
                'kill -KILL -- "-$pg" 2>/dev/null; sleep 1',
                'if pgrep -g "$pg" >/dev/null 2>&1; then echo "RUNNING $pg"; else echo STOPPED; fi',
            ]
        )
        result = self.connection.run(command, timeout=grace + 30)
        words = result.stdout.split()
        if words[:1] == ["RUNNING"] and len(words) > 1 and words[1].isdigit():
            return int(words[1])
        if words[:1] in (["ENDED"], ["STOPPED"]):
            return None
        raise OutcomeUnknown(f"host {self.host}: could not tell whether the timed-out step still runs: "
                             f"{result.stderr.strip() or result.stdout.strip()}")

    # -- letting go -------------------------------------------------------------------------------------
    def release(self) -> int | None:
        """Remove the lock dir if it is still ours; return the process group of a step that still runs (lock KEPT).

        SAFETY: while a step this run started may still run on the host, the lock stays: a second
        change must not snapshot and start while the first command goes on. Idempotent.
        """
        if self._run_id is None:
            return None
        try:
            outcome = self._delete_if(self._run_id, keep_while_step_runs=True)
        finally:
            self._run_id = None
        words = outcome.split()
        return int(words[1]) if words[:1] == ["STILL_RUNNING"] and len(words) > 1 and words[1].isdigit() else None

    def break_lock(self, expected_run_id: str, *, force: bool = False) -> str:
        """Given the run id the operator saw and agreed to break, remove the lock only if that run still holds it.

        Return "RELEASED", "NOT_OURS" (someone else holds it now: nothing removed), "FREE" or, unless
        ``force``, "STILL_RUNNING <group>" (a step it started still runs: nothing removed).
        """
        return self._delete_if(expected_run_id, keep_while_step_runs=not force)

    def _delete_if(self, run_id: str, *, keep_while_step_runs: bool) -> str:
        mine = shlex.quote(_run_id_text(run_id))
        still_running = (
            f'pg=$(cat -- {self._path("step.pid")} 2>/dev/null); '
            f'if [ -n "$pg" ] && pgrep -g "$pg" >/dev/null 2>&1; then echo "STILL_RUNNING $pg"; exit 0; fi; '
            if keep_while_step_runs
            else ""
        )
        # A lock dir without an owner file (a run died between mkdir and writing it) is broken by run id "".
        owned = (f"grep -qF -- {mine} {self._path('owner')} 2>/dev/null" if run_id
                 else f"[ ! -e {self._path('owner')} ]")
        command = (
            f"if [ ! -d {self._path()} ]; then echo FREE; exit 0; fi; {still_running}"
            f"if {owned}; then "
            f"rm -f -- {self._path('owner')} {self._path('heartbeat')} {self._path('step.pid')} && rmdir -- {self._path()} "
            "&& echo RELEASED; else echo NOT_OURS; fi"
        )
        result = self.connection.run(command, timeout=_REMOTE_TIMEOUT)
        answer = result.stdout.strip().splitlines()[-1:] or [""]
        return answer[0]

    # -- looking --------------------------------------------------------------------------------------
    def state(self) -> LockState | None:
        """Return what the host says about the lock (owner, heartbeat age, a running step), or None if it is free."""
        result = self.connection.run(
            f"if [ -d {self._path()} ]; then echo HELD; {self._state_script()}; else echo FREE; fi", timeout=_REMOTE_TIMEOUT
        )
        first, _, rest = result.stdout.partition("\n")
        if first.strip() != "HELD":
            return None
        return _parse_state(rest)

    def holder(self) -> dict[str, Any] | None:
        """Return the remote lock's owner record, {} if the dir exists without one, None if unlocked."""
        state = self.state()
        return None if state is None else state.owner

    def _state_script(self) -> str:
        # Read-only: the owner record, the heartbeat's time and the host's clock (its age is computed on the
        # host's own clock: no skew between machines), and whether the process group in step.pid still runs.
        return (
            f"cat -- {self._path('owner')} 2>/dev/null; echo; "
            f'echo "heartbeat=$(stat -c %Y -- {self._path("heartbeat")} 2>/dev/null)"; echo "host_now=$(date +%s)"; '
            f'pg=$(cat -- {self._path("step.pid")} 2>/dev/null); '
            'if [ -n "$pg" ] && pgrep -g "$pg" >/dev/null 2>&1; then echo "step_running=$pg"; fi'
        )


def _run_id_text(run_id: str) -> str:
    return f'"run_id": {json.dumps(run_id)}'


def _parse_state(text: str) -> LockState:
    owner: dict[str, Any] = {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            owner = _parse_json(line) or {}
        elif "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    heartbeat, now, step = values.get("heartbeat", ""), values.get("host_now", ""), values.get("step_running", "")
    age = float(int(now) - int(heartbeat)) if heartbeat.isdigit() and now.isdigit() else None
    return LockState(owner, age, int(step) if step.isdigit() else None)


def _age_text(seconds: float) -> str:
    from opsguard.durations import format_duration

    return format_duration(max(0.0, seconds))


class Heartbeat:
    """While the guard holds the remote lock, refresh its heartbeat from a background thread.

    Errors are ignored (the host may be rebooting): a missed beat only makes the lock look older.
    """

    def __init__(self, lock: RemoteLock, every: float = HEARTBEAT_EVERY) -> None:
        self.lock = lock
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"opsguard-heartbeat-{lock.host}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + _REMOTE_TIMEOUT)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with suppress(Exception):
                self.lock.beat()


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
