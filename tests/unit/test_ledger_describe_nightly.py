"""The ledger view describes the records audit and health leave (what the next run starts from)."""

from __future__ import annotations

from opsguard.commands.ledger import describe


def test_describe_audit_record_names_state_count_and_span() -> None:
    record = {"event": "audit", "state": "failed", "unguarded": 2, "since": "2026-11-30T03:00:00Z", "until": "2026-12-01T03:00:00Z"}
    assert describe(record) == "audit: failed, 2 change(s) without a snapshot from 2026-11-30T03:00:00Z to 2026-12-01T03:00:00Z"


def test_describe_health_record_names_state() -> None:
    assert describe({"event": "health", "state": "warning"}) == "health: warning"
