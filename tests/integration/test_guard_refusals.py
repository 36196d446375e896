"""The snapshot guard refuses, through the real CLI, and then nothing reaches the host.

Each case runs `opsguard exec HOST --yes -- apt-get -y upgrade` against real sshd hosts and the
provider simulator and asserts: the documented exit code, a message naming the cause, no stub
command in the host's journal, and (for refusals before the snapshot) no snapshot POST.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ReceiptExpired
from tests.fixtures.cli_fixtures import CliResult
from tests.integration.guard_support import (
    GuardWorld,
    GuardWorlds,
    closed_port,
    faults,
    foreign_owner,
    hostinger_vm,
    known_hosts_with_other_key,
    known_hosts_without,
    vultr_instance,
)

pytestmark = pytest.mark.integration

Overrides = dict[str, Any]


def assert_nothing_changed(world: GuardWorld, host: str, *, snapshot_posts: int = 0) -> None:
    """Judged by every command line the host received: nothing but reads and opsguard's own lock and record;
    no stub command at all; exactly ``snapshot_posts`` snapshot POSTs."""
    assert world.changes(host) == [], f"{host} received changing commands although the guard refused"
    assert world.commands(host) == [], f"{host} ran commands although the guard refused"
    assert len(world.snapshot_posts()) == snapshot_posts, world.snapshot_posts()


def assert_refused(result: CliResult, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), f"{fragment!r} not in stderr: {result.stderr}"


def assert_ledger_refused(world: GuardWorld, host: str) -> None:
    end = world.last_run_end(host)
    assert end["outcome"] == "refused", end
    assert end["snapshot_id"] is None
    assert world.ledger(host, "step") == [], "a refused run must record no step"


# -- the provider: token, instance state, identity ---------------------------------------------------


@pytest.mark.parametrize(("host", "variable"), [("chat", "VULTR_API_KEY"), ("chat2", "HOSTINGER_API_TOKEN")])
def test_exec_refuses_with_config_error_78_when_provider_rejects_token(
    worlds: GuardWorlds, host: str, variable: str
) -> None:
    world = worlds()

    result = world.exec_upgrade(host, env={variable: "tok-wrong-but-harmless"})

    # docs/design.md: a token the provider rejects is configuration (78); the message names the variable.
    assert_refused(result, 78, f"host {host}", variable, "HTTP 401")
    assert "tok-wrong-but-harmless" not in result.output
    assert_nothing_changed(world, host)
    assert_ledger_refused(world, host)


@pytest.mark.parametrize(
    ("host", "overrides", "fragment"),
    [
        ("chat", vultr_instance(power_status="stopped"), "not running"),
        ("chat2", hostinger_vm(state="stopped"), "not running"),
    ],
    ids=["vultr", "hostinger"],
)
def test_exec_refuses_when_instance_is_stopped(
    worlds: GuardWorlds, host: str, overrides: Overrides, fragment: str
) -> None:
    world = worlds(overrides)

    result = world.exec_upgrade(host)

    assert_refused(result, 3, f"host {host}", fragment, "stopped", "nothing was changed")
    assert_nothing_changed(world, host)
    assert_ledger_refused(world, host)


@pytest.mark.parametrize(
    ("host", "overrides"),
    [
        ("chat", vultr_instance(server_status="locked")),
        ("chat", faults("vultr", locked_500=True)),
        ("chat2", hostinger_vm(actions_lock="locked")),
    ],
    ids=["vultr-server-status", "vultr-500-locked", "hostinger-actions-lock"],
)
def test_exec_refuses_when_instance_is_locked_by_a_provider_action(
    worlds: GuardWorlds, host: str, overrides: Overrides
) -> None:
    world = worlds(overrides)

    result = world.exec_upgrade(host)

    assert_refused(result, 3, f"host {host}", "locked by another provider action", "nothing was changed")
    assert_nothing_changed(world, host)
    assert_ledger_refused(world, host)


@pytest.mark.parametrize(
    ("host", "overrides"),
    [("chat", vultr_instance(main_ip="127.0.0.9")), ("chat2", hostinger_vm(ipv4=["127.0.0.9"]))],
    ids=["vultr", "hostinger"],
)
def test_exec_refuses_when_instance_ip_differs_from_host_address(
    worlds: GuardWorlds, host: str, overrides: Overrides
) -> None:
    world = worlds(overrides)

    result = world.exec_upgrade(host)

    assert_refused(result, 3, f"host {host}", "identity mismatch", "127.0.0.9")
    assert_nothing_changed(world, host)
    assert_ledger_refused(world, host)


# -- the snapshot itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "api", "mode", "fragments"),
    [
        ("chat", "vultr", "stuck", ("snapshot not complete after", "snapshot_timeout", "pending")),
        ("chat2", "hostinger", "stuck", ("snapshot not complete after", "snapshot_timeout")),
        ("chat", "vultr", "unknown_state", ("snapshot not complete after", "processing_v2")),
        ("chat2", "hostinger", "unknown_state", ("snapshot not complete after", "processing_v2")),
        ("chat", "vultr", "error", ("snapshot failed at the provider", "deleted")),
        ("chat2", "hostinger", "error", ("snapshot failed at the provider", "error")),
        ("chat", "vultr", "zero_size", ("size is 0",)),
        ("chat", "vultr", "untagged", ("does not carry our tag",)),
        ("chat2", "hostinger", "stale_after_success", ("verifying the snapshot", "it is the old one")),
        ("chat2", "hostinger", "locked_after_success", ("snapshot not complete after", "VM still locked")),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_exec_refuses_when_snapshot_is_not_verified(
    worlds: GuardWorlds, host: str, api: str, mode: str, fragments: tuple[str, ...]
) -> None:
    # Modes that never finish need a short snapshot_timeout; the others end on their own, so
    # they keep a long one (a slow machine must not turn their refusal into a timeout).
    never_finishes = mode in ("stuck", "unknown_state", "locked_after_success")
    world = worlds(faults(api, snapshot=mode), settings={"snapshot_timeout": "0.3s" if never_finishes else "10s"})

    result = world.exec_upgrade(host)

    assert_refused(result, 3, *fragments, "nothing was changed")
    assert f"{host}" in result.stderr
    # One snapshot was requested (never re-sent), none verified, nothing ran.
    assert_nothing_changed(world, host, snapshot_posts=1)
    assert world.ledger(host, "snapshot-verified") == []
    assert len(world.ledger(host, "snapshot-failed")) == 1
    assert_ledger_refused(world, host)


@pytest.mark.parametrize(("host", "api"), [("chat", "vultr"), ("chat2", "hostinger")])
def test_exec_recovers_snapshot_by_lookup_when_create_answer_is_a_5xx(worlds: GuardWorlds, host: str, api: str) -> None:
    # The POST created the snapshot but a 502 came back: the client must look it up, never re-POST.
    world = worlds(faults(api, post_lost="5xx"))

    result = world.exec_upgrade(host)

    assert result.exit_code == 0, result.output
    assert len(world.snapshot_posts()) == 1
    assert [entry["status"] for entry in world.snapshot_posts()] == [502]
    requested = world.ledger(host, "snapshot-requested")
    assert len(requested) == 1 and requested[0]["recovered"] is True
    (event,) = world.snapshot_events()
    verified = world.ledger(host, "snapshot-verified")[0]["receipt"]
    assert verified["recovered"] is True
    assert verified["snapshot_id"] == str(event["snapshot_id"])
    (call,) = world.hosts.journal(host)
    assert call["argv"] == ["apt-get", "-y", "upgrade"]
    assert call["time"] > event["completed_at"]


@pytest.mark.parametrize(("host", "api"), [("chat", "vultr"), ("chat2", "hostinger")])
def test_exec_ends_unknown_and_changes_nothing_when_create_post_fails_without_creating(
    worlds: GuardWorlds, host: str, api: str
) -> None:
    # The POST got a 503 and created nothing: the client looks for it, finds none, and must not re-POST.
    world = worlds(faults(api, fail_first=1, fault_methods=["POST"]))

    result = world.exec_upgrade(host)

    # The snapshot may or may not exist (outcome unknown, 4), but the host was never touched.
    assert_refused(result, 4, f"host {host}", "creating the snapshot", "may or may not exist", "nothing was changed")
    assert_nothing_changed(world, host, snapshot_posts=1)
    assert world.snapshot_events() == []  # the simulator really made none
    assert [entry["status"] for entry in world.snapshot_posts()] == [503]
    failed = world.ledger(host, "snapshot-failed")
    assert len(failed) == 1 and failed[0]["stage"] == "create"
    assert_ledger_refused(world, host)


def test_exec_exits_4_when_provider_api_is_unreachable(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.exec_upgrade("chat", env={"VULTR_API_URL": f"http://127.0.0.1:{closed_port()}/v2"})

    assert_refused(result, 4, "host chat", "reading the instance", "Connection refused", "nothing was changed")
    assert_nothing_changed(world, "chat")  # the simulator never heard of it either
    assert world.sim.journal() == []
    assert_ledger_refused(world, "chat")


# -- locks -----------------------------------------------------------------------------------------


def test_exec_refuses_naming_holder_when_remote_lock_is_held(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", foreign_owner())
    owner_text = (lock / "owner").read_text()

    result = world.exec_upgrade("chat")

    assert_refused(result, 3, "host chat", "remote lock", "alice@alice-laptop", "20250101T000000Z-0ther1",
                   "opsguard unlock chat")  # fmt: skip
    assert_nothing_changed(world, "chat")
    # The other run's lock is left exactly as it was.
    assert (lock / "owner").read_text() == owner_text
    assert_ledger_refused(world, "chat")


def test_exec_refuses_naming_holder_when_local_lock_is_held_by_another_process(worlds: GuardWorlds) -> None:
    world = worlds()
    holder_script = (
        "import sys, json\n"
        "from opsguard.locks import LocalLock\n"
        f"lock = LocalLock({str(world.state_dir)!r}, 'chat')\n"
        "lock.acquire({'run_id': 'run-held-elsewhere', 'user': 'bob', 'machine': 'ops-box', 'pid': 7, 'since': 'now'})\n"
        "print('LOCKED', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"

        result = world.exec_upgrade("chat")
    finally:
        holder.communicate("", timeout=10)  # closing its stdin ends it; the kernel drops the flock

    assert_refused(result, 3, "host chat", "locked by run run-held-elsewhere", "bob@ops-box", "nothing was changed")
    assert_nothing_changed(world, "chat")
    assert not world.lock_dir("chat").exists()  # refused before touching the host
    assert_ledger_refused(world, "chat")


# -- SSH host keys ---------------------------------------------------------------------------------


def test_exec_refuses_with_keyscan_hint_when_host_key_is_unknown(worlds: GuardWorlds, tmp_path: Path) -> None:
    known_hosts = known_hosts_without(worlds.hosts, "chat", tmp_path / "known_hosts_without_chat")
    world = worlds(settings={"known_hosts": str(known_hosts)})

    result = world.exec_upgrade("chat")

    assert_refused(result, 3, "host chat", "host key is not in", "ssh-keyscan -p")
    assert_nothing_changed(world, "chat")
    assert not world.lock_dir("chat").exists()
    assert_ledger_refused(world, "chat")


def test_exec_refuses_when_host_key_changed(worlds: GuardWorlds, tmp_path: Path) -> None:
    known_hosts = known_hosts_with_other_key(worlds.hosts, "chat", tmp_path / "known_hosts_other_key")
    world = worlds(settings={"known_hosts": str(known_hosts)})

    result = world.exec_upgrade("chat")

    assert_refused(result, 3, "host chat", "host key changed", "man-in-the-middle")
    assert_nothing_changed(world, "chat")
    assert not world.lock_dir("chat").exists()
    assert_ledger_refused(world, "chat")


# -- receipt and confirmation ----------------------------------------------------------------------


def test_change_run_raises_receipt_expired_when_receipt_outlives_ttl(
    worlds: GuardWorlds, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsguard.guard import snapshot_guard

    world = worlds(settings={"receipt_ttl": "0.2s"})
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)

    with (
        pytest.raises(ReceiptExpired) as caught,
        snapshot_guard("chat", reason="ttl test", inventory=world.inventory) as change,
    ):
        assert change.receipt is not None
        time.sleep(0.4)
        change.run("apt-get -y upgrade")

    assert caught.value.exit_code == 3
    assert "receipt_ttl" in str(caught.value) and "host chat" in str(caught.value)
    # The snapshot was taken and verified, but the expired receipt stopped the change.
    assert_nothing_changed(world, "chat", snapshot_posts=1)
    assert len(world.ledger("chat", "snapshot-verified")) == 1
    end = world.last_run_end("chat")
    assert end["outcome"] == "aborted"
    assert world.ledger("chat", "step") == []


def test_exec_without_yes_off_a_terminal_refuses_before_any_api_call(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("exec", "chat", "--", "apt-get", "-y", "upgrade")

    assert_refused(result, 3, "host chat", "not on a terminal", "--yes", "nothing was changed")
    assert_nothing_changed(world, "chat")
    assert world.sim.journal() == []  # not even a read: the question comes first
    assert world.ledger() == []
