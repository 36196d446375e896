"""`opsguard restore HOST --snapshot ID`: the last resort, behind a typed confirmation of the host name."""

from __future__ import annotations

import json

from tests.integration.guard_support import GuardWorld, GuardWorlds


def restore_posts(world: GuardWorld) -> list[dict[str, object]]:
    return [r for r in world.sim.journal() if r["method"] == "POST" and "restore" in str(r["path"])]


def test_restore_refuses_without_terminal_or_typed_host(worlds: GuardWorlds) -> None:
    world = worlds()
    snapshot = json.loads(world.cli("snapshot", "chat", "--json").stdout)["snapshot_id"]

    result = world.cli("restore", "chat", "--snapshot", snapshot)

    assert result.exit_code == 3, result.output
    assert "--yes-i-typed-the-host chat" in result.stderr
    assert restore_posts(world) == []


def test_restore_refuses_when_typed_host_is_another(worlds: GuardWorlds) -> None:
    world = worlds()
    snapshot = json.loads(world.cli("snapshot", "chat", "--json").stdout)["snapshot_id"]

    result = world.cli("restore", "chat", "--snapshot", snapshot, "--yes-i-typed-the-host", "chat2")

    assert result.exit_code == 3, result.output
    assert "typed 'chat2', not 'chat'" in result.stderr
    assert restore_posts(world) == []


def test_restore_starts_provider_restore_and_records_it_when_host_typed(worlds: GuardWorlds) -> None:
    world = worlds()
    snapshot = json.loads(world.cli("snapshot", "chat", "--json").stdout)["snapshot_id"]

    result = world.cli("restore", "chat", "--snapshot", snapshot, "--yes-i-typed-the-host", "chat")

    assert result.exit_code == 0, result.output
    (post,) = restore_posts(world)
    assert snapshot in json.dumps(post["body"])
    end = world.last_run_end("chat")
    assert end["outcome"] == "ok"
    assert [r for r in world.ledger("chat", "step") if r.get("step") == "restore"]


def test_restore_refuses_hostinger_snapshot_that_is_not_the_current_one(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("restore", "chat2", "--snapshot", "999999", "--yes-i-typed-the-host", "chat2")

    assert result.exit_code == 3, result.output
    assert "not 999999" in result.stderr
    assert restore_posts(world) == []


def test_restore_of_rollback_point_lets_next_hostinger_change_proceed(worlds: GuardWorlds) -> None:
    import time

    world = worlds()
    failed = world.cli("exec", "chat2", "--yes", "--", "exit 3")
    assert failed.exit_code == 1, failed.output
    snapshot = world.ledger("chat2", "snapshot-verified")[-1]["receipt"]["snapshot_id"]
    assert world.cli("exec", "chat2", "--yes", "--", "true").exit_code == 3  # would overwrite the rollback point

    restored = world.cli("restore", "chat2", "--snapshot", str(snapshot), "--yes-i-typed-the-host", "chat2")
    assert restored.exit_code == 0, restored.output
    # A real restore puts back the disk as it was at the snapshot, before opsguard wrote the failed
    # change's record on the host; the simulator cannot touch the sshd host's files, so do it here.
    (world.hosts.host("chat2").root / "var" / "lib" / "opsguard" / "last-change.json").unlink()
    deadline = time.monotonic() + 10  # the simulated restore keeps the VM locked for a moment
    while world.sim.instance("hostinger", 1001).get("actions_lock") != "unlocked" and time.monotonic() < deadline:
        time.sleep(0.05)

    again = world.cli("exec", "chat2", "--yes", "--", "true")
    assert again.exit_code == 0, again.output



def manual_vultr_snapshot_id(world: GuardWorld) -> str:
    """Return the id of the scenario's pre-existing snapshot made by hand in the Vultr console."""
    import requests

    env = world.env()
    answer = requests.get(f"{env['VULTR_API_URL']}/snapshots", headers={"Authorization": f"Bearer {env['VULTR_API_KEY']}"},
                          timeout=5)
    (manual,) = [s for s in answer.json()["snapshots"] if s["description"] == "manual before the March upgrade"]
    return str(manual["id"])


def test_restore_refuses_vultr_snapshot_not_tagged_for_this_host_unless_foreign_allowed(worlds: GuardWorlds) -> None:
    world = worlds()
    manual = manual_vultr_snapshot_id(world)

    refused = world.cli("restore", "chat", "--snapshot", manual, "--yes-i-typed-the-host", "chat")
    assert refused.exit_code == 3, refused.output
    assert "was not taken by opsguard of this host" in refused.stderr and "--foreign-snapshot" in refused.stderr
    assert restore_posts(world) == []

    allowed = world.cli("restore", "chat", "--snapshot", manual, "--yes-i-typed-the-host", "chat", "--foreign-snapshot")
    assert allowed.exit_code == 0, allowed.output
    assert len(restore_posts(world)) == 1


def test_restore_refuses_unknown_vultr_snapshot(worlds: GuardWorlds) -> None:
    world = worlds()
    result = world.cli("restore", "chat", "--snapshot", "00000000-0000-4000-8000-000000000000",
                       "--yes-i-typed-the-host", "chat", "--foreign-snapshot")
    assert result.exit_code == 3, result.output
    assert "does not exist at vultr" in result.stderr
    assert restore_posts(world) == []
