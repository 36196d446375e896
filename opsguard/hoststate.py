"""opsguard's own record on each host of the last change: ``<remote_state>/last-change.json``.

Why on the host: the ledger lives on the machine that ran the change. A Hostinger VM keeps ONE
snapshot; if a change from an operator's laptop failed, a later run from another machine (or a
cron job with another state dir) must still refuse to overwrite that rollback point. The record is
written "in-progress" once the snapshot is verified and rewritten with the outcome at the end, so a
run that died or lost the host mid-change leaves "in-progress" behind — which counts as unknown.
A restore from the snapshot brings back the disk from before the record was written, which
clears it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Protocol

RECORD_FILE = "last-change.json"
UNSETTLED = ("failed", "unknown", "in-progress")


class _Runs(Protocol):
    def run(self, command: str, *, timeout: float) -> Any: ...


def read_change_record(connection: _Runs, state_dir: str) -> dict[str, Any] | None:
    """Given a connection and the host's remote_state dir, return the last change record, or None if there is none."""
    path = shlex.quote(f"{state_dir}/{RECORD_FILE}")
    result = connection.run(f"cat -- {path} 2>/dev/null || true", timeout=30)
    try:
        record = json.loads(result.stdout.strip() or "null")
    except json.JSONDecodeError:
        # Unreadable: treat as unsettled; a torn write is exactly the case to be careful about.
        return {"outcome": "unknown", "run_id": "?", "note": "unreadable record"}
    return record if isinstance(record, dict) else None


def write_change_record(connection: _Runs, state_dir: str, record: dict[str, Any]) -> None:
    """Given a connection, the remote_state dir and a record, replace the host's record atomically (temp + mv)."""
    directory = shlex.quote(state_dir)
    final = shlex.quote(f"{state_dir}/{RECORD_FILE}")
    temporary = shlex.quote(f"{state_dir}/{RECORD_FILE}.tmp")
    payload = shlex.quote(json.dumps(record, sort_keys=True))
    command = f"umask 077; mkdir -p -- {directory} && printf '%s' {payload} > {temporary} && mv -f -- {temporary} {final}"
    connection.run(command, timeout=30)
