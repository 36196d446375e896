"""backup-check reports: the version-2 JSON (version 1 plus the shared report fields), the problem lines, the table
and the ping summary."""

from __future__ import annotations

import json

import jsonschema
import pytest

from opsguard.backups import (
    REPORT_SCHEMA,
    BackupReport,
    HostFacts,
    Problem,
    evaluate_host,
    problem_lines,
    render_table,
    report_to_json,
    summary_line,
)
from opsguard.providers.base import BackupSchedule
from tests.unit.backups_fakes import NOW, VULTR_ID, backup, facts, host, instance, snapshot


def mixed_report() -> BackupReport:
    reports = [
        evaluate_host(
            facts(host("chat"), instance=instance(), schedule=BackupSchedule(True, "daily"), backups=[backup("31h")]),
            NOW,
        ),
        evaluate_host(
            facts(
                host("chat2", "hostinger", schedule="weekly", max_age="8d"),
                backups=[backup("1d")],
                snapshot=snapshot("2d"),
            ),
            NOW,
        ),
        evaluate_host(
            HostFacts(
                host=host("ia", "hostinger", instance=None, schedule="weekly", max_age="8d"),
                errors=(Problem("config", "inventory.toml: hosts.ia.instance is not set"),),
            ),
            NOW,
        ),
        evaluate_host(
            HostFacts(
                host=host("spare", "hostinger", schedule="weekly", max_age="8d"),
                errors=(Problem("unreachable", "listing backups: hostinger API HTTP 503: down"),),
            ),
            NOW,
        ),
    ]
    return BackupReport(checked_at=NOW, hosts=tuple(reports))


def test_report_to_json_matches_schema_when_hosts_mixed() -> None:
    document = report_to_json(mixed_report())
    jsonschema.validate(document, REPORT_SCHEMA)
    assert (document["version"], document["command"]) == (2, "backup-check")
    assert document["checked_at"] == "2026-11-28T03:00:00Z"
    assert document["exit_code"] == 78
    assert [item["status"] for item in document["hosts"]] == ["stale", "warn", "config", "unreachable"]
    json.dumps(document)  # serialisable without a default=


def test_report_to_json_fills_vultr_record_when_stale() -> None:
    chat = report_to_json(mixed_report())["hosts"][0]
    assert chat["instance"] == VULTR_ID
    assert chat["newest_backup_at"] == "2026-11-26T20:00:00Z"
    assert chat["newest_backup_age_seconds"] == pytest.approx(31 * 3600)
    assert chat["backup_count"] == 1
    assert chat["max_age_seconds"] == 26 * 3600
    assert chat["schedule"] == {"enabled": True, "type": "daily", "expected": "daily", "next_run": None}
    assert chat["snapshot"] is None
    assert chat["problems"] == ["newest backup is 31h old (max 26h), taken 2026-11-26T20:00:00Z"]


def test_report_to_json_fills_hostinger_snapshot_when_expiring() -> None:
    chat2 = report_to_json(mixed_report())["hosts"][1]
    assert chat2["schedule"] is None
    assert chat2["snapshot"]["id"] == "8812"
    assert chat2["snapshot"]["expires_at"] == "2026-11-30T03:00:00Z"
    assert chat2["snapshot"]["expires_in_seconds"] == pytest.approx(2 * 86400)
    assert chat2["exit_code"] == 0
    assert chat2["warnings"] and chat2["problems"] == []


def test_report_to_json_uses_nulls_when_host_unreadable() -> None:
    spare = report_to_json(mixed_report())["hosts"][3]
    assert (spare["backup_count"], spare["newest_backup_at"], spare["newest_backup_age_seconds"]) == (None, None, None)


def test_report_exit_code_failure_wins_over_unreachable() -> None:
    report = mixed_report()
    without_config = BackupReport(checked_at=NOW, hosts=tuple(item for item in report.hosts if item.host != "ia"))
    assert without_config.exit_code == 1


def test_problem_lines_name_the_host_and_mark_warnings() -> None:
    lines = problem_lines(mixed_report())
    assert lines[0] == "chat: newest backup is 31h old (max 26h), taken 2026-11-26T20:00:00Z"
    assert lines[1].startswith("chat2: warning: current snapshot 8812 expires in 2d")
    assert lines[2] == "ia: inventory.toml: hosts.ia.instance is not set"
    assert lines[3] == "spare: listing backups: hostinger API HTTP 503: down"
    assert len(lines) == 4


def test_problem_lines_empty_when_all_ok() -> None:
    ok = evaluate_host(
        facts(host("chat2", "hostinger", schedule="weekly", max_age="8d"), backups=[backup("1d")], snapshot=None), NOW
    )
    assert problem_lines(BackupReport(checked_at=NOW, hosts=(ok,))) == []


def test_render_table_shows_one_row_per_host_with_reason() -> None:
    text = render_table(mixed_report())
    header, *rows = text.splitlines()
    assert header.split()[:3] == ["HOST", "PROVIDER", "NEWEST"]
    assert len(rows) == 4
    assert rows[0].split()[:3] == ["chat", "vultr", "31h"]
    assert "STALE" in rows[0] and "31h old (max 26h)" in rows[0]
    assert "in 2d" in rows[1] and "warning:" in rows[1]
    assert "CONFIG" in rows[2]


def test_summary_line_counts_statuses() -> None:
    assert summary_line(mixed_report()) == "backup-check: 4 hosts: 1 config, 1 stale, 1 unreachable, 1 warn; exit 78"


V1_HOST_FIELDS = ("host", "provider", "instance", "status", "exit_code", "problems", "warnings", "max_age_seconds",
                  "backups_enabled", "newest_backup_at", "newest_backup_age_seconds", "backup_count", "schedule", "snapshot")


def test_report_to_json_keeps_every_version_one_field_and_adds_checks() -> None:
    hosts = report_to_json(mixed_report())["hosts"]
    assert all(set(V1_HOST_FIELDS) <= set(record) for record in hosts)
    assert [record["state"] for record in hosts] == ["failed", "warning", "unknown", "unknown"]
    chat_checks = {check["check"]: (check["state"], check["message"]) for check in hosts[0]["checks"]}
    assert chat_checks["backups"] == ("failed", "newest backup is 31h old (max 26h), taken 2026-11-26T20:00:00Z")
    assert chat_checks["auto_backups"][0] == "ok" and chat_checks["schedule"][0] == "ok"
    assert [check["check"] for check in hosts[2]["checks"]] == ["provider"]


def test_evaluate_host_checks_give_the_same_exit_code_as_the_problems() -> None:
    from opsguard.report import HostResult

    for item in mixed_report().hosts:
        assert HostResult(item.host, item.checks).exit_code == item.exit_code
