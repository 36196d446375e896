"""The snapshot guard lets a change through, in order, and says honestly how it ended.

Real sshd hosts + the provider simulator + the real CLI: the first change on a host happens after
the simulator completed its snapshot, the ledger holds the receipt, `opsguard snapshot --json`
prints it without touching SSH, and `opsguard exec` reports ok / failed / unknown truthfully.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.guard_support import (
    INSTANCE_OF,
    PROVIDER_OF,
    UPGRADE,
    GuardWorld,
    GuardWorlds,
)

pytestmark = pytest.mark.integration

RECEIPT_FIELDS = ("host", "provider", "instance", "snapshot_id", "created_at", "verified_at", "expires_at", "run_id")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def events_of_run(world: GuardWorld, run_id: str) -> list[str]:
    """Given a run id, return its ledger events in order, steps as step:<phase>."""
    return [
        f"step:{record['phase']}" if record["event"] == "step" else record["event"]
        for record in world.ledger()
        if record.get("run_id") == run_id
    ]


# -- the guarded change ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_exec_runs_command_only_after_provider_completed_the_snapshot(worlds: GuardWorlds, host: str) -> None:
    world = worlds()

    result = world.exec_upgrade(host)

    assert result.exit_code == 0, result.output
    (event,) = world.snapshot_events()
    assert event["instance"] == INSTANCE_OF[host] and event["completed_at"] is not None
    (call,) = world.hosts.journal(host)
    assert call["argv"] == list(UPGRADE)
    # The whole point: the first change on the host comes after the provider finished the snapshot.
    assert call["time"] > event["completed_at"]
    # The ledger holds the receipt for that very snapshot, and the run in order.
    (verified,) = world.ledger(host, "snapshot-verified")
    receipt = verified["receipt"]
    assert receipt["snapshot_id"] == str(event["snapshot_id"])
    assert (receipt["host"], receipt["provider"], receipt["instance"]) == (host, PROVIDER_OF[host], INSTANCE_OF[host])
    run_id = receipt["run_id"]
    assert events_of_run(world, run_id) == [
        "run-started", "snapshot-requested", "snapshot-verified", "step:started", "step:ended", "run-ended",
    ]  # fmt: skip
    assert verified["epoch"] < call["time"]
    end = world.last_run_end(host)
    assert (end["outcome"], end["snapshot_id"], end["failed_step"]) == ("ok", receipt["snapshot_id"], None)
    (step_end,) = [record for record in world.ledger(host, "step") if record["phase"] == "ended"]
    assert (step_end["result"], step_end["exit_status"], step_end["command"]) == ("ok", 0, "apt-get -y upgrade")
    # Locks are released: the remote lock dir is gone, nothing else touched the host.
    assert not world.lock_dir(host).exists()
    assert [entry["argv"] for entry in world.hosts.journal(host)] == [list(UPGRADE)]
    assert f"{host} | Setting up openssl" in result.stdout
    assert f"snapshot {receipt['snapshot_id']} is the rollback point" in result.stderr


def test_exec_on_hostinger_records_the_snapshot_it_overwrites(worlds: GuardWorlds) -> None:
    world = worlds()
    before = world.sim.instance("hostinger", 1001)["_snapshot"]["id"]

    result = world.exec_upgrade("chat2")

    assert result.exit_code == 0, result.output
    (requested,) = world.ledger("chat2", "snapshot-requested")
    assert requested["previous_snapshot"]["snapshot_id"] == str(before)
    receipt = world.ledger("chat2", "snapshot-verified")[0]["receipt"]
    assert receipt["previous_snapshot_id"] == str(before)
    assert receipt["snapshot_id"] != str(before)
    assert parse_time(receipt["expires_at"]) > datetime.now(UTC)


# -- opsguard snapshot (for scripts) ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_snapshot_json_prints_receipt_under_the_remote_lock_and_host_record(worlds: GuardWorlds, host: str) -> None:
    """Hole 1: `snapshot` obeys the same rules as a change: remote lock, on-host record, ledger."""
    world = worlds()

    result = world.cli("snapshot", host, "--json")

    assert result.exit_code == 0, result.output
    receipt: dict[str, Any] = json.loads(result.stdout)
    for key in RECEIPT_FIELDS:
        assert key in receipt, key
    (event,) = world.snapshot_events()
    assert receipt["snapshot_id"] == str(event["snapshot_id"])
    assert (receipt["host"], receipt["provider"], receipt["instance"]) == (host, PROVIDER_OF[host], INSTANCE_OF[host])
    assert parse_time(receipt["verified_at"]) >= parse_time(receipt["created_at"])
    if PROVIDER_OF[host] == "hostinger":
        assert parse_time(receipt["expires_at"]) > datetime.now(UTC)
    else:
        assert receipt["expires_at"] is None  # Vultr snapshots do not expire
    (verified,) = world.ledger(host, "snapshot-verified")
    assert verified["run_id"] == receipt["run_id"]  # the receipt says which run it belongs to
    assert world.last_run_end(host)["outcome"] == "ok"
    sessions = world.sessions(host)
    assert any(str(world.lock_dir(host)) in line and "echo ACQUIRED" in line for line in sessions), sessions
    record = json.loads((world.hosts.host(host).root / "var/lib/opsguard/last-change.json").read_text())
    assert (record["run_id"], record["snapshot_id"], record["outcome"]) == (receipt["run_id"], receipt["snapshot_id"], "ok")
    assert world.changes(host) == []  # nothing but reads and opsguard's lock and record
    assert world.commands(host) == []
    assert not world.lock_dir(host).exists()


def test_snapshot_no_ssh_makes_no_ssh_connection_on_vultr(worlds: GuardWorlds, tmp_path: Path) -> None:
    # known_hosts does not exist: any SSH connection would be refused, so success proves none was made.
    world = worlds(settings={"known_hosts": str(tmp_path / "no-such-known-hosts")})

    result = world.cli("snapshot", "chat", "--no-ssh", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["host"] == "chat"
    assert world.sessions("chat") == []


def test_snapshot_no_ssh_refuses_on_hostinger_unless_overwrite_snapshot(worlds: GuardWorlds, tmp_path: Path) -> None:
    """Without SSH nobody can read chat2's change record: its only snapshot may be a rollback point."""
    world = worlds(settings={"known_hosts": str(tmp_path / "no-such-known-hosts")})

    refused = world.cli("snapshot", "chat2", "--no-ssh")

    assert refused.exit_code == 3, refused.output
    assert "without SSH" in refused.stderr and "--overwrite-snapshot" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert world.snapshot_posts() == []
    forced = world.cli("snapshot", "chat2", "--no-ssh", "--overwrite-snapshot")
    assert forced.exit_code == 0, forced.output
    assert len(world.snapshot_posts()) == 1
    assert world.sessions("chat2") == []


