"""backup-check for unattended runs: health pings, the failure webhook, and overlapping runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsguard.notify import ping
from tests.fixtures.cli_fixtures import REPO_ROOT
from tests.integration.backup_check_support import Receiver, closed_port_url, hostinger, vultr, world_factories

pytestmark = pytest.mark.integration


@pytest.fixture
def world_factory(tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """make(overrides) -> a started simulator world; see backup_check_support.world_factories."""
    yield from world_factories(tmp_path, isolated_environment, monkeypatch)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running loopback Receiver for pings and webhooks."""
    server = Receiver()
    yield server
    server.stop()


def test_backup_check_pings_start_then_success_when_fresh(world_factory: Any, receiver: Receiver) -> None:
    world = world_factory()
    result = world.run("--ping-url", f"{receiver.url}/ping/abc-123")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert receiver.paths() == ["/ping/abc-123/start", "/ping/abc-123"]
    assert all(request.method == "POST" for request in receiver.requests)
    assert receiver.requests[1].body.decode().startswith("backup-check: 3 hosts: 3 ok; exit 0")


def test_backup_check_pings_exit_code_with_problems_when_stale(world_factory: Any, receiver: Receiver) -> None:
    world = world_factory(vultr(backups=["31h"]))
    result = world.run("--ping-url", f"{receiver.url}/ping/abc-123/")
    assert result.exit_code == 1
    assert receiver.paths() == ["/ping/abc-123/start", "/ping/abc-123/1"]
    body = receiver.requests[1].body.decode()
    assert "chat: newest backup is 31h old (max 26h)" in body
    assert "sim-vultr-token" not in body


def test_backup_check_pings_exit_code_when_inventory_invalid(world_factory: Any, receiver: Receiver) -> None:
    world = world_factory()
    world.inventory.write_text("[hosts.chat]\naddress = 'x'\n", encoding="utf-8")
    result = world.run("--ping-url", f"{receiver.url}/p")
    assert result.exit_code == 78
    assert receiver.paths() == ["/p/start", "/p/78"]


def test_backup_check_keeps_exit_code_when_ping_receiver_down(world_factory: Any) -> None:
    world = world_factory()
    down = closed_port_url()
    result = world.run("--ping-url", f"{down}/ping/secret-uuid")
    assert (result.exit_code, result.stdout) == (0, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"opsguard: warning: health ping (start) to {down} failed: ")
    assert lines[1].startswith(f"opsguard: warning: health ping (success) to {down} failed: ")
    assert "secret-uuid" not in result.stderr


def test_backup_check_keeps_failure_exit_code_when_ping_receiver_down(world_factory: Any) -> None:
    world = world_factory(vultr(backups=["31h"]))
    result = world.run("--ping-url", f"{closed_port_url()}/ping/x")
    assert result.exit_code == 1
    assert "health ping (1) to" in result.stderr
    assert "chat: newest backup is 31h old" in result.stderr


def test_ping_returns_warning_within_timeout_when_receiver_never_answers() -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/p"
        warning = ping(url, "start", "x", timeout=0.3)
    assert warning is not None and "health ping (start)" in warning


def test_backup_check_posts_no_webhook_when_all_ok(world_factory: Any, receiver: Receiver) -> None:
    world = world_factory()
    result = world.run("--webhook", f"{receiver.url}/hook")
    assert result.exit_code == 0
    assert receiver.requests == []


def test_backup_check_posts_no_webhook_and_pings_success_when_only_a_warning(
    world_factory: Any, receiver: Receiver
) -> None:
    world = world_factory(hostinger(1001, snapshot={"created": "18d", "expires": "2d"}))
    result = world.run("--webhook", f"{receiver.url}/hook", "--ping-url", f"{receiver.url}/ping")
    assert result.exit_code == 0
    assert "chat2: warning: current snapshot" in result.stderr
    assert receiver.paths() == ["/ping/start", "/ping"]
    assert "1 warn" in receiver.requests[1].body.decode()


def test_backup_check_posts_json_report_to_webhook_when_stale(world_factory: Any, receiver: Receiver) -> None:
    world = world_factory(vultr(backups=["31h"]))
    result = world.run("--webhook", f"{receiver.url}/hook")
    assert result.exit_code == 1
    assert receiver.paths() == ["/hook"]
    assert receiver.requests[0].method == "POST"
    assert receiver.requests[0].content_type == "application/json"
    [report] = receiver.json_bodies()
    assert (report["version"], report["command"], report["exit_code"]) == (2, "backup-check", 1)
    assert report["hosts"][0]["status"] == "stale"
    assert b"sim-vultr-token" not in receiver.requests[0].body


def test_backup_check_keeps_exit_code_when_webhook_down(world_factory: Any) -> None:
    world = world_factory(vultr(backups=["31h"]))
    down = closed_port_url()
    result = world.run("--webhook", f"{down}/hook/secret")
    assert result.exit_code == 1
    assert f"opsguard: warning: webhook to {down} failed: " in result.stderr
    assert "secret" not in result.stderr


def test_backup_check_second_run_exits_four_when_first_still_running(world_factory: Any) -> None:
    # The first run is slowed by API latency; the second starts while it holds the lock.
    world = world_factory({"vultr": {"faults": {"latency": 1.5}}})
    lock = world.state_dir / "backup-check.lock"
    first = subprocess.Popen(
        [sys.executable, "-m", "opsguard", "backup-check"],
        env={**os.environ, **world.env()},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        give_up = time.monotonic() + 20
        while not (lock.exists() and f"pid={first.pid} " in lock.read_text()):
            assert first.poll() is None, "the first run ended before it was seen holding the lock"
            assert time.monotonic() < give_up, "the first run never took the lock"
            time.sleep(0.02)
        second = world.run("--lock-wait", "0.2s")
        first_out, first_err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.exit_code == 4
    assert second.stderr.startswith(f"another backup-check is running (pid {first.pid}, started ")
    assert (first.returncode, first_out, first_err) == (0, "", "")
    third = world.run()
    assert third.exit_code == 0  # the lock is released with the first run


def test_backup_check_second_run_waits_when_first_finishes_in_time(world_factory: Any) -> None:
    world = world_factory({"vultr": {"faults": {"latency": 0.5}}})
    lock = world.state_dir / "backup-check.lock"
    first = subprocess.Popen(
        [sys.executable, "-m", "opsguard", "backup-check"],
        env={**os.environ, **world.env()},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 20
        while not (lock.exists() and f"pid={first.pid} " in lock.read_text()):
            assert first.poll() is None and time.monotonic() < give_up
            time.sleep(0.02)
        second = world.run("--lock-wait", "30s")
    finally:
        first.wait(timeout=60)
    assert (first.returncode, second.exit_code) == (0, 0)
    assert second.stderr == ""
