"""The records the next run trusts survive faults: the host's change record is checked, read back, and an
unreadable one counts as unknown; the ledger names the OS account and the SSH key (real CLI, sshd, simulator)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from tests.integration.guard_support import GuardWorld, GuardWorlds

pytestmark = pytest.mark.integration


def remote_state(world: GuardWorld, host: str) -> Path:
    return world.hosts.host(host).root / "var" / "lib" / "opsguard"


def test_hostinger_change_is_refused_before_the_snapshot_when_the_host_record_cannot_be_kept(worlds: GuardWorlds) -> None:
    world = worlds()
    state = remote_state(world, "chat2")
    shutil.rmtree(state, ignore_errors=True)
    state.write_text("a file where opsguard's record directory should be\n")

    result = world.exec_upgrade("chat2")

    assert result.exit_code == 3, result.output
    assert str(state) in result.stderr and "remote_state" in result.stderr and "nothing was changed" in result.stderr
    assert world.snapshot_posts() == []  # the previous snapshot is intact
    assert world.changes("chat2") == []


def test_vultr_change_goes_on_with_a_warning_when_the_host_record_cannot_be_kept(worlds: GuardWorlds) -> None:
    world = worlds()
    state = remote_state(world, "chat")
    shutil.rmtree(state, ignore_errors=True)
    state.write_text("not a directory\n")

    result = world.exec_upgrade("chat")

    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "cannot keep the change record" in result.stderr


@pytest.mark.parametrize("damage", ["torn json", "a directory"])
def test_unreadable_host_record_counts_as_unknown_never_as_none(worlds: GuardWorlds, damage: str) -> None:
    world = worlds()
    record = remote_state(world, "chat2") / "last-change.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    if damage == "a directory":
        record.mkdir()
    else:
        record.write_text('{"run_id": "r1", "outcome": "ok", "snap')

    result = world.exec_upgrade("chat2")

    assert result.exit_code == 3, result.output
    assert "unreadable record" in result.stderr and "--overwrite-snapshot" in result.stderr
    assert world.snapshot_posts() == []


def test_ledger_names_the_os_account_not_user_variable_and_the_ssh_key(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.exec_upgrade("chat", env={"USER": "forged-admin", "LOGNAME": "forged-admin"})

    assert result.exit_code == 0, result.output
    (started,) = world.ledger("chat", "run-started")
    assert started["user"] == pwd.getpwuid(os.getuid()).pw_name != "forged-admin"
    end = world.last_run_end("chat")
    assert end["ssh_key"] and end["ssh_key"].startswith("SHA256:")
    public = (world.hosts.client_key.with_name(world.hosts.client_key.name + ".pub")).read_text().split()[1]
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(public)).digest()).decode().rstrip("=")
    assert end["ssh_key"] == expected
    record = json.loads((remote_state(world, "chat") / "last-change.json").read_text())
    assert record["user"] != "forged-admin"


def test_guarded_run_leaves_its_window_in_the_hosts_history_for_audit(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.exec_upgrade("chat2")

    assert result.exit_code == 0, result.output
    lines = (remote_state(world, "chat2") / "history.jsonl").read_text().splitlines()
    start, end = (json.loads(line) for line in lines)
    (verified,) = world.ledger("chat2", "snapshot-verified")
    assert start["run_id"] == end["run_id"] == verified["run_id"]
    assert (start["outcome"], start["end"]) == ("in-progress", None)
    assert end["outcome"] == "ok" and end["end"] >= end["start"] == start["start"]
    assert end["snapshot_id"] == verified["receipt"]["snapshot_id"]
    assert world.changes("chat2")  # the change itself; the history append is opsguard's own bookkeeping
    assert not any("history.jsonl" in line for line in world.changes("chat2"))
