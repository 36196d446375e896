"""The append-only audit ledger: one JSON line per event in ``<state_dir>/ledger.jsonl``.

Every record is fsync'ed before the next step proceeds, so after a crash the ledger still says
which snapshot was taken and how far the change got. Only values opsguard built itself are
written here — never a token, never a request header.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.jsonl"

# Event names, in the order a run writes them.
RUN_STARTED = "run-started"
SNAPSHOT_REQUESTED = "snapshot-requested"
SNAPSHOT_VERIFIED = "snapshot-verified"
SNAPSHOT_FAILED = "snapshot-failed"
STEP = "step"
RUN_ENDED = "run-ended"

# How a run ended.
OK = "ok"
FAILED = "failed"
UNKNOWN = "unknown"
REFUSED = "refused"
ABORTED = "aborted"  # the guarded block ended before any mutating step ran: nothing changed


def utc_now_text() -> str:
    """Return the current UTC time as ISO-8601 with a Z suffix and milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LastChange:
    """What the ledger says about the most recent run on a host that got a verified snapshot."""

    run_id: str
    outcome: str  # ok | failed | unknown (no run-ended record counts as unknown)
    snapshot_id: str | None
    failed_step: str | None
    time: str


class Ledger:
    """The ledger file of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LEDGER_FILE

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Given an event name and its fields, append one record durably and return it.

        Raise OSError if the record cannot be written: a change must not run unrecorded.
        """
        record: dict[str, Any] = {"time": utc_now_text(), "epoch": round(time.time(), 6), "event": event}
        record.update(fields)
        line = json.dumps(record, sort_keys=True, default=str, separators=(",", ":")) + "\n"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return record

    def records(self, host: str | None = None) -> list[dict[str, Any]]:
        """Given an optional host name, return the ledger's records (that host's only), oldest first.

        A torn last line (a crash mid-write) is skipped, never fatal.
        """
        return [record for record in self._read() if host is None or record.get("host") == host]

    def _read(self) -> Iterator[dict[str, Any]]:
        try:
            handle = self.path.open("r", encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record

    def last_change(self, host: str) -> LastChange | None:
        """Given a host, return how its most recent snapshot-verified run ended, or None if there is none.

        A run with a verified snapshot but no run-ended record (killed, power loss) counts as unknown.
        A successful `opsguard restore` after it clears it: the host is back on a snapshot.
        """
        verified: dict[str, dict[str, Any]] = {}
        ended: dict[str, dict[str, Any]] = {}
        restores: set[str] = set()
        order: list[str] = []  # verified runs and successful restores, in ledger order
        for record in self.records(host):
            run_id = record.get("run_id")
            if not isinstance(run_id, str):
                continue
            if record.get("event") == SNAPSHOT_VERIFIED:
                verified[run_id] = record
                order.append(run_id)
            elif record.get("event") == RUN_STARTED and record.get("command") == "restore":
                restores.add(run_id)
            elif record.get("event") == RUN_ENDED:
                ended[run_id] = record
                if run_id in restores and record.get("outcome") == OK:
                    order.append(run_id)
        if not order or order[-1] in restores:
            # Nothing changed yet, or the host was last restored from a snapshot: no failed change to protect.
            return None
        run_id = order[-1]
        end = ended.get(run_id)
        receipt = verified[run_id].get("receipt") or {}
        return LastChange(
            run_id=run_id,
            outcome=str(end.get("outcome", UNKNOWN)) if end else UNKNOWN,
            snapshot_id=receipt.get("snapshot_id"),
            failed_step=end.get("failed_step") if end else None,
            time=str((end or verified[run_id]).get("time", "")),
        )
