"""platform_upgrade: order (staged build before any stop, verified dump before migrate), swap, checks."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from opsguard.plan import Plan
from opsguard.playbooks.common import dumps_problem
from opsguard.playbooks.platform_upgrade import env_problems, new_error_lines
from tests.unit.playbook_cases import (
    ENV_GOOD,
    FREE_2GB,
    FREE_8GB,
    MIGRATION_LISTING,
    PM2_BOTH_ONLINE,
    check_of,
    find_step,
    pm2_jlist,
    step_index,
    upgrade_plan,
)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return upgrade_plan(tmp_path)


def _first_index(plan: Plan, pattern: str) -> int:
    return next(index for index, step in enumerate(plan.steps()) if re.search(pattern, step.shell_text()))


def test_platform_upgrade_dump_verification_gates_the_migrate(plan: Plan) -> None:
    dump = _first_index(plan, r"\bpg_dump -Fc\b")
    verify = step_index(plan, "verify the dump")
    migrate = _first_index(plan, r"db:migrate(?!:status)")
    assert dump < verify < migrate
    gate = plan.steps()[verify]
    assert not gate.mutates
    assert check_of(gate)("") is not None  # no output is never a pass
    assert check_of(gate)("dump database 0 0\n") is not None
    assert check_of(gate)("dump database 123456 0\n") is not None
    assert check_of(gate)("dump database 123456 412\n") is None


def test_platform_upgrade_dump_problem_explains_empty_dump() -> None:
    assert dumps_problem("expected=database\ndump database 0 12\n") == "the dump of database is empty or missing"
    assert "pg_restore -l lists nothing" in (dumps_problem("expected=database\ndump database 10\n") or "")
    assert dumps_problem("") == "the dump verification printed no result"


def test_platform_upgrade_no_service_stops_before_the_staged_build_finished(plan: Plan) -> None:
    steps = plan.steps()
    build = _first_index(plan, r"\bnpm run build\b")
    first_stop = next(index for index, step in enumerate(steps) if re.search(r"\bpm2\s+stop\b", step.shell_text()))
    assert build < first_stop
    assert all(not re.search(r"\bpm2\s+(stop|restart)\b", step.shell_text()) for step in steps[:build])
    assert "staging" in steps[build].shell_text()


def test_platform_upgrade_downtime_holds_only_migrate_swap_and_restart(plan: Plan) -> None:
    steps = plan.steps()
    starts = [index for index, step in enumerate(steps) if step.downtime == "starts"]
    ends = [index for index, step in enumerate(steps) if step.downtime == "ends"]
    assert len(starts) == 1 and len(ends) == 1
    assert re.search(r"\bpm2 stop zpro-backend zpro-frontend\b", steps[starts[0]].shell_text())
    between = [step.name for step in steps[starts[0] + 1 : ends[0]]]
    assert between == [
        "migrate the database (staged backend)",
        "swap: move the media into the new tree",
        "swap: keep the live tree as previous",
        "swap: put the staged tree live",
        "restart the apps by name",
    ]
    end = steps[ends[0]]
    assert end in plan.verify and end.poll is not None
    assert "localhost:{{backend_port}}" in end.shell_text()


def test_platform_upgrade_installs_and_builds_in_staging_while_serving(plan: Plan) -> None:
    npm_steps = [step for step in plan.change if re.search(r"\bnpm (install|run build)\b", step.shell_text())]
    assert len(npm_steps) == 3
    for step in npm_steps:
        assert ".staging-" in step.shell_text()
        assert step.sudo_user == "deployzdg"
        assert step.mutates
    assert find_step(plan, "npm run build").timeout >= 1800


def test_platform_upgrade_media_is_moved_never_copied(plan: Plan) -> None:
    texts = [step.shell_text() for step in plan.steps()]
    assert not any(re.search(r"\bcp\b[^\n]*backend/public", text) for text in texts)
    assert not any(re.search(r"\b(rsync|cp -r|cp -a)\b[^\n]*public", text) for text in texts)
    move = find_step(plan, "move the media")
    assert re.search(r"mv -T \S*zpro\.io/backend/public \S*\.staging-\S*/backend/public", move.shell_text())
    backup = find_step(plan, "back up .env files")
    assert "--exclude=./backend/public" in backup.shell_text()


def test_platform_upgrade_live_tree_is_renamed_never_deleted(plan: Plan) -> None:
    texts = [step.shell_text() for step in plan.steps()]
    assert not any(re.search(r"\brm\b", text) for text in texts)
    keep = find_step(plan, "keep the live tree as previous")
    assert keep.shell_text() == "mv -T /home/deployzdg/zpro.io /home/deployzdg/zpro.io.previous-20250101T000000Z"
    live = find_step(plan, "put the staged tree live")
    assert live.shell_text() == "mv -T /home/deployzdg/zpro.io.staging-20250101T000000Z /home/deployzdg/zpro.io"
    assert step_index(plan, "move the media") < step_index(plan, "keep the live tree") < step_index(plan, "put the staged tree")
    assert "atomic" in find_step(plan, "move the media").why


def test_platform_upgrade_pm2_is_addressed_by_name_as_the_deploy_user(plan: Plan) -> None:
    pm2_changes = [step for step in plan.steps() if re.search(r"\bpm2 (stop|restart|save)\b", step.shell_text())]
    assert [step.name for step in pm2_changes] == ["stop the apps by name", "restart the apps by name"]
    assert all(step.sudo_user == "deployzdg" for step in pm2_changes)
    assert "pm2 restart zpro-backend zpro-frontend --update-env && pm2 save" in pm2_changes[1].shell_text()


def test_platform_upgrade_upload_then_checksum_on_the_host(tmp_path: Path, plan: Plan) -> None:
    upload = find_step(plan, "upload the release package")
    assert upload.upload is not None and upload.mutates
    assert upload.upload[0] == str((tmp_path / "update.zip").resolve())
    assert upload.upload[1] == "/var/backups/opsguard/20250101T000000Z/package.zip"
    checksum = find_step(plan, "package checksum")
    assert step_index(plan, "upload the release") < step_index(plan, "package checksum") < step_index(plan, "back up .env")
    expected = hashlib.sha256((tmp_path / "update.zip").read_bytes()).hexdigest()
    assert check_of(checksum)(f"{expected}  /var/backups/opsguard/20250101T000000Z/package.zip\n") is None


def test_platform_upgrade_sha256_mismatch_fails_the_check(plan: Plan) -> None:
    reason = check_of(find_step(plan, "package checksum"))("0" * 64 + "  package.zip\n")
    assert reason is not None and "expected" in reason


def test_platform_upgrade_unpacks_tar_gz_with_tar(tmp_path: Path) -> None:
    plan = upgrade_plan(tmp_path, "release.tar.gz")
    unpack = find_step(plan, "unpack the release").shell_text()
    assert "tar -C /home/deployzdg/zpro.io.staging-20250101T000000Z -xzf /var/backups/opsguard/20250101T000000Z/package.tar.gz" in unpack
    assert "unzip" not in unpack


def test_platform_upgrade_staging_keeps_the_live_env_files(plan: Plan) -> None:
    unpack = find_step(plan, "unpack the release").shell_text()
    assert "for file in backend/.env frontend/.env" in unpack
    assert unpack.index("unzip") < unpack.index("cp -p /home/deployzdg/zpro.io/")


def test_platform_upgrade_disk_check_fails_at_95_percent(plan: Plan) -> None:
    df = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vda1        81106868 77051524   4055344      95% /\n"
    )
    reason = check_of(find_step(plan, "disk usage"))(df)
    assert reason is not None and "/ is 95%" in reason and "90%" in reason


def test_platform_upgrade_memory_check_fails_below_4_gb(plan: Plan) -> None:
    check = check_of(find_step(plan, "RAM+swap"))
    assert check(FREE_8GB) is None
    reason = check(FREE_2GB)
    assert reason is not None and "2.1 GB" in reason and "needs 4 GB" in reason


def test_platform_upgrade_pm2_check_fails_with_one_process_stopped(plan: Plan) -> None:
    step = find_step(plan, "pm2 processes online (as the deploy user)")
    assert step.sudo_user == "deployzdg" and step.facts is not None
    assert check_of(step)(PM2_BOTH_ONLINE) is None
    reason = check_of(step)(pm2_jlist({"zpro-backend": ("online", 3), "zpro-frontend": ("stopped", 1)}))
    assert reason == "zpro-frontend is stopped"
    assert "not in pm2's list" in (check_of(step)("[]") or "")
    assert step.facts.parse(PM2_BOTH_ONLINE) == {"backend_restarts_before": "3", "frontend_restarts_before": "1"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("BACKEND_URL=https://api.chat.example.test;", "BACKEND_URL ends with ';'"),
        ("BACKEND_URL='https://api.chat.example.test", "BACKEND_URL contains a quote"),
        ("BACKEND_URL=https://api.chat.example.test ", "BACKEND_URL ends with a space"),
    ],
)
def test_platform_upgrade_env_check_fails_on_broken_url(plan: Plan, line: str, problem: str) -> None:
    env = ENV_GOOD.replace("BACKEND_URL=https://api.chat.example.test", line)
    reason = check_of(find_step(plan, "backend .env"))(env)
    assert reason is not None and problem in reason


def test_platform_upgrade_env_check_passes_and_reads_facts(plan: Plan) -> None:
    step = find_step(plan, "backend .env")
    assert check_of(step)(ENV_GOOD) is None
    assert step.facts is not None
    facts = step.facts.parse(ENV_GOOD)
    assert facts["backend_port"] == "3000" and facts["postgres_db"] == "zpro_db"
    assert facts["frontend_url"] == "https://chat.example.test"


def test_platform_upgrade_env_check_names_missing_and_bad_values() -> None:
    reason = env_problems("PORT=abc\nPOSTGRES_USER=zpro\nPOSTGRES_DB=zpro db\n")
    assert reason is not None
    assert "PORT='abc' is not a port number" in reason
    assert "DB_PORT is missing" in reason and "BACKEND_URL is missing" in reason
    assert "POSTGRES_DB holds characters" in reason


def test_platform_upgrade_env_is_read_by_key_never_whole(plan: Plan) -> None:
    command = find_step(plan, "backend .env").shell_text()
    assert command.startswith("grep -E ")
    assert "PASSWORD" not in command and "JWT" not in command and "cat " not in command


def test_platform_upgrade_space_check_fails_when_copy_and_dump_do_not_fit(plan: Plan) -> None:
    output = (
        "app_bytes=2000000000\ndb_bytes=3000000000\n"
        "Filesystem 1-blocks Used Available Capacity Mounted on\n"
        "/dev/vda1 80000000000 76000000000 4000000000 95% /\n"
        "/dev/vda1 80000000000 76000000000 4000000000 95% /\n"
    )
    check = check_of(find_step(plan, "free space for the dump"))
    reason = check(output)
    assert reason is not None and "4.0 GB free" in reason
    assert check(output.replace("4000000000 95%", "40000000000 50%")) is None


def test_platform_upgrade_same_filesystem_check_fails_across_devices(plan: Plan) -> None:
    check = check_of(find_step(plan, "one filesystem"))
    same = "2049 /home/deployzdg\n2049 /home/deployzdg/zpro.io\n2049 /home/deployzdg/zpro.io/backend/public\n"
    assert check(same) is None
    reason = check(same.replace("2049 /home/deployzdg/zpro.io/backend", "2065 /home/deployzdg/zpro.io/backend"))
    assert reason is not None and "backend/public" in reason


def test_platform_upgrade_stable_check_fails_when_restart_count_grows(plan: Plan) -> None:
    step = find_step(plan, "restart counts stable")
    assert step.poll is not None and step.poll.hold == 60
    check = check_of(step)
    assert check("backend=3\nfrontend=1\n" + PM2_BOTH_ONLINE) is None
    reason = check("backend=2\nfrontend=1\n" + PM2_BOTH_ONLINE)
    assert reason is not None and "zpro-backend restarted" in reason


def test_platform_upgrade_migration_left_down_fails_verify(plan: Plan) -> None:
    check = check_of(find_step(plan, "no migration left down"))
    assert check(MIGRATION_LISTING) is None
    reason = check(MIGRATION_LISTING + "20250101000000-add-column.js\n")
    assert reason is not None and "20250101000000-add-column.js" in reason


def test_platform_upgrade_error_log_check_ignores_node_warnings() -> None:
    warnings = (
        "(node:41235) [DEP0040] DeprecationWarning: The `punycode` module is deprecated.\n"
        "(Use `node --trace-deprecation ...` to show where the warning was created)\n"
        "2025-01-01T00:00:05: (node:41235) ExperimentalWarning: CommonJS module loading ESM\n"
    )
    assert new_error_lines(warnings) is None
    reason = new_error_lines(warnings + "SequelizeConnectionRefusedError: connect ECONNREFUSED 127.0.0.1:5432\n")
    assert reason is not None and "ECONNREFUSED" in reason


def test_platform_upgrade_frontend_must_answer_2xx_or_3xx(plan: Plan) -> None:
    check = check_of(find_step(plan, "frontend answers"))
    assert check("200\n") is None and check("302\n") is None
    assert check("502\n") == "answered HTTP 502"


def test_platform_upgrade_backend_any_status_counts_as_answering(plan: Plan) -> None:
    check = check_of(find_step(plan, "backend answers"))
    assert check("404\n") is None
    assert check("000\n") is not None


def test_platform_upgrade_rollback_names_dump_previous_tree_and_snapshot(plan: Plan) -> None:
    text = "\n".join(plan.rollback)
    assert "pg_restore --clean --if-exists -U {{postgres_user}} -d {{postgres_db}} < /var/backups/opsguard/20250101T000000Z/database.dump" in text
    assert "mv -T /home/deployzdg/zpro.io.previous-20250101T000000Z /home/deployzdg/zpro.io" in text
    assert "sudo -iu deployzdg pm2 restart zpro-backend zpro-frontend --update-env" in text
    assert "opsguard restore chat --snapshot {snapshot_id}" in text


def test_platform_upgrade_vars_move_every_path(tmp_path: Path) -> None:
    plan = upgrade_plan(tmp_path, variables={"app_dir": "/srv/zpro/app", "backup_dir": "/srv/backups", "moved_dirs": ["backend/public", "backend/sessions"]})
    move = find_step(plan, "move the media").shell_text()
    assert "mv -T /srv/zpro/app/backend/sessions /srv/zpro/app.staging-20250101T000000Z/backend/sessions" in move
    assert find_step(plan, "dump the database").shell_text().endswith("> /srv/backups/20250101T000000Z/database.dump")
