"""`opsguard backup-check` end to end: the real CLI against the provider simulator on loopback."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsguard.backups import REPORT_SCHEMA
from tests.fixtures.cli_fixtures import REPO_ROOT
from tests.integration.backup_check_support import (
    INVENTORY,
    BackupCheckWorld,
    closed_port_url,
    combine,
    hostinger,
    vultr,
    world_factories,
)

pytestmark = pytest.mark.integration
VULTR_ID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"


@pytest.fixture
def world_factory(tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """make(overrides) -> a started simulator world; see backup_check_support.world_factories."""
    yield from world_factories(tmp_path, isolated_environment, monkeypatch)


def only_gets(world: BackupCheckWorld) -> None:
    journal = world.sim.journal()
    assert journal, "the check sent no request at all"
    assert {entry["method"] for entry in journal} == {"GET"}


def test_backup_check_silent_exit_zero_when_backups_fresh(world_factory: Any) -> None:
    world = world_factory()
    result = world.run()
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    only_gets(world)
    paths = {entry["path"] for entry in world.sim.journal()}
    assert f"/instances/{VULTR_ID}/backup-schedule" in paths
    assert "/api/vps/v1/virtual-machines/1001/snapshot" in paths


def test_backup_check_exit_one_with_ages_when_vultr_backup_stale(world_factory: Any) -> None:
    world = world_factory(vultr(backups=["31h", "55h"]))
    result = world.run()
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("chat: newest backup is 31h old (max 26h), taken ")
    only_gets(world)


def test_backup_check_exit_one_when_hostinger_backup_stale(world_factory: Any) -> None:
    world = world_factory(hostinger(1002, backups=["9d", "16d"]))
    result = world.run()
    assert result.exit_code == 1
    assert result.stderr.startswith("ia: newest backup is 9d old (max 8d)")


def test_backup_check_exit_one_when_no_backups(world_factory: Any) -> None:
    world = world_factory(hostinger(1002, backups=[]))
    result = world.run()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["ia: no complete backup found"]


def test_backup_check_exit_one_when_vultr_schedule_disabled(world_factory: Any) -> None:
    world = world_factory(vultr(backup_schedule={"enabled": False, "type": "daily"}))
    result = world.run()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["chat: backup schedule is disabled (inventory expects daily)"]


def test_backup_check_exit_one_when_vultr_schedule_enabled_missing(world_factory: Any) -> None:
    # docs/providers.md: a schedule without "enabled" is not enabled.
    world = world_factory({"vultr": {"instances": [{"id": VULTR_ID, "backup_schedule": None}]}})
    result = world.run("--json")
    assert result.exit_code == 1
    chat = json.loads(result.stdout)["hosts"][0]
    assert chat["schedule"]["enabled"] is False
    assert chat["status"] == "missing"


def test_backup_check_exit_one_when_vultr_schedule_of_wrong_type(world_factory: Any) -> None:
    world = world_factory(vultr(backup_schedule={"type": "weekly"}))
    result = world.run()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["chat: backup schedule is weekly, inventory expects daily"]


def test_backup_check_exit_one_when_vultr_schedule_every_other_day(world_factory: Any) -> None:
    world = world_factory(vultr(backup_schedule={"type": "daily_alt_odd"}))
    result = world.run()
    assert result.exit_code == 1
    assert "daily_alt_odd (runs every other day), inventory expects daily" in result.stderr


def test_backup_check_exit_one_when_vultr_auto_backups_off(world_factory: Any) -> None:
    world = world_factory(vultr(features=["ipv6"]))
    result = world.run()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "chat: automatic backups are off: 'auto_backups' is not in the instance features"
    ]


def test_backup_check_warns_exit_zero_when_hostinger_snapshot_expires_soon(world_factory: Any) -> None:
    world = world_factory(hostinger(1001, snapshot={"created": "18d", "expires": "2d"}))
    result = world.run()
    assert result.exit_code == 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("chat2: warning: current snapshot ")
    assert " expires in " in line and line.endswith("(a warning, not a failure)")
    report = json.loads(world.run("--json").stdout)
    chat2 = report["hosts"][1]
    assert (chat2["status"], chat2["exit_code"]) == ("warn", 0)
    assert 0 < chat2["snapshot"]["expires_in_seconds"] <= 2 * 86400


def test_backup_check_exit_four_when_api_answers_5xx(world_factory: Any) -> None:
    world = world_factory(
        {"vultr": {"faults": {"fail_first": 100000}}, "hostinger": {"faults": {"fail_first": 100000}}}
    )
    result = world.run()
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["chat", "chat2", "ia"]
    assert all("HTTP 503" in line and "gave up" in line for line in lines)
    only_gets(world)


def test_backup_check_exit_four_when_api_not_listening(world_factory: Any) -> None:
    world = world_factory()
    down = closed_port_url()
    result = world.run(env={"VULTR_API_URL": f"{down}/vultr/v2", "HOSTINGER_API_URL": f"{down}/hostinger"})
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["chat", "chat2", "ia"]
    assert all("refused" in line.lower() for line in lines)


def test_backup_check_exit_zero_when_429_storm_is_retried(world_factory: Any) -> None:
    faults = {"rate_limit_every": 2, "retry_after": "1"}
    world = world_factory({"vultr": {"faults": faults}, "hostinger": {"faults": faults}})
    result = world.run()
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    statuses = [entry["status"] for entry in world.sim.journal()]
    assert statuses.count(429) >= 3  # the storm happened and every 429 was retried
    only_gets(world)


def test_backup_check_exit_78_when_token_wrong(world_factory: Any) -> None:
    world = world_factory()
    result = world.run(env={"VULTR_API_KEY": "not-the-right-token-9f8e"})
    assert result.exit_code == 78
    [line] = result.stderr.splitlines()
    assert line.startswith("chat: reading the instance: vultr API HTTP 401")
    assert "not-the-right-token-9f8e" not in result.output


def test_backup_check_exit_78_when_token_missing(world_factory: Any) -> None:
    world = world_factory()
    result = world.run(env={"HOSTINGER_API_TOKEN": ""})
    assert result.exit_code == 78
    assert result.stderr.splitlines() == [
        "chat2: HOSTINGER_API_TOKEN is not set (needed for host chat2)",
        "ia: HOSTINGER_API_TOKEN is not set (needed for host ia)",
    ]


def test_backup_check_exit_78_when_instance_not_set(world_factory: Any, tmp_path: Path) -> None:
    world = world_factory()
    world.inventory.write_text(INVENTORY.replace("instance = 1002\n", ""), encoding="utf-8")
    result = world.run("--json")
    assert result.exit_code == 78
    ia = json.loads(result.stdout)["hosts"][2]
    assert ia["status"] == "config"
    assert ia["problems"] == [f"{world.inventory}: hosts.ia.instance is not set (run 'opsguard discover')"]
    assert f"ia: {world.inventory}: hosts.ia.instance is not set" in result.stderr


def test_backup_check_exit_four_within_deadline_when_api_hangs(world_factory: Any) -> None:
    world = world_factory({"vultr": {"faults": {"latency": 5}}})
    result = world.run("--deadline", "0.5s", "chat")
    assert result.exit_code == 4
    assert result.stderr.startswith(
        "chat: reading the instance: no answer from the vultr API within 500ms (run deadline)"
    )


def test_backup_check_json_report_matches_schema(world_factory: Any) -> None:
    world = world_factory(vultr(backups=["31h"]))
    result = world.run("--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["exit_code"] == 1
    assert [(host["host"], host["status"]) for host in report["hosts"]] == [
        ("chat", "stale"),
        ("chat2", "ok"),
        ("ia", "ok"),
    ]
    chat = report["hosts"][0]
    assert chat["backup_count"] == 1 and chat["backups_enabled"] is True
    assert chat["schedule"]["type"] == "daily"
    assert report["hosts"][1]["snapshot"]["expires_at"].endswith("Z")


def test_backup_check_checks_only_named_hosts(world_factory: Any) -> None:
    world = world_factory()
    result = world.run("--json", "chat2")
    assert [host["host"] for host in json.loads(result.stdout)["hosts"]] == ["chat2"]
    assert {entry["api"] for entry in world.sim.journal()} == {"hostinger"}


def test_backup_check_exit_78_when_host_unknown(world_factory: Any) -> None:
    world = world_factory()
    result = world.run("nope")
    assert result.exit_code == 78
    assert "no host named 'nope'" in result.stderr
    assert world.sim.journal() == []


def test_backup_check_textfile_parses_with_prometheus_parser(world_factory: Any, tmp_path: Path) -> None:
    world = world_factory(vultr(backups=["31h"]))
    path = tmp_path / "textfile" / "opsguard_backups.prom"
    path.parent.mkdir()
    result = world.run("--textfile", str(path))
    assert result.exit_code == 1
    text = path.read_text()
    values = {
        (sample.name, sample.labels.get("host")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name != "opsguard_backup_status"
    }
    assert values[("opsguard_backup_ok", "chat")] == 0
    assert values[("opsguard_backup_ok", "chat2")] == 1
    assert values[("opsguard_backup_count", "ia")] == 2
    assert 31 * 3600 <= values[("opsguard_backup_newest_age_seconds", "chat")] < 32 * 3600
    assert values[("opsguard_backup_check_exit_code", None)] == 1
    assert ("opsguard_snapshot_expires_timestamp_seconds", "chat2") in values
    assert [entry.name for entry in path.parent.iterdir()] == ["opsguard_backups.prom"]
    assert "sim-vultr-token" not in text


def test_backup_check_exit_78_when_textfile_cannot_be_written(world_factory: Any, tmp_path: Path) -> None:
    world = world_factory()
    result = world.run("--textfile", str(tmp_path / "missing-dir" / "x.prom"))
    assert result.exit_code == 78
    assert "cannot write metrics" in result.stderr


def test_backup_check_prints_table_when_stdout_is_a_terminal(world_factory: Any) -> None:
    world = world_factory(vultr(backups=["31h"]))
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "opsguard", "backup-check"],
            env={**os.environ, **world.env()},
            stdout=terminal,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO once the terminal side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    table = b"".join(chunks).decode()
    assert process.returncode == 1
    rows = [line for line in table.splitlines() if line.strip()]
    assert rows[0].split()[:2] == ["HOST", "PROVIDER"]
    assert rows[1].split()[:3] == ["chat", "vultr", "31h"]
    assert "STALE" in rows[1]
    assert "31h old (max 26h)" in rows[1]
    assert process.stderr == b""  # the reasons are in the table


def test_backup_check_sends_only_gets_when_everything_fails(world_factory: Any) -> None:
    world = world_factory(
        combine(
            vultr(backups=[], features=[], backup_schedule={"enabled": False}),
            hostinger(1001, backups=[]),
            {"hostinger": {"faults": {"rate_limit_every": 3}}},
        )
    )
    result = world.run()
    assert result.exit_code == 1
    assert world.methods() == {"GET"}
