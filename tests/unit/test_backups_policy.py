"""backup-check policy: evaluate_host() judges one host's facts (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from opsguard.backups import HostFacts, Problem, evaluate_host
from opsguard.providers.base import BackupSchedule
from tests.unit.backups_fakes import NOW, backup, facts, host, instance, snapshot

DAILY = BackupSchedule(enabled=True, kind="daily")


def vultr(**overrides: object) -> HostFacts:
    values: dict[str, object] = {"instance": instance(), "schedule": DAILY, "backups": [backup("3h")]}
    values.update(overrides)
    return facts(host("chat", "vultr"), **values)


def hostinger(**overrides: object) -> HostFacts:
    values: dict[str, object] = {"backups": [backup("2d")], "snapshot": None}
    values.update(overrides)
    return facts(host("chat2", "hostinger", schedule="weekly", max_age="8d"), **values)


def test_evaluate_host_ok_when_vultr_backup_fresh_and_schedule_daily() -> None:
    report = evaluate_host(vultr(), NOW)
    assert (report.status, report.exit_code, report.problems, report.warnings) == ("ok", 0, (), ())
    assert report.backup_count == 1
    assert report.newest_backup_age_seconds == pytest.approx(3 * 3600)


def test_evaluate_host_stale_when_newest_backup_older_than_max_age() -> None:
    report = evaluate_host(vultr(backups=[backup("31h", number=1), backup("55h", number=2)]), NOW)
    assert (report.status, report.exit_code) == ("stale", 1)
    assert report.problems[0].startswith("newest backup is 31h old (max 26h)")
    assert report.backup_count == 2


def test_evaluate_host_picks_newest_complete_backup_when_listed_out_of_order() -> None:
    report = evaluate_host(
        vultr(backups=[backup("30h", number=1), backup("2h", number=2), backup("50h", number=3)]), NOW
    )
    assert report.status == "ok"
    assert report.newest_backup_at == NOW - timedelta(hours=2)


def test_evaluate_host_missing_when_no_backups() -> None:
    report = evaluate_host(vultr(backups=[]), NOW)
    assert (report.status, report.exit_code, report.backup_count) == ("missing", 1, 0)
    assert report.problems == ("no complete backup found",)


def test_evaluate_host_ignores_pending_backup_when_judging_age() -> None:
    report = evaluate_host(vultr(backups=[backup("1h", complete=False, number=1), backup("40h", number=2)]), NOW)
    assert report.status == "stale"
    assert report.backup_count == 1
    assert "40h old" in report.problems[0]


def test_evaluate_host_missing_when_only_pending_backups() -> None:
    report = evaluate_host(vultr(backups=[backup("1h", complete=False)]), NOW)
    assert report.status == "missing"
    assert report.problems == ("no complete backup found (1 not complete yet)",)


def test_evaluate_host_stale_when_no_backup_has_a_date() -> None:
    report = evaluate_host(vultr(backups=[backup(None)]), NOW)
    assert (report.status, report.exit_code) == ("stale", 1)
    assert "cannot tell how old" in report.problems[0]


def test_evaluate_host_treats_naive_backup_time_as_utc() -> None:
    naive = backup("3h")
    naive = type(naive)(backup_id="b1", created_at=naive.created_at.replace(tzinfo=None) if naive.created_at else None)
    report = evaluate_host(vultr(backups=[naive]), NOW)
    assert report.newest_backup_age_seconds == pytest.approx(3 * 3600)


def test_evaluate_host_warns_when_backup_dated_in_the_future() -> None:
    report = evaluate_host(vultr(backups=[backup("-2h")]), NOW)
    assert (report.status, report.exit_code) == ("warn", 0)
    assert "in the future" in report.warnings[0]


def test_evaluate_host_missing_when_auto_backups_off() -> None:
    report = evaluate_host(vultr(instance=instance(backups_enabled=False)), NOW)
    assert (report.status, report.exit_code) == ("missing", 1)
    assert report.problems == ("automatic backups are off: 'auto_backups' is not in the instance features",)
    assert report.backups_enabled is False


def test_evaluate_host_unreachable_when_auto_backups_unknown_for_vultr() -> None:
    report = evaluate_host(vultr(instance=instance(backups_enabled=None)), NOW)
    assert (report.status, report.exit_code) == ("unreachable", 4)
    assert report.problems == ("cannot tell whether automatic backups are on: the API does not say; try again later",)


def test_evaluate_host_unreachable_when_vultr_instance_locked() -> None:
    locked = replace(instance(backups_enabled=None), locked=True, running=False)
    report = evaluate_host(vultr(instance=locked), NOW)
    assert (report.status, report.exit_code) == ("unreachable", 4)
    assert "the instance is locked by another provider action" in report.problems[0]


def test_evaluate_host_missing_when_schedule_disabled() -> None:
    report = evaluate_host(vultr(schedule=BackupSchedule(enabled=False, kind="daily")), NOW)
    assert (report.status, report.exit_code) == ("missing", 1)
    assert report.problems == ("backup schedule is disabled (inventory expects daily)",)


def test_evaluate_host_missing_when_schedule_absent() -> None:
    report = evaluate_host(vultr(schedule=None), NOW)
    assert report.status == "missing"
    assert report.problems == ("the provider returned no backup schedule",)


def test_evaluate_host_missing_when_schedule_weekly_but_inventory_daily() -> None:
    report = evaluate_host(vultr(schedule=BackupSchedule(enabled=True, kind="weekly")), NOW)
    assert (report.status, report.exit_code) == ("missing", 1)
    assert report.problems == ("backup schedule is weekly, inventory expects daily",)


@pytest.mark.parametrize("kind", ["daily_alt_even", "daily_alt_odd"])
def test_evaluate_host_missing_when_schedule_every_other_day_but_inventory_daily(kind: str) -> None:
    report = evaluate_host(vultr(schedule=BackupSchedule(enabled=True, kind=kind)), NOW)
    assert report.status == "missing"
    assert report.problems == (f"backup schedule is {kind} (runs every other day), inventory expects daily",)


@pytest.mark.parametrize(
    ("kind", "status"), [("weekly", "ok"), ("daily", "ok"), ("daily_alt_odd", "ok"), ("monthly", "missing")]
)
def test_evaluate_host_accepts_more_frequent_schedule_when_inventory_weekly(kind: str, status: str) -> None:
    target = host("chat", "vultr", schedule="weekly", max_age="8d")
    report = evaluate_host(
        facts(target, instance=instance(), schedule=BackupSchedule(True, kind), backups=[backup("2d")]), NOW
    )
    assert report.status == status


def test_evaluate_host_reports_every_problem_when_several_fail() -> None:
    report = evaluate_host(
        vultr(
            instance=instance(backups_enabled=False), schedule=BackupSchedule(False, "daily"), backups=[backup("3d")]
        ),
        NOW,
    )
    assert report.status == "missing"  # missing outranks stale at the same exit code
    assert len(report.problems) == 3


def test_evaluate_host_ok_when_hostinger_backup_fresh() -> None:
    report = evaluate_host(hostinger(), NOW)
    assert (report.status, report.exit_code, report.schedule, report.backups_enabled) == ("ok", 0, None, None)


def test_evaluate_host_stale_when_hostinger_backup_older_than_max_age() -> None:
    report = evaluate_host(hostinger(backups=[backup("9d")]), NOW)
    assert report.status == "stale"
    assert report.problems[0].startswith("newest backup is 9d old (max 8d)")


def test_evaluate_host_missing_when_hostinger_has_no_backup() -> None:
    report = evaluate_host(hostinger(backups=[]), NOW)
    assert (report.status, report.exit_code, report.backup_count) == ("missing", 1, 0)


def test_evaluate_host_warns_when_hostinger_snapshot_expires_within_three_days() -> None:
    report = evaluate_host(hostinger(snapshot=snapshot("2d")), NOW)
    assert (report.status, report.exit_code, report.problems) == ("warn", 0, ())
    assert report.warnings[0].startswith("current snapshot 8812 expires in 2d at ")
    assert report.warnings[0].endswith("(a warning, not a failure)")
    assert report.snapshot_expires_in_seconds == pytest.approx(2 * 86400)


def test_evaluate_host_ok_when_hostinger_snapshot_expires_later() -> None:
    report = evaluate_host(hostinger(snapshot=snapshot("10d")), NOW)
    assert (report.status, report.warnings) == ("ok", ())


def test_evaluate_host_warns_when_hostinger_snapshot_expired() -> None:
    report = evaluate_host(hostinger(snapshot=snapshot("-1d")), NOW)
    assert report.status == "warn"
    assert "expired" in report.warnings[0]


def test_evaluate_host_keeps_failure_when_snapshot_warning_also_present() -> None:
    report = evaluate_host(hostinger(backups=[backup("9d")], snapshot=snapshot("1d")), NOW)
    assert (report.status, report.exit_code) == ("stale", 1)
    assert len(report.warnings) == 1


def test_evaluate_host_config_wins_over_stale() -> None:
    report = evaluate_host(
        HostFacts(
            host=host("chat"),
            values={"backups": (backup("40h"),)},
            errors=(Problem("config", "reading the instance: vultr API HTTP 401: unauthorized"),),
        ),
        NOW,
    )
    assert (report.status, report.exit_code) == ("config", 78)


def test_evaluate_host_failure_wins_over_unreachable() -> None:
    # 1 > 4 (docs/design.md, exit codes): a definite failure is worse news than a read that did not answer.
    report = evaluate_host(
        HostFacts(
            host=host("chat"),
            values={"schedule": BackupSchedule(False, "daily")},
            errors=(Problem("unreachable", "listing backups: vultr API HTTP 503: down"),),
        ),
        NOW,
    )
    assert (report.status, report.exit_code) == ("missing", 1)
    assert report.backup_count is None


def test_evaluate_host_unreachable_when_only_errors() -> None:
    report = evaluate_host(
        HostFacts(host=host("chat"), errors=(Problem("unreachable", "listing backups: vultr API HTTP 503: down"),)), NOW
    )
    assert (report.status, report.exit_code, report.backup_count, report.newest_backup_age_seconds) == (
        "unreachable",
        4,
        None,
        None,
    )
