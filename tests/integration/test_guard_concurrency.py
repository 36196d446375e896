"""Two guarded runs on one host never both proceed; `opsguard unlock` breaks only what it is told to.

Runs are real CLI subprocesses started together against the sshd hosts and the simulator, with a
snapshot slow enough (1 s) that both are in the guard at the same time.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import CliResult
from tests.integration.guard_support import (
    UPGRADE,
    GuardWorld,
    GuardWorlds,
    faults,
    foreign_owner,
    merged,
)

pytestmark = pytest.mark.integration

# Long enough that both processes are past start-up while the first waits for its snapshot, even on a loaded machine.
SLOW_SNAPSHOTS = {"vultr": {"snapshot_seconds": 3.0}, "hostinger": {"snapshot_seconds": 3.0}}


def run_together(world: GuardWorld, *runs: tuple[tuple[str, ...], dict[str, str]]) -> list[CliResult]:
    """Given (args, env) per run, start them all at once and return their results in the same order."""
    processes = [world.popen(*args, env=env) for args, env in runs]
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append(CliResult(process.returncode, stdout, stderr))
    return results


def exec_args(host: str) -> tuple[str, ...]:
    return ("exec", host, "--yes", "--", *UPGRADE)


def test_two_runs_on_one_host_from_one_machine_only_one_proceeds(worlds: GuardWorlds) -> None:
    world = worlds(SLOW_SNAPSHOTS)

    results = run_together(world, (exec_args("chat"), {}), (exec_args("chat"), {}))

    assert sorted(result.exit_code for result in results) == [0, 3], [result.output for result in results]
    loser = next(result for result in results if result.exit_code == 3)
    assert "host chat: locked by run" in loser.stderr and "nothing was changed" in loser.stderr
    assert world.commands("chat") == [list(UPGRADE)]  # the command ran once
    assert len(world.snapshot_posts()) == 1  # and only one snapshot was taken
    outcomes = sorted(record["outcome"] for record in world.ledger("chat", "run-ended"))
    assert outcomes == ["ok", "refused"]
    assert not world.lock_dir("chat").exists()


def test_two_runs_on_one_host_from_two_machines_remote_lock_lets_one_proceed(
    worlds: GuardWorlds, tmp_path: Path
) -> None:
    # Two state dirs = two operators' machines: the local locks do not see each other; the
    # mkdir lock on the host must.
    world = worlds(SLOW_SNAPSHOTS)
    other_machine = tmp_path / "other-machine-state"

    results = run_together(
        world, (exec_args("chat2"), {}), (exec_args("chat2"), {"OPSGUARD_STATE_DIR": str(other_machine)})
    )

    assert sorted(result.exit_code for result in results) == [0, 3], [result.output for result in results]
    loser = next(result for result in results if result.exit_code == 3)
    assert "remote lock" in loser.stderr and "is held by run" in loser.stderr
    assert world.commands("chat2") == [list(UPGRADE)]
    assert len(world.snapshot_posts()) == 1
    assert not world.lock_dir("chat2").exists()  # the winner released it


def test_runs_on_two_hosts_at_once_both_proceed(worlds: GuardWorlds) -> None:
    world = worlds(SLOW_SNAPSHOTS)

    results = run_together(world, (exec_args("chat"), {}), (exec_args("ia"), {}))

    assert [result.exit_code for result in results] == [0, 0], [result.output for result in results]
    assert world.commands("chat") == [list(UPGRADE)]
    assert world.commands("ia") == [list(UPGRADE)]
    assert len(world.snapshot_posts()) == 2


def test_run_after_a_refused_concurrent_run_proceeds_once_the_winner_finished(worlds: GuardWorlds) -> None:
    world = worlds(merged(SLOW_SNAPSHOTS, faults("vultr", snapshot="error")))
    first = run_together(world, (exec_args("chat"), {}), (exec_args("chat"), {}))
    # One was refused by the lock, the other by the failed snapshot.
    assert [result.exit_code for result in first] == [3, 3], [result.output for result in first]
    assert sum("snapshot failed at the provider" in result.stderr for result in first) == 1
    assert sum("locked by run" in result.stderr for result in first) == 1
    world.sim.set_fault("vultr", "snapshot", None)

    result = world.exec_upgrade("chat")

    # Neither the failed snapshot nor the refused run left a lock behind.
    assert result.exit_code == 0, result.output
    assert world.commands("chat") == [list(UPGRADE)]


# -- opsguard unlock -------------------------------------------------------------------------------


def test_unlock_with_yes_removes_stale_remote_lock_and_next_run_proceeds(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", foreign_owner())

    result = world.cli("unlock", "chat", "--yes", "--reason", "alice's laptop died mid-run")

    assert result.exit_code == 0, result.output
    assert "lock" in result.stdout and "removed" in result.stdout
    assert not lock.exists()
    assert world.commands("chat") == []  # unlock changes nothing but the lock
    assert world.sim.journal() == []  # and needs no provider API
    assert world.exec_upgrade("chat").exit_code == 0


def test_unlock_without_yes_off_a_terminal_refuses_and_keeps_the_lock(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", foreign_owner())

    result = world.cli("unlock", "chat", "--reason", "stale")

    assert result.exit_code == 3, result.output
    assert "not on a terminal" in result.stderr and "--yes" in result.stderr
    assert (lock / "owner").is_file()


def test_unlock_says_not_locked_when_there_is_no_lock(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("unlock", "chat", "--yes", "--reason", "alice's laptop died mid-run")

    assert result.exit_code == 0, result.output
    assert "not locked" in result.stdout


def test_unlock_refuses_while_a_local_run_holds_the_host(worlds: GuardWorlds) -> None:
    # A run in progress on this machine is not a stale lock: unlock must not break it.
    world = worlds(SLOW_SNAPSHOTS)
    running = world.popen(*exec_args("chat"))
    try:
        local_lock = world.state_dir / "locks" / "chat.lock"
        deadline = time.monotonic() + 20
        while not (local_lock.exists() and local_lock.read_text()):  # the owner record is written once held
            assert running.poll() is None and time.monotonic() < deadline, "the run never took its local lock"
            time.sleep(0.02)

        result = world.cli("unlock", "chat", "--yes", "--reason", "alice's laptop died mid-run")
    finally:
        stdout, stderr = running.communicate(timeout=60)

    assert result.exit_code == 3, result.output
    assert "in progress" in result.stderr and "not unlocking" in result.stderr
    assert running.returncode == 0, stdout + stderr  # the run was not disturbed
