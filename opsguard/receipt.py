"""The snapshot receipt: proof that a snapshot of one host was created and verified complete.

SAFETY: a receipt authorises a change only if the guard ISSUED it, for this host, instance and run.
Receipts are immutable, and a session checks the one it holds by identity against the guard's
registry of issued receipts — never by its fields — so a receipt built by hand (or copied field by
field from a real one) authorises nothing.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, eq=False)  # eq=False: equality and hashing by identity, never by fields
class SnapshotReceipt:
    """Proof that a snapshot of ``host`` (``instance`` at ``provider``) was created and verified in run ``run_id``."""

    host: str
    provider: str
    instance: str | int
    snapshot_id: str
    tag: str
    run_id: str
    requested_at: datetime
    verified_at: datetime
    created_at: datetime | None = None
    expires_at: datetime | None = None
    action_id: int | None = None
    previous_snapshot_id: str | None = None
    recovered: bool = False
    checks: tuple[str, ...] = ()
    verified_monotonic: float = field(default=0.0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the receipt as JSON-ready data (`opsguard snapshot --json`, the ledger)."""
        data = asdict(self)
        data.pop("verified_monotonic")
        for key in ("requested_at", "verified_at", "created_at", "expires_at"):
            value = data[key]
            data[key] = value.isoformat().replace("+00:00", "Z") if value else None
        data["checks"] = list(self.checks)
        return data

    def age(self) -> float:
        """Return the seconds since this receipt was verified (monotonic clock)."""
        return time.monotonic() - self.verified_monotonic


_ISSUED: weakref.WeakSet[SnapshotReceipt] = weakref.WeakSet()


def _issue_receipt(**fields: Any) -> SnapshotReceipt:
    """Given a verified snapshot's fields, return a new receipt registered as issued.

    Only the guard's snapshot step calls this, after the provider verified the snapshot.
    """
    receipt = SnapshotReceipt(**fields, verified_monotonic=time.monotonic())
    _ISSUED.add(receipt)
    return receipt


def was_issued(receipt: object) -> bool:
    """Given any object, return whether it is a receipt the guard issued (by identity)."""
    return isinstance(receipt, SnapshotReceipt) and receipt in _ISSUED
