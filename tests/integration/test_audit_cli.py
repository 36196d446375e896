"""`opsguard audit` end to end: the real CLI on real sshd hosts with scripted histories.

Every test also proves the audit read-only: the sandbox records every SSH session's full command
line, and the oracle (sandbox/journal.py ``changing_sessions``) finds none that may change a host.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from opsguard.guard import read_only_session
from opsguard.history import read_history
from opsguard.inventory import load_inventory
from opsguard.report import report_schema
from opsguard.sandbox.hosts import SandboxHosts
from opsguard.sandbox.journal import mutating_calls
from tests.integration.nightly_support import NightlyWorld, checks, docker_time, new_world, shown, wait_a_second

pytestmark = pytest.mark.integration
UNATTENDED = "/usr/bin/unattended-upgrade"


@pytest.fixture
def world(fresh_hosts: SandboxHosts, tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> NightlyWorld:
    return new_world(fresh_hosts, tmp_path, isolated_environment, monkeypatch)


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def test_audit_exit_zero_and_only_setting_warnings_when_hosts_left_alone(world: NightlyWorld) -> None:
    before = world.session_counts()
    result = world.cli("audit")
    assert (result.exit_code, result.stdout) == (0, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 9 and all(": warning: " in line for line in lines)
    assert sum(line.startswith("chat2: warning: unattended-upgrades is enabled") for line in lines) == 1
    assert world.assert_read_only_since(before) == 3  # one SSH session per host: the whole probe is one script
    for host in world.hosts.hosts:  # and every stubbed tool call on its own (pm2 only with its daemon up)
        assert mutating_calls(world.hosts.journal(host)) == []


def test_audit_exit_one_naming_unattended_upgrade_outside_any_window(world: NightlyWorld) -> None:
    at = datetime.now(UTC) - timedelta(hours=2)
    world.add_apt_run("chat", at, UNATTENDED, 14)
    before = world.session_counts()
    result = world.cli("audit")
    assert result.exit_code == 1
    assert problem_lines(result.stderr) == [f"chat: {shown(at)} apt upgraded 14 packages (unattended-upgrades) — no snapshot"]
    world.assert_read_only_since(before)


def test_audit_does_not_report_opsguard_update_inside_its_guarded_window(world: NightlyWorld) -> None:
    now = datetime.now(UTC)
    world.add_guarded_run("chat2", now - timedelta(minutes=70), now - timedelta(minutes=40), run_id="20261201T000000Z-upd001")
    world.add_apt_run("chat2", now - timedelta(minutes=60), "apt-get -o DPkg::Lock::Timeout=600 -y upgrade", 3)
    app_dir = Path(world.hosts.host_vars("chat2")["app_dir"])
    world.touch("chat2", str((app_dir / "backend" / ".env").relative_to(world.root("chat2"))), now - timedelta(minutes=55))
    code, document = world.report("audit", "chat2")
    assert code == 0
    [apt] = checks(document, "chat2", "apt")
    assert (apt["state"], apt["facts"]["guarded_runs"]) == ("ok", ["20261201T000000Z-upd001"])
    assert checks(document, "chat2", "code")[0]["state"] == "ok"
    jsonschema.validate(document, report_schema("opsguard audit report"))


def test_audit_reports_reboot_pm2_restart_and_recreated_container_since_last_audit(world: NightlyWorld) -> None:
    assert world.cli("audit").exit_code == 0  # records where each host stands (containers, pm2)
    wait_a_second()
    world.by_hand("chat", "sudo -n -iu deployzdg -- sh -c 'pm2 restart zpro-backend'")
    world.by_hand("chat2", "systemctl reboot")
    recreated = datetime.now(UTC)
    world.hosts.set_stub_state("chat", "containers", {"postgresql": {"Created": docker_time(recreated),
                                                                     "StartedAt": docker_time(recreated), "Image": "postgres:16.4"}})
    before = world.session_counts()
    result = world.cli("audit")
    assert result.exit_code == 1
    lines = problem_lines(result.stderr)
    assert any(line.startswith("chat: ") and " pm2 zpro-backend restarted (by hand, or by pm2 after a crash; 1 restarts in all) — no snapshot"
               in line for line in lines), lines
    assert f"chat: {shown(recreated)} container postgresql recreated from postgres:16.4; image changed from postgres:14.11 — no snapshot" in lines
    assert any(line.startswith("chat2: ") and line.endswith(" the host rebooted — no snapshot") for line in lines), lines
    assert len(lines) == 3  # the pm2 apps chat2 started at its boot came with the boot
    world.assert_read_only_since(before)


def test_audit_reports_code_tree_crontab_and_authorized_keys_but_not_logs_or_media(world: NightlyWorld) -> None:
    at = datetime.now(UTC) - timedelta(hours=3)
    app = Path(world.hosts.host_vars("chat")["app_dir"]).relative_to(world.root("chat"))
    world.touch("chat", f"{app}/backend/.env", at)
    world.touch("chat", f"{app}/backend/public/1700000000000-logo.jpg", at)  # media
    log = world.touch("chat", f"{app}/backend/logs/app.log", at)  # logs
    old = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    os.utime(log.parent.parent, (old, old))  # as if backend/logs had always been there
    world.touch("chat", "etc/cron.d/backup", at)
    world.touch("chat", "home/deployzdg/.ssh/authorized_keys", at, "ssh-ed25519 AAAA intruder\n")
    result = world.cli("audit", "chat")
    assert result.exit_code == 1
    lines = problem_lines(result.stderr)
    assert lines[0] == f"chat: {shown(at)} 1 file(s) changed in {world.hosts.host_vars('chat')['app_dir']} (backend/.env) — no snapshot"
    assert lines[1] == f"chat: {shown(at)} crontab changed: {world.root('chat')}/etc/cron.d/backup — no snapshot"
    assert lines[2].endswith(f" crontab changed: {world.root('chat')}/etc/cron.d — no snapshot")  # a file added to it
    assert lines[3] == f"chat: {shown(at)} authorized_keys changed: {world.root('chat')}/home/deployzdg/.ssh/authorized_keys — no snapshot"


def test_audit_exit_four_for_unreachable_host_and_still_reports_the_others(world: NightlyWorld) -> None:
    world.make_unreachable("ia")
    before = world.session_counts()
    code, document = world.report("audit")
    assert code == 4
    states = {record["host"]: (record["state"], record["exit_code"]) for record in document["hosts"]}
    assert states == {"chat": ("warning", 0), "chat2": ("warning", 0), "ia": ("unknown", 4)}
    [ssh] = checks(document, "ia")
    assert ssh["check"] == "ssh" and "ia" in ssh["message"]
    assert world.assert_read_only_since(before) == 2


def test_audit_next_run_starts_where_the_last_ended_and_since_overrides(world: NightlyWorld) -> None:
    world.add_apt_run("chat", datetime.now(UTC) - timedelta(hours=2), UNATTENDED, 2)
    assert world.cli("audit", "chat").exit_code == 1
    wait_a_second()
    assert world.cli("audit", "chat").exit_code == 0  # already reported: the next audit starts after it
    assert world.cli("audit", "chat", "--since", "26h").exit_code == 1
    assert world.cli("audit", "chat", "--since", "yesterday").exit_code == 2


def test_audit_exit_four_cannot_tell_when_history_unreadable(world: NightlyWorld) -> None:
    world.add_apt_run("chat2", datetime.now(UTC) - timedelta(hours=2), UNATTENDED, 1)
    (world.root("chat2") / "var" / "lib" / "opsguard" / "history.jsonl").mkdir(parents=True)
    code, document = world.report("audit", "chat2")
    assert code == 4
    [apt] = checks(document, "chat2", "apt")
    assert apt["state"] == "unknown" and "cannot tell whether it was guarded" in apt["message"]


def test_audit_records_each_host_in_the_ledger_with_an_intact_chain(world: NightlyWorld) -> None:
    assert world.cli("audit").exit_code == 0
    records = [json.loads(line) for line in (world.state_dir / "ledger.jsonl").read_text().splitlines()]
    assert sorted(record["host"] for record in records if record["event"] == "audit") == ["chat", "chat2", "ia"]
    chat = next(record for record in records if record["host"] == "chat")
    assert set(chat["containers"]) == {"postgresql", "redis-zpro"} and chat["pm2"] == {"zpro-backend": 0, "zpro-frontend": 0}
    verify = world.cli("ledger", "--verify")
    assert verify.exit_code == 0 and "chain intact" in verify.stdout


def test_read_history_reads_guarded_runs_over_a_read_only_session(world: NightlyWorld) -> None:
    now = datetime.now(UTC)
    world.add_guarded_run("chat", now - timedelta(hours=30), now - timedelta(hours=29), run_id="old-run")
    world.add_guarded_run("chat", now - timedelta(hours=2), None, run_id="open-run")
    with (world.root("chat") / "var" / "lib" / "opsguard" / "history.jsonl").open("a") as history:
        history.write('{"run_id": "torn", "sta')
    inventory = load_inventory(world.inventory)
    before = world.session_counts()
    with read_only_session("chat", inventory=inventory) as session:
        entries = read_history(session, inventory.host("chat").remote_state, now - timedelta(hours=26))
    assert [entry["run_id"] for entry in entries] == ["open-run"]
    assert world.assert_read_only_since(before) == 1


def test_audit_escapes_control_characters_of_a_hostile_file_name(world: NightlyWorld) -> None:
    app = Path(world.hosts.host_vars("chat")["app_dir"]).relative_to(world.root("chat"))
    at = datetime.now(UTC) - timedelta(hours=1)
    world.touch("chat", f"{app}/backend/.env", at)
    hostile = world.touch("chat", f"{app}/evil\x1b[2J\x1b]0;owned\x07.js", at)
    os.utime(hostile.parent, ((at - timedelta(days=9)).timestamp(),) * 2)
    result = world.cli("audit", "chat")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    [line] = problem_lines(result.stderr)
    assert "evil\\x1b[2J\\x1b]0;owned\\x07.js" in line


def test_audit_pings_start_then_exit_code_and_posts_the_report(world: NightlyWorld) -> None:
    from tests.integration.backup_check_support import Receiver

    world.add_apt_run("chat2", datetime.now(UTC) - timedelta(hours=2), UNATTENDED, 1)
    receiver = Receiver()
    try:
        result = world.cli("audit", "--ping-url", f"{receiver.url}/ping/audit-1", "--webhook", f"{receiver.url}/hook")
    finally:
        receiver.stop()
    assert result.exit_code == 1
    assert receiver.paths() == ["/ping/audit-1/start", "/ping/audit-1/1", "/hook"]
    body = receiver.requests[1].body.decode()
    assert body.startswith("audit: 3 hosts: 1 failed, 2 warning; exit 1")
    assert "chat2: " in body and "apt upgraded 1 package (unattended-upgrades) — no snapshot" in body
    report = json.loads(receiver.requests[2].body)
    assert (receiver.requests[2].content_type, report["command"], report["exit_code"]) == ("application/json", "audit", 1)
