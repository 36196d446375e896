"""The guard's side doors, each closed: through the real CLI against sshd hosts and the simulator (the Python API
for hole 2). "Nothing was changed" is judged by the oracle that sees every command line a host received
(GuardWorld.changes: anything not known read-only counts, opsguard's own lock and record aside)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import ReadOnlyViolation
from opsguard.ledger import Ledger
from tests.integration.guard_support import GuardWorld, GuardWorlds, foreign_owner

pytestmark = pytest.mark.integration

UPGRADE = ("apt-get", "-y", "upgrade")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def slow_apt(world: GuardWorld, host: str, seconds: float) -> None:
    """Make apt-get on ``host`` take ``seconds`` (then answer as a healthy host would)."""
    world.hosts.set_responses(host, {"rules": [{"prefix": ["apt-get"], "sleep": seconds, "default": True}]})


def started_on_host(world: GuardWorld, host: str, fragment: str) -> Callable[[], bool]:
    return lambda: any(fragment in line for line in world.sessions(host))


def host_record(world: GuardWorld, host: str) -> dict[str, Any]:
    return json.loads((world.hosts.host(host).root / "var/lib/opsguard/last-change.json").read_text())


# -- hole 1: `opsguard snapshot` obeys the lock and the host's record ----------------------------------------


def test_snapshot_from_another_machine_is_refused_while_a_change_runs_on_chat2(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    slow_apt(world, "chat2", 3.0)
    running = world.popen("exec", "chat2", "--yes", "--", *UPGRADE)
    try:
        wait_for(started_on_host(world, "chat2", "apt-get -y upgrade"), "the change to start on chat2")

        result = world.cli("snapshot", "chat2", env={"OPSGUARD_STATE_DIR": str(tmp_path / "other-machine")})
    finally:
        running.communicate(timeout=60)

    assert result.exit_code == 3, result.output
    assert "remote lock" in result.stderr and "held by run" in result.stderr and "nothing was changed" in result.stderr
    assert len(world.snapshot_posts()) == 1  # only the running change's snapshot: its rollback point survives
    assert running.returncode == 0


def test_snapshot_from_another_machine_refuses_to_overwrite_after_a_change_ended_unknown(
    worlds: GuardWorlds, tmp_path: Path
) -> None:
    world = worlds()
    world.hosts.set_responses("chat2", {"rules": [{"prefix": ["apt-get"], "drop": True}]})
    dropped = world.exec_upgrade("chat2")
    assert dropped.exit_code == 4, dropped.output
    assert host_record(world, "chat2")["outcome"] == "in-progress"  # the run lost the host before it could say more
    shutil.rmtree(world.lock_dir("chat2"))  # the operator broke the dead run's lock: only the record speaks now
    other = {"OPSGUARD_STATE_DIR": str(tmp_path / "other-machine")}

    refused = world.cli("snapshot", "chat2", env=other)

    assert refused.exit_code == 3, refused.output
    assert "host records that the last change" in refused.stderr and "--overwrite-snapshot" in refused.stderr
    assert len(world.snapshot_posts()) == 1
    forced = world.cli("snapshot", "chat2", "--overwrite-snapshot", env=other)
    assert forced.exit_code == 0, forced.output
    assert len(world.snapshot_posts()) == 2


# -- hole 2: sessions and receipts are capabilities (the public Python API) ------------------------------------


@pytest.fixture
def api_world(worlds: GuardWorlds, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuardWorld]:
    """A world whose environment is this process's, for the Python API."""
    world = worlds()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    yield world


def test_read_only_session_offers_no_connection_and_runs_only_read_only_text(api_world: GuardWorld) -> None:
    from opsguard import read_only_session

    with read_only_session("chat", inventory=api_world.inventory) as session:
        assert not hasattr(session, "connection")
        assert not any("connection" in name.lower() for name in dir(session) if not name.startswith("__"))
        with pytest.raises(AttributeError):
            session.connection = object()  # type: ignore[attr-defined]
        assert session.run("cat /etc/hostname", mutates=False).exit_status in (0, 1)
        with pytest.raises(ReadOnlyViolation, match="not known to be read-only"):
            session.run(f"touch {api_world.hosts.host('chat').root}/tmp/pwned", mutates=False)
        with pytest.raises(ReadOnlyViolation):
            session.run("apt-get -y upgrade")
    assert api_world.changes("chat") == []
    assert not (api_world.hosts.host("chat").root / "tmp" / "pwned").exists()


def test_change_session_cannot_be_given_a_made_up_receipt(api_world: GuardWorld) -> None:
    from opsguard import snapshot_guard
    from opsguard.guard import read_only_session
    from opsguard.receipt import SnapshotReceipt

    with read_only_session("chat", inventory=api_world.inventory) as session, pytest.raises(AttributeError):
        session.receipt = "forged"  # type: ignore[misc,attr-defined]
    with snapshot_guard("chat", reason="api test", inventory=api_world.inventory) as change:
        real = change.receipt
        with pytest.raises(AttributeError):
            change.receipt = SnapshotReceipt(**{**real.to_dict(), "requested_at": real.requested_at,  # type: ignore[misc]
                                                "verified_at": real.verified_at, "checks": real.checks})
        assert change.receipt is real
    assert api_world.commands("chat") == []


