"""The simulator's own public API: journal (in memory and on disk), events, knobs, scenarios, `serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from opsguard.sandbox.simulator import DEFAULT_SCENARIO, Simulator, load_scenario, merge_scenario
from tests.fixtures.simulator_fixtures import HOSTINGER_CHAT2, VULTR_CHAT

StartSimulator = Callable[..., Simulator]


def test_simulator_default_scenario_has_the_three_hosts_on_loopback() -> None:
    scenario = load_scenario()
    [chat] = scenario["vultr"]["instances"]
    assert chat["main_ip"] == "127.0.0.2" and chat["backup_schedule"]["type"] == "daily"
    addresses = {vm["hostname"].split(".")[0]: vm["ipv4"] for vm in scenario["hostinger"]["vms"]}
    assert addresses == {"chat2": ["127.0.0.3"], "ia": ["127.0.0.4"]}


def test_simulator_merge_scenario_merges_instances_by_id_and_appends_new() -> None:
    base = load_scenario()
    merged = merge_scenario(base, {"hostinger": {"page_size": 9, "vms": [{"id": HOSTINGER_CHAT2, "state": "stopped"}, {"id": 7}]}})
    vms = {vm["id"]: vm for vm in merged["hostinger"]["vms"]}
    assert merged["hostinger"]["page_size"] == 9
    assert vms[HOSTINGER_CHAT2]["state"] == "stopped"
    assert vms[HOSTINGER_CHAT2]["ipv4"] == ["127.0.0.3"]  # untouched keys kept
    assert 7 in vms
    assert base["hostinger"]["page_size"] == 2  # the base is not modified


def test_simulator_journal_records_requests_in_memory_and_as_json_lines(simulator: StartSimulator, tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.jsonl"
    sim = simulator(journal_path=journal_path)
    headers = {"Authorization": f"Bearer {sim.env()['VULTR_API_KEY']}"}
    requests.get(f"{sim.vultr_url}/instances", params={"per_page": "1"}, headers=headers, timeout=5)
    requests.post(f"{sim.vultr_url}/snapshots", json={"instance_id": VULTR_CHAT, "description": "d"}, headers=headers, timeout=5)
    journal = sim.journal()
    assert [(entry["method"], entry["path"], entry["status"]) for entry in journal] == [
        ("GET", "/instances", 200),
        ("POST", "/snapshots", 201),
    ]
    assert journal[0]["query"] == {"per_page": "1"} and journal[0]["api"] == "vultr"
    assert journal[1]["body"] == {"instance_id": VULTR_CHAT, "description": "d"}
    on_disk = [json.loads(line) for line in journal_path.read_text().splitlines()]
    assert on_disk == journal
    assert "Bearer" not in journal_path.read_text()  # headers (the token) are never journalled


def test_simulator_snapshot_events_complete_after_requested(simulator: StartSimulator) -> None:
    sim = simulator({"hostinger": {"snapshot_seconds": 0.05}})
    headers = {"Authorization": f"Bearer {sim.env()['HOSTINGER_API_TOKEN']}"}
    url = f"{sim.hostinger_url}/api/vps/v1/virtual-machines/{HOSTINGER_CHAT2}/snapshot"
    action = requests.post(url, headers=headers, timeout=5).json()
    [event] = sim.snapshot_events()
    assert event["action_id"] == action["id"] and event["completed_at"] is None
    assert sim.instance("hostinger", HOSTINGER_CHAT2)["actions_lock"] == "locked"
    time.sleep(0.1)
    [event] = sim.snapshot_events()
    assert event["state"] == "success"
    assert event["completed_at"] is not None and event["completed_at"] > event["requested_at"]
    assert sim.instance("hostinger", HOSTINGER_CHAT2)["actions_lock"] == "unlocked"


def test_simulator_rejects_unknown_knobs_and_fields(simulator: StartSimulator) -> None:
    sim = simulator()
    with pytest.raises(ValueError, match="unknown snapshot fault mode"):
        sim.set_fault("vultr", "snapshot", "sideways")
    with pytest.raises(ValueError, match="unknown api"):
        sim.set_fault("linode", "latency", 1)
    with pytest.raises(KeyError):
        sim.update_instance("vultr", VULTR_CHAT, colour="blue")


def test_simulator_wrong_token_gets_401_in_each_api_format(simulator: StartSimulator) -> None:
    sim = simulator()
    vultr = requests.get(f"{sim.vultr_url}/instances", headers={"Authorization": "Bearer nope"}, timeout=5)
    hostinger = requests.get(f"{sim.hostinger_url}/api/vps/v1/virtual-machines", timeout=5)
    assert vultr.status_code == 401 and set(vultr.json()) == {"error", "status"}
    assert hostinger.status_code == 401 and set(hostinger.json()) == {"message", "correlation_id"}


def test_simulator_serve_subcommand_prints_urls_and_serves(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.jsonl"
    command = [sys.executable, "-m", "opsguard.sandbox", "serve", "--scenario", str(DEFAULT_SCENARIO), "--journal", str(journal_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        vultr_line = process.stdout.readline().strip()
        hostinger_line = process.stdout.readline().strip()
        assert vultr_line.startswith("export VULTR_API_URL=http://127.0.0.1:")
        assert hostinger_line.startswith("export HOSTINGER_API_URL=http://127.0.0.1:")
        vultr_url = vultr_line.split("=", 1)[1]
        token = load_scenario()["vultr"]["token"]
        answer = requests.get(f"{vultr_url}/instances/{VULTR_CHAT}", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["instance"]["main_ip"] == "127.0.0.2"
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert json.loads(journal_path.read_text().splitlines()[0])["path"] == f"/instances/{VULTR_CHAT}"
    assert token not in vultr_line + hostinger_line
