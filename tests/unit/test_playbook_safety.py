"""Safety properties every plan must keep, checked on every playbook in each of its shapes (no network)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from opsguard.errors import ConfigError
from opsguard.plan import Plan, placeholders, render
from opsguard.playbooks import build_plan
from opsguard.readonly import PM2_DAEMON_RUNNING, read_only_problem
from tests.unit.playbook_cases import TS, every_plan, make_host


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> list[Plan]:
    return every_plan(tmp_path_factory.mktemp("packages"))


def _commands(plan: Plan) -> list[tuple[str, str]]:
    return [(step.name, step.shell_text()) for step in plan.steps()]


def test_playbook_safety_every_step_declared_read_only_is_in_the_read_only_vocabulary(plans: list[Plan]) -> None:
    """The ONE classifier (opsguard/readonly.py) judges every step a plan runs without a snapshot."""
    offenders = [
        f"{plan.playbook}/{step.name}: {read_only_problem(step.shell_text())}"
        for plan in plans
        for step in plan.steps()
        if not step.mutates and (step.upload is not None or read_only_problem(step.shell_text()))
    ]
    assert offenders == []


def test_playbook_safety_preflight_and_verify_never_mutate(plans: list[Plan]) -> None:
    offenders = [f"{plan.playbook}/{step.name}" for plan in plans for step in (*plan.preflight, *plan.verify) if step.mutates]
    assert offenders == []


def test_playbook_safety_read_only_plans_have_no_mutating_step(plans: list[Plan]) -> None:
    read_only = [plan for plan in plans if plan.kind == "read-only"]
    assert all(not step.mutates for plan in read_only for step in plan.steps())


def test_playbook_safety_no_firewall_change_anywhere(plans: list[Plan]) -> None:
    offenders = [(plan.playbook, name) for plan in plans for name, text in _commands(plan) if re.search(r"\b(ufw|iptables|nft)\b", text)]
    assert offenders == []


def test_playbook_safety_pm2_only_by_name(plans: list[Plan]) -> None:
    offenders = [
        (plan.playbook, name)
        for plan in plans
        for name, text in _commands(plan)
        if re.search(r"\bpm2\s+(stop|restart|reload|delete|kill)\b[^\n;&|]*\ball\b", text) or re.search(r"\bpm2\s+delete\b", text)
    ]
    assert offenders == []
    rollback = [line for plan in plans for line in plan.rollback if re.search(r"\bpm2\s+\w+\s+all\b|\bpm2\s+delete\b", line)]
    assert rollback == []


def test_playbook_safety_nothing_is_deleted_with_rm(plans: list[Plan]) -> None:
    offenders = [(plan.playbook, name) for plan in plans for name, text in _commands(plan) if re.search(r"(^|[\s;&|(])rm\s", text)]
    assert offenders == []


def test_playbook_safety_every_placeholder_is_filled_by_an_earlier_step_or_param(plans: list[Plan]) -> None:
    for plan in plans:
        known = set(plan.params) | {"snapshot_id"}
        for step in plan.steps():
            texts = [step.shell_text(), *(step.upload or ())]
            missing = [name for text in texts for name in placeholders(text) if name not in known]
            assert missing == [], f"{plan.playbook}/{step.name} uses {missing} before any step reads them"
            if step.facts is not None:
                known.update(step.facts.names)
        for line in plan.rollback:
            assert set(placeholders(line)) <= known, f"{plan.playbook} rollback: {line}"


def test_playbook_safety_fact_names_never_shadow_params(plans: list[Plan]) -> None:
    for plan in plans:
        facts = {name for step in plan.steps() if step.facts for name in step.facts.names}
        assert facts.isdisjoint(plan.params), f"{plan.playbook}: {facts & set(plan.params)}"


def test_playbook_safety_commands_are_valid_posix_shell(plans: list[Plan]) -> None:
    for plan in plans:
        facts = {name: "x" for name in plan.params} | {
            name: "x" for step in plan.steps() if step.facts for name in step.facts.names
        }
        for step in plan.steps():
            command = render(step.shell_text(), facts)
            result = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True, check=False)
            assert result.returncode == 0, f"{plan.playbook}/{step.name}: {result.stderr.strip()}"


_SANDBOX_VARS = {
    "app_dir": "/sandbox/chat/app",
    "backup_dir": "/sandbox/chat/backups",
    "nginx_sites_dir": "/sandbox/chat/nginx",
    "pm2_log_dir": "/sandbox/chat/pm2-logs",
    "compose_dir": "/sandbox/chat/stack",
    "reboot_required_file": "/sandbox/chat/reboot-required",
    "boot_id_file": "/sandbox/chat/boot_id",
    "boot_dir": "/sandbox/chat/boot",
    "disk_paths": ["/sandbox/chat"],
    "dpkg_lock_files": ["/sandbox/chat/dpkg-lock"],
    "n8n_config_path": "/sandbox/n8n/config",  # a path inside the n8n container, from a var all the same
}
_SYSTEM_PATH = re.compile(r"(?<![\w.:/-])/(etc|home|var|opt|boot|proc|run|usr|srv|root|tmp|lib|mnt|sys)\b")


def test_playbook_safety_every_host_path_comes_from_a_var(tmp_path: Path) -> None:
    plans = every_plan(tmp_path, _SANDBOX_VARS)
    offenders = []
    for plan in plans:
        for step in plan.steps():
            remote = step.upload[1] if step.upload else step.shell_text()
            # The pm2 daemon test reads /proc/PID: the kernel's view of processes, the same inside the sandbox.
            remote = remote.replace(PM2_DAEMON_RUNNING, "")
            if _SYSTEM_PATH.search(remote):
                offenders.append(f"{plan.playbook}/{step.name}: {_SYSTEM_PATH.search(remote).group(0)}")  # type: ignore[union-attr]
    assert offenders == []


def test_playbook_safety_path_values_are_quoted_in_shell_text(tmp_path: Path) -> None:
    hostile = {**_SANDBOX_VARS, "app_dir": "/sandbox/my app $(touch pwned)", "backup_dir": "/sandbox/b;touch pwned"}
    for plan in every_plan(tmp_path, hostile):
        for name, text in _commands(plan):
            unquoted = re.sub(r"'[^']*'", "", text)
            assert "touch pwned" not in unquoted, f"{plan.playbook}/{name} puts a var into shell text unquoted"


@pytest.mark.parametrize("key", ["deploy_user", "backend_process", "db_container"])
def test_playbook_safety_names_with_shell_characters_are_refused(tmp_path: Path, key: str) -> None:
    from tests.unit.playbook_cases import package_file

    with pytest.raises(ConfigError, match=key):
        build_plan("platform_upgrade", make_host(), {"package": str(package_file(tmp_path)), "ts": TS, key: "x; reboot"})


def test_playbook_safety_downtime_marks_are_paired_and_ordered(plans: list[Plan]) -> None:
    for plan in plans:
        marks = [(index, step.downtime) for index, step in enumerate(plan.steps()) if step.downtime]
        if not marks:
            continue
        # "channels-back" (every WhatsApp channel CONNECTED again) may follow "ends" (HTTP healthy), never precede it.
        assert [mark for _, mark in marks] in (["starts", "ends"], ["starts", "ends", "channels-back"]), plan.playbook
        assert [index for index, _ in marks] == sorted(index for index, _ in marks)


def test_playbook_safety_plans_are_pure_and_repeatable(tmp_path: Path) -> None:
    first = every_plan(tmp_path)
    second = every_plan(tmp_path)
    assert first == second
