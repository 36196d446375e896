"""audit's judgement, pure: traces of changes read from a host, compared with its guarded windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsguard import audit
from opsguard.history import history_line
from opsguard.inventory import Host
from opsguard.probes import SectionOutput
from opsguard.report import FAILED, OK, UNKNOWN, WARNING

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=26)
CHAT = Host(name="chat", address="127.0.0.2", port=22, user="root", provider="vultr", instance=None, roles=("zpro",),
            remote_lock="/run/lock/opsguard", backups=None)
SETTINGS = audit.audit_params(CHAT, dict(audit.VARS))
UNATTENDED = """Start-Date: 2026-12-01  06:25:11
Commandline: /usr/bin/unattended-upgrade
Upgrade: libssl3t64:amd64 (3.0.13-0ubuntu3.1, 3.0.13-0ubuntu3.4), openssl:amd64 (3.0.13-0ubuntu3.1, 3.0.13-0ubuntu3.4), """ + \
    ", ".join(f"lib{index}:amd64 (1.0, 1.1)" for index in range(12)) + """
End-Date: 2026-12-01  06:25:40
"""
GUARDED_UPDATE = """Start-Date: 2026-12-01  04:10:00
Commandline: apt-get -o DPkg::Lock::Timeout=600 -y upgrade
Requested-By: ops (1000)
Upgrade: curl:amd64 (7.88.1-10+deb12u5, 7.88.1-10+deb12u8)
End-Date: 2026-12-01  04:10:30
"""
WINDOW = {"run_id": "20261201T040500Z-aaaaaa", "start": "2026-12-01T04:05:00Z", "end": "2026-12-01T04:20:00Z",
          "snapshot_id": "snap-1", "outcome": "ok", "user": "ops", "machine": "laptop", "command": "update"}


def sections(**texts: str) -> dict[str, SectionOutput]:
    base = {"clock": f"{int(NOW.timestamp())}\n+0000\n/usr/share/zoneinfo/Etc/UTC", "history": "OPSGUARD_HISTORY_ABSENT",
            "apt": "", "dpkg": "", "boot": f"btime {int((NOW - timedelta(days=3)).timestamp())}", "containers": "",
            "pm2": "[]", "code:0": "", "cron": "", "ssh_keys": "", "apt_periodic": "", "apt_timers": "",
            "needrestart": "OPSGUARD_NO_NEEDRESTART", "os_release": ""}
    base.update({name.replace("_0", ":0"): text for name, text in texts.items()})
    return {name: SectionOutput(text, 0) for name, text in base.items()}


def judged(previous: dict[str, Any] | None = None, **texts: str) -> audit.AuditOutcome:
    return audit.evaluate_host(CHAT, SETTINGS, sections(**texts), SINCE, previous)


def problems(outcome: audit.AuditOutcome) -> list[str]:
    return [check.message for check in outcome.result.checks if check.state == FAILED]


def test_audit_reports_unattended_upgrade_outside_any_window_with_package_count() -> None:
    outcome = judged(apt=UNATTENDED)
    assert problems(outcome) == ["2026-12-01 06:25 apt upgraded 14 packages (unattended-upgrades) — no snapshot"]
    assert outcome.result.exit_code == 1
    assert outcome.record is not None and outcome.record["unguarded"] == 1


def test_audit_accepts_apt_run_inside_guarded_window() -> None:
    outcome = judged(apt=GUARDED_UPDATE, history=history_line(WINDOW))
    assert problems(outcome) == []
    apt = next(check for check in outcome.result.checks if check.check == "apt")
    assert apt.state == OK and "all inside guarded runs (20261201T040500Z-aaaaaa)" in apt.message


def test_audit_converts_local_log_times_with_the_host_zone() -> None:
    # 07:25 in Lisbon winter time is 07:25 UTC; in Sao Paulo (UTC-3) it is 10:25 UTC, after NOW: not reported.
    lisbon = sections(apt=UNATTENDED.replace("06:25", "07:25"))
    lisbon["clock"] = SectionOutput(f"{int(NOW.timestamp())}\n+0000\n/usr/share/zoneinfo/Europe/Lisbon", 0)
    assert len(problems(audit.evaluate_host(CHAT, SETTINGS, lisbon, SINCE))) == 1
    brazil = sections(apt=UNATTENDED.replace("2026-12-01  06:25:11", "2026-11-30  04:25:11"))
    brazil["clock"] = SectionOutput(f"{int(NOW.timestamp())}\n-0300\n/usr/share/zoneinfo/America/Sao_Paulo", 0)
    [line] = problems(audit.evaluate_host(CHAT, SETTINGS, brazil, SINCE))
    assert line.startswith("2026-11-30 04:25 apt upgraded")  # shown in the host's own local time


def test_audit_reports_reboot_outside_window() -> None:
    boot = NOW - timedelta(hours=2)
    assert problems(judged(boot=f"btime {int(boot.timestamp())}")) == ["2026-12-01 07:00 the host rebooted — no snapshot"]


def test_audit_reports_pm2_restart_but_not_the_start_at_boot() -> None:
    boot = NOW - timedelta(hours=5)
    processes = [
        {"name": "zpro-backend", "pm2_env": {"status": "online", "restart_time": 3, "pm_uptime": int((NOW - timedelta(hours=1)).timestamp() * 1000)}},
        {"name": "zpro-frontend", "pm2_env": {"status": "online", "restart_time": 0, "pm_uptime": int((boot + timedelta(seconds=40)).timestamp() * 1000)}},
    ]
    lines = problems(judged(pm2=json.dumps(processes), boot=f"btime {int(boot.timestamp())}"))
    assert lines[0] == "2026-12-01 04:00 the host rebooted — no snapshot"
    assert lines[1].startswith("2026-12-01 08:00 pm2 zpro-backend restarted (by hand, or by pm2 after a crash; 3 restarts in all)")
    assert len(lines) == 2


def container(name: str, created: datetime, image: str, image_id: str) -> str:
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    return f"/{name}|{stamp}|{image_id}|{image}|running|{stamp}|0|always|null"


def test_audit_reports_recreated_container_with_image_change_from_previous_audit() -> None:
    previous = {"containers": {"postgresql": {"image_id": "sha256:old", "image": "postgres:14.11", "created": "2024-11-25T02:59:58Z"}}}
    line = container("postgresql", NOW - timedelta(hours=3), "postgres:16.4", "sha256:new")
    [problem] = problems(judged(previous, containers=line))
    assert problem == ("2026-12-01 06:00 container postgresql recreated from postgres:16.4; image changed from postgres:14.11 "
                       "— no snapshot")


def test_audit_groups_changed_code_files_per_tree_and_judges_every_minute() -> None:
    root = SETTINGS.code_dirs[0]
    at = (NOW - timedelta(hours=1)).timestamp()
    inside = datetime(2026, 12, 1, 4, 10, tzinfo=UTC).timestamp()
    text = (f"{at} f {root}/backend/.env\n{at + 60} f {root}/backend/dist/server.js\n{inside} f {root}/frontend/dist/index.html\n"
            f"minute {int(at // 60)} 5\nminute {int(inside // 60)} 3000\n")
    outcome = judged(code_0=text, history=history_line(WINDOW))
    [problem] = problems(outcome)
    assert problem == (f"2026-12-01 08:00–08:01 7 file(s) changed in {root} (backend/.env, backend/dist/server.js, ...) "
                       "— no snapshot")


def test_audit_unknown_not_failed_when_history_unreadable() -> None:
    outcome = judged(apt=UNATTENDED, history="OPSGUARD_HISTORY_UNREADABLE")
    states = {check.check: check.state for check in outcome.result.checks}
    assert states["history"] == UNKNOWN and states["apt"] == UNKNOWN
    assert outcome.result.exit_code == 4
    assert "cannot tell whether it was guarded" in next(c.message for c in outcome.result.checks if c.check == "apt")


def test_audit_unknown_when_clock_missing() -> None:
    broken = sections()
    broken["clock"] = SectionOutput("", None)
    outcome = audit.evaluate_host(CHAT, SETTINGS, broken, SINCE)
    assert (outcome.result.exit_code, outcome.record) == (4, None)


def test_audit_reports_dpkg_outside_apt_but_not_inside_an_apt_run() -> None:
    dpkg = ("2026-12-01 06:25:20 upgrade openssl:amd64 3.0.13-0ubuntu3.1 3.0.13-0ubuntu3.4\n"
            "2026-12-01 07:40:00 install zabbix-agent:amd64 <none> 1:6.0\n")
    assert problems(judged(apt=UNATTENDED, dpkg=dpkg))[1] == (
        "2026-12-01 07:40 dpkg changed 1 package(s) outside apt (install 1: zabbix-agent:amd64) — no snapshot")


def test_audit_reports_cron_and_authorized_keys_changes() -> None:
    at = (NOW - timedelta(hours=4)).timestamp()
    lines = problems(judged(cron=f"{at} f /etc/cron.d/backup\n", ssh_keys=f"{at} f /root/.ssh/authorized_keys\n"))
    assert lines == ["2026-12-01 05:00 crontab changed: /etc/cron.d/backup — no snapshot",
                     "2026-12-01 05:00 authorized_keys changed: /root/.ssh/authorized_keys — no snapshot"]


def warnings(outcome: audit.AuditOutcome) -> dict[str, str]:
    return {check.check: check.message for check in outcome.result.checks if check.state == WARNING}


def test_audit_warns_about_settings_with_the_command_that_turns_each_off() -> None:
    outcome = judged(
        apt_periodic='/etc/apt/apt.conf.d/20auto-upgrades:APT::Periodic::Unattended-Upgrade "1";',
        apt_timers=("Id=apt-daily.timer\nUnitFileState=enabled\nActiveState=active\n\n"
                    "Id=apt-daily-upgrade.timer\nUnitFileState=enabled\nActiveState=active\n"),
        needrestart="/etc/needrestart/needrestart.conf:#$nrconf{restart} = 'i';",
        os_release='ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n',
    )
    found = warnings(outcome)
    assert found["unattended_upgrades"].endswith(
        """opsguard exec chat -- sed -i 's/APT::Periodic::Unattended-Upgrade "[0-9]*"/APT::Periodic::Unattended-Upgrade "0"/' """
        "/etc/apt/apt.conf.d/20auto-upgrades")
    assert found["apt_timers"].endswith("opsguard exec chat -- systemctl disable --now apt-daily.timer apt-daily-upgrade.timer")
    assert "(the default of Ubuntu 24.04.1 LTS)" in found["needrestart"]
    assert found["needrestart"].endswith(
        """opsguard exec chat -- sh -c 'echo "\\$nrconf{restart} = \\"l\\";" > /etc/needrestart/conf.d/90-opsguard.conf'""")
    assert outcome.result.exit_code == 0


def test_audit_settings_ok_when_turned_off_by_a_later_file() -> None:
    outcome = judged(
        apt_periodic=('/etc/apt/apt.conf.d/20auto-upgrades:APT::Periodic::Unattended-Upgrade "1";\n'
                      '/etc/apt/apt.conf.d/99opsguard:APT::Periodic::Unattended-Upgrade "0";\n'),
        apt_timers=("Id=apt-daily.timer\nUnitFileState=disabled\nActiveState=inactive\n\n"
                    "Id=apt-daily-upgrade.timer\nUnitFileState=\nActiveState=inactive\n"),  # the second one is not installed
        needrestart="/etc/needrestart/conf.d/90-opsguard.conf:$nrconf{restart} = \"l\";",
        os_release="ID=ubuntu\nVERSION_ID=\"24.04\"\n",
    )
    assert warnings(outcome) == {}


def test_since_for_starts_at_previous_audit_of_the_host() -> None:
    records = [{"event": "audit", "host": "chat", "until": "2026-11-30T03:00:00Z"},
               {"event": "audit", "host": "chat2", "until": "2026-11-30T05:00:00Z"}]
    assert audit.since_for("chat", records, NOW, 93600) == datetime(2026, 11, 30, 3, tzinfo=UTC)
    assert audit.since_for("ia", records, NOW, 93600) == NOW - timedelta(hours=26)


@pytest.mark.parametrize(("value", "expected"), [("26h", NOW - timedelta(hours=26)), ("2026-11-30T06:00:00Z", datetime(2026, 11, 30, 6, tzinfo=UTC)),
                                                 ("2026-11-30 06:00", datetime(2026, 11, 30, 6, tzinfo=UTC))])
def test_parse_since_takes_duration_or_time(value: str, expected: datetime) -> None:
    assert audit.parse_since(value, NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "2027-01-01T00:00:00Z"])
def test_parse_since_raises_value_error_when_neither_or_future(value: str) -> None:
    with pytest.raises(ValueError):
        audit.parse_since(value, NOW)
