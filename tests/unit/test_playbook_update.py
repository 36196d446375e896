"""update: apt options, reboot only when allowed, nginx reload only when upgraded, baseline comparison."""

from __future__ import annotations

import re

from opsguard.plan import Plan
from opsguard.playbooks import build_plan
from opsguard.playbooks.update import upgrade_warnings
from tests.unit.playbook_cases import (
    APT_SIMULATION,
    DF_OK,
    DF_VAR_FULL,
    PM2_BOTH_ONLINE,
    TS,
    check_of,
    find_step,
    make_host,
    pm2_jlist,
)

_REBOOT = re.compile(r"\bsystemctl\s+reboot\b|\bshutdown\s+-r\b|(^|[;&|(]\s*)reboot(\s|$)|\binit\s+6\b")


def _plan(roles: tuple[str, ...] = ("zpro",), **overrides: object) -> Plan:
    return build_plan("update", make_host("chat" if "zpro" in roles else "ia", roles), {"ts": TS, **overrides})


def test_update_apt_commands_carry_every_safety_option() -> None:
    apt_steps = [step for step in _plan().steps() if re.search(r"\bapt-get -o\b", step.shell_text())]
    assert len(apt_steps) == 3
    for step in apt_steps:
        text = step.shell_text()
        for option in (
            "DEBIAN_FRONTEND=noninteractive",
            "NEEDRESTART_MODE=l",
            "UCF_FORCE_CONFFOLD=1",
            "-o DPkg::Lock::Timeout=600",
            "-o Dpkg::Options::=--force-confdef",
            "-o Dpkg::Options::=--force-confold",
        ):
            assert option in text, f"{step.name} lacks {option}"
    assert [re.search(r"apt-get .*? (update|-s upgrade|-y upgrade)\b", step.shell_text()).group(1) for step in apt_steps] == [  # type: ignore[union-attr]
        "update", "-s upgrade", "-y upgrade",
    ]


def test_update_lock_timeout_var_reaches_apt() -> None:
    plan = _plan(apt_lock_timeout="30")
    assert "-o DPkg::Lock::Timeout=30 " in find_step(plan, "upgrade packages").shell_text()


def test_update_reboots_only_with_allow_reboot() -> None:
    without = _plan()
    assert not any(_REBOOT.search(step.shell_text()) for step in without.steps())
    report = find_step(without, "reboot required?")
    assert not report.mutates and "/var/run/reboot-required" in report.shell_text()
    with_reboot = _plan(allow_reboot=True)
    rebooting = [step for step in with_reboot.steps() if _REBOOT.search(step.shell_text())]
    assert [step.name for step in rebooting] == ["reboot if the host needs it (--allow-reboot)"]
    assert rebooting[0].mutates
    assert rebooting[0].shell_text().startswith("if [ -e /var/run/reboot-required ]; then")
    assert with_reboot.verify[0].name == "host back after the reboot"


def test_update_simulation_records_packages_and_warnings() -> None:
    step = find_step(_plan(), "list upgrades")
    assert not step.mutates and step.facts is not None
    facts = step.facts.parse(APT_SIMULATION)
    assert facts["upgrade_count"] == "7"
    assert facts["nginx_upgraded"] == "yes"
    assert "docker-ce" in facts["upgrade_warnings"] and "nodejs" in facts["upgrade_warnings"]
    assert facts["upgrade_packages"].startswith("'libssl3 openssl containerd.io")


def test_update_warnings_cover_docker_containerd_nodejs_and_kernel() -> None:
    warnings = upgrade_warnings(["containerd.io", "nodejs", "linux-image-6.8.0-49-generic", "libssl3"])
    assert [warning.split(":")[0] for warning in warnings] == ["containerd", "nodejs", "kernel"]
    assert upgrade_warnings(["libssl3", "openssl"]) == []