def test_snapshot_prints_human_receipt_lines_without_json(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("snapshot", "chat")

    assert result.exit_code == 0, result.output
    (event,) = world.snapshot_events()
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["host"] == "chat" and lines["snapshot_id"] == event["snapshot_id"]
    assert "expires_at" not in lines  # shown only when the provider has one


# -- exec: output, exit status, dropped connections ------------------------------------------------


def test_exec_streams_output_with_host_prefix_and_exits_0(worlds: GuardWorlds) -> None:
    world = worlds()
    world.hosts.set_responses(
        "chat", {"rules": [{"prefix": ["pm2"], "stdout": "restarted zpro-backend\nrestarted zpro-frontend\n",
                            "stderr": "pm2 warning: sandbox\n", "exit": 0}]}
    )  # fmt: skip

    result = world.cli("exec", "chat", "--yes", "--", "pm2", "restart", "all")

    assert result.exit_code == 0, result.output
    assert "chat | restarted zpro-backend\nchat | restarted zpro-frontend\n" in result.stdout
    assert "chat | pm2 warning: sandbox" in result.stderr
    assert "pm2 warning" not in result.stdout
    assert world.commands("chat") == [["pm2", "restart", "all"]]
    assert world.last_run_end("chat")["outcome"] == "ok"


def test_exec_exits_1_and_ledger_says_failed_at_exec_when_command_fails(worlds: GuardWorlds) -> None:
    world = worlds()
    world.hosts.set_responses(
        "chat", {"rules": [{"prefix": ["apt-get"], "stderr": "E: dpkg was interrupted\n", "exit": 100}]}
    )

    result = world.exec_upgrade("chat")

    assert result.exit_code == 1, result.output
    receipt = world.ledger("chat", "snapshot-verified")[0]["receipt"]
    assert "chat | E: dpkg was interrupted" in result.stderr
    assert "step 'exec' exited 100" in result.stderr
    assert f"opsguard restore chat --snapshot {receipt['snapshot_id']}" in result.stderr
    end = world.last_run_end("chat")
    assert (end["outcome"], end["failed_step"], end["snapshot_id"]) == ("failed", "exec", receipt["snapshot_id"])
    (step_end,) = [record for record in world.ledger("chat", "step") if record["phase"] == "ended"]
    assert (step_end["result"], step_end["exit_status"]) == ("failed", 100)
    assert world.commands("chat") == [list(UPGRADE)]
    assert not world.lock_dir("chat").exists()


def test_exec_exits_4_and_ledger_says_unknown_when_connection_drops_mid_command(worlds: GuardWorlds) -> None:
    world = worlds()
    world.hosts.set_responses("chat", {"rules": [{"prefix": ["apt-get"], "drop": True}]})

    result = world.exec_upgrade("chat")

    assert result.exit_code == 4, result.output
    assert "outcome unknown" in result.stderr
    assert world.commands("chat") == [list(UPGRADE)]  # it started; whether it finished nobody knows
    end = world.last_run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("unknown", "exec")
    (step_end,) = [record for record in world.ledger("chat", "step") if record["phase"] == "ended"]
    assert step_end["result"] == "unknown"


def test_exec_after_dropped_hostinger_change_refuses_to_overwrite_rollback_point_unless_asked(
    worlds: GuardWorlds,
) -> None:
    world = worlds()
    world.hosts.set_responses("chat2", {"rules": [{"prefix": ["apt-get"], "drop": True, "times": 1}]})
    dropped = world.exec_upgrade("chat2")
    assert dropped.exit_code == 4, dropped.output
    rollback_point = world.ledger("chat2", "snapshot-verified")[0]["receipt"]["snapshot_id"]
    # The dropped session could not remove its remote lock: it is stale, and says whose it is.
    stale = world.lock_dir("chat2")
    assert stale.is_dir()
    unlocked = world.cli("unlock", "chat2", "--yes", "--reason", "the run lost the host")
    assert unlocked.exit_code == 0, unlocked.output
    assert not stale.exists()

    refused = world.exec_upgrade("chat2")

    assert refused.exit_code == 3, refused.output
    assert "--overwrite-snapshot" in refused.stderr
    assert f"its snapshot {rollback_point} is the rollback point" in refused.stderr
    assert "ended unknown at step 'exec'" in refused.stderr
    assert len(world.snapshot_posts()) == 1  # no new snapshot: it would have overwritten the rollback point
    assert world.commands("chat2") == [list(UPGRADE)]  # only the dropped call
    assert world.sim.instance("hostinger", 1001)["_snapshot"]["id"] == int(rollback_point)

    overwritten = world.exec_upgrade("chat2", "--overwrite-snapshot")

    assert overwritten.exit_code == 0, overwritten.output
    assert len(world.snapshot_posts()) == 2
    assert world.commands("chat2") == [list(UPGRADE), list(UPGRADE)]
    second_event = world.snapshot_events()[-1]
    assert world.hosts.journal("chat2")[-1]["time"] > second_event["completed_at"]
    assert world.last_run_end("chat2")["outcome"] == "ok"


def test_exec_after_dropped_vultr_change_takes_a_new_snapshot(worlds: GuardWorlds) -> None:
    # Vultr keeps every snapshot: a new one overwrites nothing, so no --overwrite-snapshot is needed.
    world = worlds()
    world.hosts.set_responses("chat", {"rules": [{"prefix": ["apt-get"], "drop": True, "times": 1}]})
    assert world.exec_upgrade("chat").exit_code == 4
    assert world.cli("unlock", "chat", "--yes", "--reason", "stale").exit_code == 0

    result = world.exec_upgrade("chat")

    assert result.exit_code == 0, result.output
    assert len(world.snapshot_posts()) == 2
    assert world.last_run_end("chat")["outcome"] == "ok"