def test_change_session_records_every_command_and_runs_undeclared_writes_as_changes(api_world: GuardWorld) -> None:
    from opsguard import snapshot_guard

    target = api_world.hosts.host("chat").root / "tmp" / "written"
    with snapshot_guard("chat", reason="api test", inventory=api_world.inventory) as change:
        change.run("cat /etc/hostname", mutates=False, name="read the hostname")
        change.run(f"echo x > {target}", mutates=False, name="declared read-only, writes")
    assert target.exists()
    steps = [record for record in api_world.ledger("chat", "step")]
    assert [(r["step"], r["phase"]) for r in steps] == [
        ("read the hostname", "read"),
        ("declared read-only, writes", "started"),
        ("declared read-only, writes", "ended"),
    ]
    assert "output redirected" in steps[1]["declared_read_only"]
    assert api_world.last_run_end("chat")["outcome"] == events.OK


# -- hole 4: a refusal after the change started is "outcome unknown", with the way back -------------------------


def test_update_reboot_when_another_run_took_the_lock_meanwhile_is_unknown_not_refused(worlds: GuardWorlds) -> None:
    world = worlds()
    host_vars = world.hosts.host_vars("chat2")
    Path(host_vars["reboot_required_file"]).write_text("*** System restart required ***\n")
    owner = foreign_owner("20261203T000000Z-thief1")
    world.hosts.set_responses("chat2", {"rules": [
        {"prefix": ["systemctl", "reboot"], "drop": "all", "write_file": [
            {"path": host_vars["boot_id_file"], "text": "rebooted-0001\n"},
            # The reboot emptied /run/lock; another run took the lock before we reconnected.
            {"path": str(world.lock_dir("chat2") / "owner"), "text": json.dumps(owner)},
        ]},
    ]})

    result = world.cli("update", "chat2", "--yes", "--allow-reboot", timeout=90)

    assert result.exit_code == 4, result.output
    assert "held by run 20261203T000000Z-thief1" in result.stderr
    assert "nothing was changed" not in result.stderr
    assert "the change had started" in result.stderr
    assert "rollback" in result.stderr.lower() and "opsguard restore chat2 --snapshot" in result.stderr
    assert world.last_run_end("chat2")["outcome"] == events.UNKNOWN


# -- hole 5: locks stay held while a step may still run --------------------------------------------------------


def step_processes(world: GuardWorld, host: str, marker: str) -> list[int]:
    """Given a host and a step's exact command line, return the pids of its processes still running on this machine
    (the sandbox hosts are this machine; an exact match skips the local opsguard whose arguments hold the text too)."""
    result = subprocess.run(["pgrep", "-f", f"^{marker}$"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split()]


def test_exec_timeout_stops_the_step_and_keeps_the_lock_until_a_person_looked(worlds: GuardWorlds) -> None:
    world = worlds()
    marker = "sleep 31.5"  # a real, harmless command, easy to find

    result = world.cli("exec", "chat", "--yes", "--timeout", "1s", "--", marker)

    assert result.exit_code == 4, result.output
    assert "did not finish within 1s" in result.stderr
    assert step_processes(world, "chat", marker) == []  # its process group was stopped
    # Something it started may have left the group (sudo with use_pty, docker exec, setsid): the lock stays.
    assert (world.lock_dir("chat") / "owner").is_file()
    assert "remote lock" in result.stderr and "opsguard unlock chat" in result.stderr
    end = world.last_run_end("chat")
    assert (end["outcome"], end["lock_kept"]) == (events.UNKNOWN, True)
    assert world.cli("unlock", "chat", "--yes", "--reason", "checked: nothing of it runs").exit_code == 0


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_signal_mid_step_is_unknown_and_keeps_the_lock_while_the_step_runs(
    worlds: GuardWorlds, tmp_path: Path, sent: signal.Signals
) -> None:
    world = worlds()
    marker = f"sleep 3.{int(sent)}1"
    running = world.popen("exec", "chat", "--yes", "--", marker)
    try:
        wait_for(lambda: bool(step_processes(world, "chat", marker)), "the step to run on the host")
        running.send_signal(sent)
        _, stderr = running.communicate(timeout=30)
        still = step_processes(world, "chat", marker)

        assert running.returncode == 4, stderr
        assert "interrupted" in stderr and "may still be running" in stderr and "nothing was changed" not in stderr
        assert still, "the step should still run on the host"
        assert (world.lock_dir("chat") / "owner").is_file()  # SAFETY: kept while the step runs
        assert world.last_run_end("chat")["outcome"] == events.UNKNOWN
        other = world.exec_upgrade("chat", env={"OPSGUARD_STATE_DIR": str(tmp_path / "other-machine")})
        assert other.exit_code == 3 and "still runs" in other.stderr, other.output
        refused = world.cli("unlock", "chat", "--yes", "--reason", "test")
        assert refused.exit_code == 3 and "still runs" in refused.stderr, refused.output
    finally:
        for pid in step_processes(world, "chat", marker):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not step_processes(world, "chat", marker), "the step to end")
    assert world.cli("unlock", "chat", "--yes", "--reason", "the step ended").exit_code == 0


