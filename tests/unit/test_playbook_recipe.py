"""The design doc's "add a playbook" recipe, exercised: a throwaway playbook defined here is found by the
registry, built by `opsguard plan`'s code path, checked by the safety properties, and refused when one of its
read-only steps is not in the read-only vocabulary."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.plan import Plan, Step
from opsguard.playbooks import Example, Playbook, build_plan, known_vars, list_playbooks, register, unregister
from opsguard.playbooks.common import path_param, quote
from tests.unit.playbook_cases import TS, every_plan, make_host


def rotate_logs(host: Host, params: Mapping[str, Any]) -> Plan:
    log_dir = path_param(params, "log_dir")
    return Plan(
        playbook="rotate_logs",
        host=host.name,
        kind="change",
        summary="rotate the app logs",
        preflight=(Step("log dir present", f"test -d {quote(log_dir)}", mutates=False),),
        change=(Step("rotate", f"logrotate -f {quote(log_dir)}/logrotate.conf", mutates=True),),
        verify=(Step("log dir still present", f"ls -1 {quote(log_dir)}", mutates=False),),
        params=dict(params),
    )


ROTATE_LOGS = Playbook(name="rotate_logs", kind="change", summary="rotate the app logs",
                       variables={"log_dir": "/var/log/zpro"}, build=rotate_logs, examples=(Example(roles=("zpro",)),))


@pytest.fixture
def registered() -> Iterator[Playbook]:
    register(ROTATE_LOGS)
    try:
        yield ROTATE_LOGS
    finally:
        unregister(ROTATE_LOGS.name)


def test_recipe_registered_playbook_is_listed_built_and_its_vars_accepted(registered: Playbook) -> None:
    assert "rotate_logs" in list_playbooks()
    assert known_vars()["log_dir"] == ["rotate_logs"]
    plan = build_plan("rotate_logs", make_host(variables={"log_dir": "/srv/logs"}), {"ts": TS})
    assert plan.change[0].shell_text() == "logrotate -f /srv/logs/logrotate.conf"


def test_recipe_registered_playbook_is_in_every_safety_test(registered: Playbook, tmp_path: Path) -> None:
    assert "rotate_logs" in [plan.playbook for plan in every_plan(tmp_path)]


def test_recipe_playbook_with_a_read_only_step_outside_the_vocabulary_is_refused(tmp_path: Path) -> None:
    def sneaky(host: Host, params: Mapping[str, Any]) -> Plan:
        return Plan(playbook="sneaky", host=host.name, kind="change", summary="x",
                    preflight=(Step("looks harmless", "nginx -t", mutates=False),), params=dict(params))

    register(Playbook(name="sneaky", kind="change", summary="x", variables={}, build=sneaky,
                      examples=(Example(roles=("zpro",)),)))
    try:
        with pytest.raises(ConfigError, match=r"step 'looks harmless' is declared read-only but .*nginx -t"):
            build_plan("sneaky", make_host(), {"ts": TS})
    finally:
        unregister("sneaky")


def test_recipe_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Playbook(name="update", kind="change", summary="x", variables={}, build=rotate_logs,
                          examples=(Example(roles=()),)))


def test_recipe_read_only_playbook_runs_without_a_snapshot_in_a_read_only_session(tmp_path: Path) -> None:
    from opsguard.runner import PlanRunner
    from tests.unit.fakes import FakeConnection, FakeProvider, fake_world, write_inventory

    def disk_report(host: Host, params: Mapping[str, Any]) -> Plan:
        return Plan(playbook="disk_report", host=host.name, kind="read-only", summary="x",
                    preflight=(Step("disk", "df -P /", mutates=False),), params=dict(params))

    register(Playbook(name="disk_report", kind="read-only", summary="x", variables={}, build=disk_report,
                      examples=(Example(roles=("zpro",)),)))
    try:
        inventory, provider, connection = write_inventory(tmp_path), FakeProvider(), FakeConnection()
        plan = build_plan("disk_report", inventory.host("chat"), {"ts": TS})
        with fake_world(provider, connection):
            summary = PlanRunner(plan, inventory.host("chat"), inventory, reason="t", stream=False).run()
    finally:
        unregister("disk_report")
    assert summary.outcome == "ok"
    assert connection.commands == ["df -P /"]
    assert provider.created == 0
