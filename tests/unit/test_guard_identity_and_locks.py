"""The SSH connection must reach the snapshotted machine; the remote lock survives a reconnect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ConfigError, LockHeld, Refused
from opsguard.locks import RemoteLock, owner_record
from opsguard.providers import provider_named
from tests.unit.fakes import FakeConnection, FakeProvider, FakeResult, guard, write_inventory


@dataclass
class ConnectionTo(FakeConnection):
    """A fake connection that reached a given peer address."""

    peer_address: str = "10.9.9.2"


def test_guard_refuses_when_ssh_reached_another_address_than_the_instance(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    connection = ConnectionTo(peer_address="10.66.66.66")
    with pytest.raises(Refused, match=r"SSH reached 10.66.66.66, which is not the instance's address"), \
            guard(inventory, provider, connection):
        pass
    assert provider.created == 0
    assert connection.user_commands() == []


def test_guard_proceeds_when_ssh_reached_the_instance_address(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path), ConnectionTo(peer_address="10.9.9.2")
    with guard(inventory, FakeProvider(), connection) as change:
        change.run("touch /etc/changed")
    assert connection.user_commands() == ["touch /etc/changed"]


class LockHost:
    """Answers the remote lock protocol from a dict standing for the host's /run/lock."""

    def __init__(self) -> None:
        self.owner: str | None = None

    def run(self, command: str, *, timeout: float, **_: Any) -> FakeResult:
        if "ACQUIRED" in command:
            if self.owner is None:
                self.owner = command.split("printf '%s' ")[1].split(" > ")[0].strip("'")
                return FakeResult(command, 0, "ACQUIRED\n")
            return FakeResult(command, 0, "HELD\n" + self.owner)
        return FakeResult(command, 0, "")


def test_remote_lock_reacquire_takes_lock_again_after_reboot_emptied_it() -> None:
    host = LockHost()
    lock = RemoteLock(host, "chat", "/run/lock/opsguard")
    lock.acquire(owner_record("run-1", "test"))
    host.owner = None  # the reboot emptied /run/lock
    lock.reacquire()
    assert host.owner is not None and '"run_id": "run-1"' in host.owner


def test_remote_lock_reacquire_accepts_lock_still_ours() -> None:
    host = LockHost()
    lock = RemoteLock(host, "chat", "/run/lock/opsguard")
    lock.acquire(owner_record("run-1", "test"))
    lock.reacquire()  # a reconnect without a reboot: the dir is still there, with our run id


def test_remote_lock_reacquire_refuses_when_another_run_took_it() -> None:
    host = LockHost()
    lock = RemoteLock(host, "chat", "/run/lock/opsguard")
    lock.acquire(owner_record("run-1", "test"))
    host.owner = '{"run_id": "run-2", "user": "alice"}'
    with pytest.raises(LockHeld, match="run-2"):
        lock.reacquire()


def test_provider_refuses_plain_http_to_a_non_loopback_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", "token-for-test")
    monkeypatch.setenv("VULTR_API_URL", "http://api.example.com/v2")
    with pytest.raises(ConfigError, match="plain http is allowed only to a loopback address"):
        provider_named("vultr")
    monkeypatch.setenv("VULTR_API_URL", "http://127.0.0.1:9/v2")
    assert provider_named("vultr") is not None
