"""`opsguard discover` through the real CLI against the simulator: matches by IP, paste lines, exit codes."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from opsguard.sandbox.simulator import Simulator
from tests.fixtures.cli_fixtures import run_cli
from tests.fixtures.simulator_fixtures import HOSTINGER_CHAT2, HOSTINGER_IA, VULTR_CHAT, simulator_env

StartSimulator = Callable[..., Simulator]

INVENTORY = """
[settings]
snapshot_poll = "0.2s"

[hosts.chat]
address = "127.0.0.2"
provider = "vultr"
roles = ["zpro"]

[hosts.chat2]
address = "127.0.0.3"
provider = "hostinger"
roles = ["zpro"]

[hosts.ia]
address = "127.0.0.4"
provider = "hostinger"
roles = ["integrations"]
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(INVENTORY)
    return path


def test_discover_matches_hosts_by_ip_and_prints_paste_lines(simulator: StartSimulator, inventory: Path) -> None:
    result = run_cli("-i", str(inventory), "discover", env=simulator_env(simulator()))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f'[hosts.chat] instance = "{VULTR_CHAT}"' in lines
    assert f"[hosts.chat2] instance = {HOSTINGER_CHAT2}" in lines
    assert f"[hosts.ia] instance = {HOSTINGER_IA}" in lines
    instance_row = next(line for line in lines if line.strip().startswith(VULTR_CHAT))
    assert "127.0.0.2" in instance_row and instance_row.rstrip().endswith("chat")
    host_row = next(line for line in lines if line.strip().startswith("chat2 "))
    assert f"hostinger {HOSTINGER_CHAT2}" in host_row and "matched" in host_row


def test_discover_pasted_lines_make_a_valid_inventory(simulator: StartSimulator, inventory: Path) -> None:
    result = run_cli("-i", str(inventory), "discover", "--json", env=simulator_env(simulator()))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    text = inventory.read_text()
    for line in report["paste"]:
        table, assignment = line.split("] ", 1)
        text = text.replace(f"{table}]\n", f"{table}]\n{assignment}\n")
    inventory.write_text(text)
    validated = run_cli("-i", str(inventory), "validate")
    assert validated.exit_code == 0, validated.output
    assert "instance not set" not in validated.output
    again = run_cli("-i", str(inventory), "discover", "--json", env=simulator_env(simulator()))
    assert json.loads(again.stdout)["paste"] == []
    assert {host["status"] for host in json.loads(again.stdout)["hosts"]} == {"already set"}


def test_discover_json_lists_instances_and_matches(simulator: StartSimulator, inventory: Path) -> None:
    result = run_cli("-i", str(inventory), "discover", "--json", env=simulator_env(simulator()))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    vultr = report["providers"]["vultr"]
    assert vultr["status"] == "ok"
    assert vultr["instances"][0]["instance"] == VULTR_CHAT
    assert vultr["instances"][0]["public_ips"] == ["127.0.0.2"]
    assert vultr["instances"][0]["hosts"] == ["chat"]
    hosts = {host["name"]: host for host in report["hosts"]}
    assert hosts["ia"]["matches"] == [{"provider": "hostinger", "instance": HOSTINGER_IA}]
    assert hosts["ia"]["resolved"] == ["127.0.0.4"]


def test_discover_skips_provider_whose_token_is_missing(simulator: StartSimulator, inventory: Path) -> None:
    env = simulator_env(simulator())
    env["HOSTINGER_API_TOKEN"] = ""
    result = run_cli("-i", str(inventory), "discover", env=env)
    assert result.exit_code == 0, result.output
    assert "HOSTINGER_API_TOKEN is not set; skipping hostinger" in result.stderr
    assert f'[hosts.chat] instance = "{VULTR_CHAT}"' in result.stdout
    assert "[hosts.chat2]" not in result.stdout


def test_discover_without_any_token_exits_78(inventory: Path) -> None:
    result = run_cli("-i", str(inventory), "discover")
    assert result.exit_code == 78
    assert "VULTR_API_KEY" in result.stderr and "HOSTINGER_API_TOKEN" in result.stderr


def test_discover_unreachable_api_exits_4_and_still_lists_the_other(simulator: StartSimulator, inventory: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = simulator_env(simulator())
    env["VULTR_API_URL"] = f"http://127.0.0.1:{port}/v2"
    result = run_cli("-i", str(inventory), "discover", env=env)
    assert result.exit_code == 4, result.output
    assert "vultr API" in result.stderr and "Connection refused" in result.stderr
    assert f"[hosts.chat2] instance = {HOSTINGER_CHAT2}" in result.stdout


def test_discover_wrong_token_exits_78_with_hint(simulator: StartSimulator, inventory: Path) -> None:
    env = simulator_env(simulator())
    env["VULTR_API_KEY"] = "not-the-key"
    result = run_cli("-i", str(inventory), "discover", env=env)
    assert result.exit_code == 78
    assert "access control list" in result.stderr


def test_discover_flags_an_instance_id_that_differs_from_inventory(simulator: StartSimulator, tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(INVENTORY.replace('provider = "hostinger"\nroles = ["integrations"]', 'provider = "hostinger"\ninstance = 555\nroles = ["integrations"]'))
    result = run_cli("-i", str(path), "discover", "--json", env=simulator_env(simulator()))
    assert result.exit_code == 0, result.output
    hosts = {host["name"]: host for host in json.loads(result.stdout)["hosts"]}
    assert hosts["ia"]["status"] == "differs from inventory"
    assert hosts["ia"]["paste"] == f"[hosts.ia] instance = {HOSTINGER_IA}"