def test_update_nginx_reload_is_decided_by_the_recorded_fact() -> None:
    step = find_step(_plan(), "reload nginx")
    assert step.shell_text().startswith("if [ {{nginx_upgraded}} = yes ]; then nginx -t && systemctl reload nginx;")
    facts = find_step(_plan(), "list upgrades").facts
    assert facts is not None and facts.parse("Inst libssl3 [1] (2 Ubuntu [amd64])\n")["nginx_upgraded"] == "no"


def test_update_disk_check_fails_at_95_percent_naming_the_mount() -> None:
    check = check_of(find_step(_plan(), "disk usage"))
    assert check(DF_OK) is None
    assert check(DF_VAR_FULL) == "disk too full: /var is 95% used (limit 90%)"


def test_update_boot_check_fails_below_150_mb() -> None:
    check = check_of(find_step(_plan(), "free space for a new kernel"))
    small = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda2 500000 400000 100000 80% /boot\n"
    reason = check(small)
    assert reason is not None and "/boot has 102 MB free" in reason and "150 MB" in reason
    assert check(small.replace("100000 80%", "400000 20%")) is None


def test_update_dpkg_audit_output_fails_the_check() -> None:
    check = check_of(find_step(_plan(), "dpkg state clean"))
    assert check("") is None
    assert "dpkg --configure -a" in (check("The following packages are only half configured:\n linux-image\n") or "")


def test_update_lock_check_fails_when_a_lock_is_held() -> None:
    check = check_of(find_step(_plan(), "no apt/dpkg lock held"))
    assert check("held=\nbusy=\n") is None
    reason = check("held= /var/lib/dpkg/lock-frontend\nbusy=2231\n")
    assert reason is not None and "/var/lib/dpkg/lock-frontend" in reason and "2231" in reason


def test_update_pm2_baseline_only_on_zpro_hosts_and_as_deploy_user() -> None:
    zpro = find_step(_plan(("zpro",)), "baseline: pm2")
    assert zpro.sudo_user == "deployzdg"
    assert not [step for step in _plan(("integrations",)).steps() if "pm2" in step.shell_text()]


def test_update_system_compare_fails_on_a_newly_failed_unit() -> None:
    check = check_of(find_step(_plan(), "system state compared"))
    before = "baseline_state=degraded\nbaseline_failed=certbot.service\n"
    assert check(before + "state=degraded\ncertbot.service loaded failed failed Certbot\n") is None
    reason = check(before + "state=degraded\ncertbot.service loaded failed failed Certbot\nnginx.service loaded failed failed nginx\n")
    assert reason is not None and "nginx.service" in reason
    assert check("baseline_state=running\nbaseline_failed=\nstate=starting\n") == "system is starting (was running before)"


def test_update_system_baseline_facts_are_shell_safe() -> None:
    facts = find_step(_plan(), "baseline: system state").facts
    assert facts is not None
    parsed = facts.parse("state=degraded\ncertbot.service loaded failed failed Certbot\n")
    assert parsed == {"system_state": "degraded", "failed_units": "certbot.service"}


def test_update_pm2_compare_fails_when_a_process_is_not_back() -> None:
    step = find_step(_plan(), "pm2 processes online as before")
    assert step.poll is not None
    check = check_of(step)
    assert check("expected=zpro-backend zpro-frontend\n" + PM2_BOTH_ONLINE) is None
    down = pm2_jlist({"zpro-backend": ("errored", 9), "zpro-frontend": ("online", 1)})
    assert check("expected=zpro-backend zpro-frontend\n" + down) == "pm2 processes online before the upgrade not back: zpro-backend"


def test_update_container_compare_fails_when_a_container_is_missing() -> None:
    check = check_of(find_step(_plan(), "containers running as before"))
    assert check("expected=postgresql redis-zpro\npostgresql\nredis-zpro\n") is None
    assert "redis-zpro" in (check("expected=postgresql redis-zpro\npostgresql\n") or "")


def test_update_is_a_change_plan_with_rollback_advice() -> None:
    plan = _plan()
    assert plan.kind == "change"
    assert any("{snapshot_id}" in line for line in plan.rollback)
