"""backup_check: read-only on-host facts (disk usage, newest backup file)."""

from __future__ import annotations

from opsguard.playbooks import build_plan
from playbooks.backup_check import local_backup_facts
from tests.unit.playbook_cases import DF_OK, TS, check_of, find_step, make_host


def test_backup_check_plan_is_read_only() -> None:
    plan = build_plan("backup_check", make_host(), {"ts": TS})
    assert plan.kind == "read-only"
    assert plan.steps() and not any(step.mutates for step in plan.steps())
    assert plan.change == ()


def test_backup_check_disk_facts_name_the_fullest_mount() -> None:
    step = find_step(build_plan("backup_check", make_host(), {"ts": TS}), "disk usage")
    assert check_of(step)(DF_OK) is None
    assert step.facts is not None
    assert step.facts.parse(DF_OK) == {"disk_max_used_percent": "50", "disk_max_used_mount": "/"}


def test_backup_check_newest_file_age_and_size() -> None:
    facts = local_backup_facts("1735689000.75 4096 /var/backups/opsguard/20250101T000000Z/database.dump\nnow=1735689600\n")
    assert facts == {
        "local_backup_file": "/var/backups/opsguard/20250101T000000Z/database.dump",
        "local_backup_age_seconds": "599",
        "local_backup_bytes": "4096",
    }


def test_backup_check_no_backup_file_gives_empty_facts() -> None:
    assert local_backup_facts("now=1735689600\n")["local_backup_file"] == ""


def test_backup_check_reads_the_backup_dir_var() -> None:
    plan = build_plan("backup_check", make_host(variables={"backup_dir": "/srv/dumps"}), {"ts": TS})
    assert "find /srv/dumps -type f" in find_step(plan, "newest file").shell_text()
