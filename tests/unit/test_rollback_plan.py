"""The rollback playbook without a host: what it undoes for the point run R reached, and which runs the ledger lets
it undo (rollback_source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import ConfigError, Refused
from opsguard.ledger import Ledger
from opsguard.playbooks import build_plan
from opsguard.playbooks import platform_upgrade as zpro
from opsguard.playbooks.rollback import PLAYBOOK, rollback_source
from tests.unit.playbook_cases import make_host

RUN = "20250101T000000Z-abcdef"


def source(started: list[str], playbook: str = "platform_upgrade") -> dict[str, Any]:
    example = json.loads(PLAYBOOK.examples[0 if playbook == "platform_upgrade" else 2].options["rolled_back"])
    return {**example, "started": started}


def rollback_plan(started: list[str], playbook: str = "platform_upgrade") -> list[str]:
    plan = build_plan("rollback", make_host(), {"rolled_back": json.dumps(source(started, playbook))})
    return [step.name for step in plan.change]


def test_rollback_plan_after_the_swap_restores_dump_and_code_in_the_advice_order() -> None:
    names = rollback_plan([zpro.STOP_STEP, zpro.MIGRATE_STEP, zpro.MEDIA_STEP, zpro.KEEP_STEP, zpro.LIVE_STEP])

    assert names == ["stop the apps by name", "restore the database from the run's dump (pg_restore --clean --if-exists)",
                     "put the previous code tree back (and the media into it)", "restart the apps by name"]


def test_rollback_plan_before_the_migrate_does_not_touch_the_database() -> None:
    assert rollback_plan([zpro.STOP_STEP]) == ["restart the apps by name"]
    assert rollback_plan([zpro.STOP_STEP, zpro.MIGRATE_STEP])[:2] == [
        "stop the apps by name", "restore the database from the run's dump (pg_restore --clean --if-exists)"]


def test_rollback_plan_refuses_a_run_that_never_stopped_a_service() -> None:
    with pytest.raises(ConfigError, match="the live site was never touched"):
        rollback_plan(["stage: frontend npm run build"])


def test_rollback_plan_needs_the_record_of_the_run() -> None:
    with pytest.raises(ConfigError, match="opsguard rollback HOST"):
        build_plan("rollback", make_host(), {})


def test_rollback_plan_of_a_stack_upgrade_pins_the_recorded_digests() -> None:
    plan = build_plan("rollback", make_host("ia", ("integrations",)), {"rolled_back": json.dumps(source(
        ["pull the app images", "recreate changed services"], "stack_upgrade"))})

    pin = next(step for step in plan.change if step.name.startswith("pin every service"))
    assert "n8nio/n8n@sha256:" + "2" * 64 in pin.shell_text()
    assert [step.downtime for step in plan.steps() if step.downtime] == ["starts", "ends"]


def record(book: Ledger, event: str, run: str, **fields: Any) -> None:
    book.append(event, run_id=run, host="chat", **fields)


def upgrade_run(book: Ledger, run: str, steps: list[str], outcome: str = events.FAILED) -> None:
    record(book, events.RUN_STARTED, run, command="platform_upgrade")
    record(book, events.SNAPSHOT_VERIFIED, run, receipt={"snapshot_id": f"snap-{run}"})
    record(book, events.RUN_FACTS, run, playbook="platform_upgrade", params={"ts": "x"}, facts={})
    for step in steps:
        record(book, events.STEP, run, phase="started", step=step)
    record(book, events.RUN_ENDED, run, outcome=outcome, failed_step=steps[-1])


def test_rollback_source_picks_the_last_upgrade_with_its_steps_and_snapshot(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    upgrade_run(book, "20250101T000000Z-aaaaaa", [zpro.STOP_STEP], outcome=events.OK)
    upgrade_run(book, "20250102T000000Z-bbbbbb", [zpro.STOP_STEP, zpro.MIGRATE_STEP])

    found = rollback_source(book, "chat")

    assert (found["run"], found["outcome"], found["snapshot_id"]) == ("20250102T000000Z-bbbbbb", "failed", "snap-20250102T000000Z-bbbbbb")
    assert found["started"] == [zpro.STOP_STEP, zpro.MIGRATE_STEP]


def test_rollback_source_refuses_an_older_run_when_a_later_upgrade_followed(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    upgrade_run(book, "20250101T000000Z-aaaaaa", [zpro.STOP_STEP])
    upgrade_run(book, "20250102T000000Z-bbbbbb", [zpro.STOP_STEP])

    with pytest.raises(Refused, match="run 20250102T000000Z-bbbbbb upgraded it after run 20250101T000000Z-aaaaaa"):
        rollback_source(book, "chat", "20250101T000000Z-aaaaaa")


def test_rollback_source_refuses_a_run_without_its_record(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    record(book, events.RUN_STARTED, RUN, command="platform_upgrade")
    record(book, events.SNAPSHOT_VERIFIED, RUN, receipt={"snapshot_id": "snap"})

    with pytest.raises(Refused, match="left no record of what a rollback needs"):
        rollback_source(book, "chat")


def test_rollback_source_refuses_a_host_without_upgrades(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="no platform or stack upgrade"):
        rollback_source(Ledger(tmp_path), "chat")


def stack_plan(facts: dict[str, str]) -> Any:
    record = source(["pull the app images", "recreate changed services"], "stack_upgrade")
    record["facts"] = {**record["facts"], **facts}
    return build_plan("rollback", make_host("ia", ("integrations",)), {"rolled_back": json.dumps(record)})


def test_rollback_plan_of_a_stack_upgrade_runs_compose_with_the_files_the_run_read() -> None:
    plan = stack_plan({"compose_files_used": "docker-compose.yml docker-compose.override.yml"})

    files = "-f docker-compose.yml -f docker-compose.override.yml"
    (up,) = [step for step in plan.change if "up -d" in step.shell_text()]
    assert f"docker compose {files} -f docker-compose.opsguard-rollback.yml up -d --remove-orphans" in up.shell_text()
    assert f"docker compose {files} config -q" in plan.preflight[0].shell_text()


@pytest.mark.parametrize("used", ["", "a.yml $(reboot)"])
def test_rollback_plan_of_a_stack_upgrade_refuses_without_the_files_the_run_read(used: str) -> None:
    with pytest.raises(ConfigError, match="compose_files_used"):
        stack_plan({"compose_files_used": used})


def later_run(book: Ledger, run: str, command: str, outcome: str = events.OK, **facts: Any) -> None:
    record(book, events.RUN_STARTED, run, command=command)
    record(book, events.SNAPSHOT_VERIFIED, run, receipt={"snapshot_id": f"snap-{run}"})
    if facts:
        record(book, events.RUN_FACTS, run, playbook=command, params={}, facts={}, **facts)
    record(book, events.STEP, run, phase="started", step="a step")
    record(book, events.RUN_ENDED, run, outcome=outcome)


def test_rollback_source_refuses_a_run_any_later_change_followed(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    upgrade_run(book, RUN, [zpro.STOP_STEP, zpro.MIGRATE_STEP])
    later_run(book, "20250102T000000Z-cccccc", "update")

    with pytest.raises(Refused, match=f"run 20250102T000000Z-cccccc .*after run {RUN}"):
        rollback_source(book, "chat")


def test_rollback_source_lets_a_failed_rollback_of_the_run_be_retried(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    upgrade_run(book, RUN, [zpro.STOP_STEP, zpro.MIGRATE_STEP])
    later_run(book, "20250102T000000Z-dddddd", "rollback", events.FAILED, rolls_back=RUN)

    assert rollback_source(book, "chat")["run"] == RUN


def test_rollback_source_refuses_when_the_ledger_chain_is_broken(tmp_path: Path) -> None:
    book = Ledger(tmp_path)
    upgrade_run(book, RUN, [zpro.STOP_STEP, zpro.MIGRATE_STEP])
    lines = book.path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace(f"snap-{RUN}", "console-snapshot")
    book.path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(Refused, match="hash chain"):
        rollback_source(book, "chat")
