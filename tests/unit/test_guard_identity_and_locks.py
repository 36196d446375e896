"""The SSH connection must reach the snapshotted machine; the remote lock survives a reconnect."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ConfigError, LockHeld, OutcomeUnknown, Refused
from opsguard.guard import seams, snapshot_guard
from opsguard.ledger import Ledger
from opsguard.locks import RemoteLock, owner_record
from opsguard.providers import provider_named
from tests.unit.fakes import FakeConnection, FakeProvider, FakeResult, guard, write_inventory


def test_guard_refuses_when_ssh_reached_another_address_than_the_instance(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    connection = FakeConnection(peer_address="10.66.66.66")
    with pytest.raises(Refused, match=r"SSH reached 10.66.66.66, which is not the instance's address"), \
            guard(inventory, provider, connection):
        pass
    assert provider.created == 0
    assert connection.commands == [], "nothing at all may be sent to a machine that failed the identity check"


def test_guard_refuses_when_connection_cannot_say_which_address_it_reached(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    connection = FakeConnection(peer_address=None)
    with pytest.raises(Refused, match="cannot say which address it reached"), guard(inventory, provider, connection):
        pass
    assert provider.created == 0
    assert connection.commands == []


def test_guard_proceeds_when_ssh_reached_the_instance_address(tmp_path: Path) -> None:
    inventory, connection = write_inventory(tmp_path), FakeConnection(peer_address="10.9.9.2")
    with guard(inventory, FakeProvider(), connection) as change:
        change.run("touch /etc/changed")
    assert connection.user_commands() == ["touch /etc/changed"]


class Rebooting:
    """A host that reboots: the first connection reached the instance, the next one reaches ``after``."""

    def __init__(self, after: str | None) -> None:
        self.first = FakeConnection(peer_address="10.9.9.2")
        self.second = FakeConnection(peer_address=after)
        self.opened = 0

    def __call__(self, host: Any, settings: Any) -> FakeConnection:
        self.opened += 1
        return self.first if self.opened == 1 else self.second


@pytest.mark.parametrize("after", ["10.66.66.66", None], ids=["other-machine", "no-peer-address"])
def test_guard_reconnect_to_another_machine_sends_it_nothing_and_is_unknown(tmp_path: Path, after: str | None) -> None:
    """Hole 3: the peer is checked BEFORE the new connection is used; the cleanup (record, lock release) never
    reaches it; a refusal after the change started is "outcome unknown", never "nothing was changed"."""
    inventory, hosts = write_inventory(tmp_path), Rebooting(after)
    with seams(provider=lambda host: FakeProvider(), connect=hosts, resolve=lambda address: {address}), \
            pytest.raises(OutcomeUnknown) as raised, snapshot_guard("chat", reason="test", inventory=inventory) as change:
        change.run("systemctl reboot", name="reboot")
        change.reconnect()
    assert hosts.second.commands == []
    assert hosts.second.closed
    assert raised.value.exit_code == 4
    assert "nothing was changed" not in str(raised.value)
    assert any("rollback point: snapshot snap-1" in line for line in raised.value.lines())
    end = [r for r in Ledger(inventory.settings.state_dir).records("chat") if r["event"] == "run-ended"][-1]
    assert end["outcome"] == "unknown"


class LockHost:
    """Answers the remote lock protocol from a value standing for the host's /run/lock/opsguard/owner."""

    def __init__(self) -> None:
        self.owner: str | None = None

    def run(self, command: str, *, timeout: float, **_: Any) -> FakeResult:
        if "echo ACQUIRED" in command:
            if self.owner is None:
                self.owner = shlex.split(command.split("printf '%s' ")[1].split(" > ")[0])[0]
                return FakeResult(command, 0, "ACQUIRED\n")
            return FakeResult(command, 0, f"HELD\n{self.owner}\nheartbeat_age=2\n")
        return FakeResult(command, 0, "")


def test_remote_lock_reacquire_takes_lock_again_after_reboot_emptied_it() -> None:
    host = LockHost()
    lock = RemoteLock(host, "chat", "/run/lock/opsguard")
    lock.acquire(owner_record("run-1", "test"))
    host.owner = None  # the reboot emptied /run/lock
    lock.reacquire()
    assert host.owner is not None and '"run_id": "run-1"' in host.owner
    assert lock.held


def test_remote_lock_reacquire_accepts_lock_still_ours() -> None:
    host = LockHost()
    lock = RemoteLock(host, "chat", "/run/lock/opsguard")
    lock.acquire(owner_record("run-1", "test"))
    before = host.owner
    lock.reacquire()  # a reconnect without a reboot: the dir is still there, with our run id
    assert lock.held and host.owner == before


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
