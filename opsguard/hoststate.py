"""opsguard's own record on each host of the last change: ``<remote_state>/last-change.json``.

Why on the host: the ledger lives on the machine that ran the change. A Hostinger VM keeps ONE
snapshot; if a change from an operator's laptop failed, a later run from another machine (or a
cron job with another state dir) must still refuse to overwrite that rollback point. The record is
written "in-progress" once the snapshot is verified and rewritten with the outcome at the end, so a
run that died or lost the host mid-change leaves "in-progress" behind — which counts as unknown.
A restore from the snapshot brings back the disk from before the record was written, which
clears it.

SAFETY: a record that cannot be read is "unknown", never "none"; a record that cannot be written is
noticed (every write is read back), and on a Hostinger host the guard refuses before the snapshot
when the record cannot be kept. Every command here writes only inside ``remote_state``, with
literal paths, so the tests' oracle can tell this bookkeeping from a change.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Protocol

from opsguard.errors import OpsguardError

RECORD_FILE = "last-change.json"
UNSETTLED = ("failed", "unknown", "in-progress")
_ABSENT = "OPSGUARD_RECORD_ABSENT"
_UNREADABLE = "OPSGUARD_RECORD_UNREADABLE"
_PROBE = "opsguard-write-probe"
_TIMEOUT = 30.0


class RecordError(OpsguardError):
    """The host's change record could not be written (or read back as written). The caller decides the exit code."""


class _Runs(Protocol):
    def run(self, command: str, *, timeout: float) -> Any: ...


def unreadable_record(why: str) -> dict[str, Any]:
    """Given why the record could not be used, return the stand-in record: outcome unknown (SAFETY: never "none")."""
    return {"outcome": "unknown", "run_id": "?", "note": f"unreadable record: {why}"}


def read_change_record(connection: _Runs, state_dir: str) -> dict[str, Any] | None:
    """Given a connection and the host's remote_state dir, return the last change record, None if there is none.

    A record that exists but cannot be read or parsed comes back as outcome "unknown".
    """
    path = shlex.quote(f"{state_dir}/{RECORD_FILE}")
    result = connection.run(
        f"if [ -e {path} ]; then cat -- {path} || echo {_UNREADABLE}; else echo {_ABSENT}; fi", timeout=_TIMEOUT
    )
    text = result.stdout.strip()
    if result.exit_status == 0 and text == _ABSENT:
        return None
    if result.exit_status != 0 or _UNREADABLE in text.splitlines():
        return unreadable_record(result.stderr.strip() or "cat failed")
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        # A torn write is exactly the case to be careful about.
        return unreadable_record("not JSON")
    if not isinstance(record, dict) or not isinstance(record.get("outcome", "unknown"), str):
        return unreadable_record("not a record")
    return record


def check_record_writable(connection: _Runs, state_dir: str) -> str | None:
    """Given a connection and the host's remote_state dir, return None if opsguard can keep its record there, else why not.

    Writes a probe file, reads it back and removes it (before the snapshot, so a host that cannot
    keep the record costs nothing).
    """
    directory = shlex.quote(state_dir)
    probe = shlex.quote(f"{state_dir}/.{RECORD_FILE}.probe")
    result = connection.run(
        f"umask 077; mkdir -p -- {directory} && printf '%s' {_PROBE} > {probe} && cat -- {probe} && rm -f -- {probe}",
        timeout=_TIMEOUT,
    )
    if result.exit_status == 0 and result.stdout.strip() == _PROBE:
        return None
    return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.exit_status}, read back {result.stdout.strip()!r}"


def write_change_record(connection: _Runs, state_dir: str, record: dict[str, Any]) -> None:
    """Given a connection, the remote_state dir and a record, replace the host's record atomically (temp + mv) and read it back.

    Raise RecordError naming the path if the write fails or what the host reads back is not the record.
    """
    directory = shlex.quote(state_dir)
    final = shlex.quote(f"{state_dir}/{RECORD_FILE}")
    temporary = shlex.quote(f"{state_dir}/{RECORD_FILE}.tmp")
    text = json.dumps(record, sort_keys=True)
    command = (
        f"umask 077; mkdir -p -- {directory} && printf '%s' {shlex.quote(text)} > {temporary} "
        f"&& mv -f -- {temporary} {final} && cat -- {final}"
    )
    result = connection.run(command, timeout=_TIMEOUT)
    if result.exit_status != 0 or result.stdout.strip() != text:
        why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "what was read back differs"
        raise RecordError(f"cannot write opsguard's change record {state_dir}/{RECORD_FILE} on the host: {why}")