# -- hole 6: unlock breaks only a dead owner's lock, compare-and-delete, on the record -------------------------


def test_unlock_refuses_a_lock_whose_owner_on_another_machine_has_a_fresh_heartbeat(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", foreign_owner())
    (lock / "heartbeat").touch()

    refused = world.cli("unlock", "chat", "--yes", "--reason", "looks stuck")

    assert refused.exit_code == 3, refused.output
    assert "heartbeat is fresh" in refused.stderr and "--force" in refused.stderr
    assert (lock / "owner").is_file()
    forced = world.cli("unlock", "chat", "--yes", "--force", "--reason", "alice's laptop is off, I checked")
    assert forced.exit_code == 0, forced.output
    assert not lock.exists()
    (broken,) = world.ledger("chat", events.LOCK_BROKEN)
    assert broken["holder"]["run_id"] == foreign_owner()["run_id"]
    assert broken["reason"] == "alice's laptop is off, I checked" and broken["force"] is True
    assert broken["user"] and broken["machine"]


def test_unlock_of_a_stale_lock_is_recorded_with_who_and_why(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", foreign_owner())
    stale = time.time() - 3600
    (lock / "heartbeat").touch()
    os.utime(lock / "heartbeat", (stale, stale))

    result = world.cli("unlock", "chat", "--yes", "--reason", "alice's run died at 02:00")

    assert result.exit_code == 0, result.output
    (broken,) = world.ledger("chat", events.LOCK_BROKEN)
    assert (broken["reason"], broken["force"]) == ("alice's run died at 02:00", False)
    assert broken["heartbeat_age"] >= 3500


def test_remote_lock_break_removes_nothing_when_another_run_holds_it_now(worlds: GuardWorlds) -> None:
    from opsguard.hostconnection import HostConnection
    from opsguard.inventory import load_inventory
    from opsguard.locks import RemoteLock
    from opsguard.transport import connect

    world = worlds()
    world.hold_remote_lock("chat", foreign_owner("20261203T010101Z-newrun"))
    inventory = load_inventory(world.inventory)
    host = inventory.host("chat")
    connection = HostConnection(host, inventory.settings, connect)
    try:
        answer = RemoteLock(connection, "chat", host.remote_lock).break_lock("20250101T000000Z-0ther1")
    finally:
        connection.close()

    assert answer == "NOT_OURS"
    assert json.loads((world.lock_dir("chat") / "owner").read_text())["run_id"] == "20261203T010101Z-newrun"


# -- hole 9: inputs are checked before anything is asked, snapshotted or sent -----------------------------------


def test_exec_zero_timeout_is_a_configuration_error_before_the_snapshot(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("exec", "chat", "--yes", "--timeout", "0s", "--", *UPGRADE)

    assert result.exit_code == 78, result.output
    assert "--timeout" in result.stderr and "internal error" not in result.stderr
    assert world.snapshot_posts() == [] and world.sessions("chat") == []


def test_exec_command_that_is_not_utf8_is_refused_before_the_snapshot(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("exec", "chat", "--yes", "--", os.fsdecode(b"echo \xff"))

    assert result.exit_code == 78, result.output
    assert "exec command" in result.stderr and "UTF-8" in result.stderr
    assert world.snapshot_posts() == [] and world.sessions("chat") == []
    assert world.ledger("chat") == []  # not even "unknown": nothing started


def test_exec_words_after_the_command_belong_to_the_command(worlds: GuardWorlds) -> None:
    world = worlds()

    unconfirmed = world.cli("exec", "chat", "echo", "--yes")  # --yes is echo's: nobody confirmed
    assert unconfirmed.exit_code == 3, unconfirmed.output
    assert world.snapshot_posts() == []

    result = world.cli("exec", "chat", "--yes", "echo", "--yes")
    assert result.exit_code == 0, result.output
    assert "chat | --yes" in result.stdout


def test_a_refused_run_leaves_the_ledger_and_host_as_they_were(worlds: GuardWorlds) -> None:
    world = worlds()
    world.hold_remote_lock("chat", foreign_owner())

    result = world.exec_upgrade("chat")

    assert result.exit_code == 3, result.output
    assert world.changes("chat") == []
    records = Ledger(world.state_dir).records("chat")
    assert [r["event"] for r in records] == ["run-started", "run-ended"]


def test_the_oracle_sees_changes_no_stub_records(worlds: GuardWorlds) -> None:
    """The oracle's teeth: `mv` has no stub, so the stub journal is blind to it; the session record is not."""
    world = worlds()
    root = world.hosts.host("chat").root
    (root / "tmp" / "a").write_text("x")

    result = world.cli("exec", "chat", "--yes", "--", f"mv {root}/tmp/a {root}/tmp/b")

    assert result.exit_code == 0, result.output
    assert world.commands("chat") == []
    assert any(f"mv {root}/tmp/a {root}/tmp/b" in line for line in world.changes("chat"))
