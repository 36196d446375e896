"""`opsguard rollback` against what a review found (H1, H2, M1-M3, L4): a run that is no longer the host's last
change is refused, never rolled back under a new snapshot; a failed rollback can be retried under the run's own
snapshot; a ledger whose hash chain is broken authorises nothing; the rollback playbook runs only through
`opsguard rollback`; the stack rollback runs compose with the files the upgrade used. Real CLI, real sshd hosts,
the provider simulator; "nothing changed" is judged by the sandbox oracle (world.changes: every command line a
host received that is not known read-only)."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opsguard.ledger import Ledger
from opsguard.playbooks.rollback import rollback_source
from opsguard.sandbox.environment import SANDBOX_HOSTS
from tests.fixtures.cli_fixtures import run_cli
from tests.integration.playbook_support import NEW_MIGRATION, PlaybookWorld, contains
from tests.integration.test_rollback import RESTART_SAYS_OK, applied_migrations, failed_upgrade, rollback_run, version

pytestmark = pytest.mark.integration


def restores(world: PlaybookWorld, host: str) -> list[list[str]]:
    """Given a host, return every pg_restore --clean call it received (the restore of a dump)."""
    return [record["argv"] for record in world.journal(host) if "pg_restore" in record["argv"] and "--clean" in record["argv"]]


def wait_for_call(world: PlaybookWorld, host: str, words: tuple[str, ...], after: int, within: float) -> None:
    """Given a host, argv words and a journal length, return once a later call holding them reached it; fail after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(contains(*words)(record["argv"]) for record in world.journal(host)[after:]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no call with {words} reached {host} within {within} s")


def test_rollback_refuses_when_another_rollback_of_the_run_finished_while_it_waited(world: PlaybookWorld) -> None:
    """H1: B read the ledger (R not rolled back) and ran its preflight; A rolled R back meanwhile; B must not restore again."""
    failed = failed_upgrade(world, "chat", RESTART_SAYS_OK)
    # B's preflight dump check is slow once (as if its operator sat at the confirmation prompt).
    world.hosts.set_responses("chat", {"rules": [{"regex": "pg_restore -l", "times": 1, "sleep": 15, "default": True}]})
    environment = {**os.environ, **world.env()}
    calls_before = len(world.journal("chat"))
    slow = subprocess.Popen([sys.executable, "-m", "opsguard", "rollback", "chat", "--yes"], env=environment,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_call(world, "chat", ("pg_restore", "-l"), after=calls_before, within=30)  # B is in its slow check
        first = world.cli("rollback", "chat", "--yes")
        assert first.exit_code == 0, first.output
        undone_by = rollback_run(world, "chat")
        changed_before = len(world.changes("chat"))
        _, stderr = slow.communicate(timeout=120)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.communicate()

    assert slow.returncode == 3, stderr[-2000:]
    assert f"run {failed} was already rolled back by run {undone_by}" in stderr
    assert "refused, nothing was changed" in stderr
    assert len(world.changes("chat")) == changed_before  # the oracle: B sent nothing that changes the host
    assert len(restores(world, "chat")) == 1
    assert len(world.snapshot_posts()) == 1


def test_rollback_refuses_when_another_machine_upgraded_the_host_after_the_run(world: PlaybookWorld, tmp_path: Path) -> None:
    """H1: machine 2 (its own state dir) upgraded after machine 1's run R: only the host knows; R is not its last change."""
    first = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")
    assert first.exit_code == 0, first.output
    other_state = tmp_path / "other-machine-state"
    other_state.mkdir()
    other = {**world.env(), "OPSGUARD_STATE_DIR": str(other_state)}
    second = run_cli("upgrade", "chat", "--package", str(world.release(version="2.6.0")), "--yes", env=other,
                     input_text="", timeout=90)
    assert second.exit_code == 0, second.output
    later = Ledger(other_state).records("chat")[-1]["run_id"]
    changed_before, posts_before = len(world.changes("chat")), len(world.snapshot_posts())

    result = world.cli("rollback", "chat", "--yes")

    assert result.exit_code == 3, result.output
    assert later in result.stderr and "refused, nothing was changed" in result.stderr
    assert len(world.changes("chat")) == changed_before
    assert len(world.snapshot_posts()) == posts_before
    assert version(world.app_dir("chat")) == "2.6.0"


def test_rollback_retry_after_a_failed_rollback_runs_under_the_runs_snapshot_on_hostinger(world: PlaybookWorld) -> None:
    """M2: a rollback that failed is retried under R's snapshot, as its advice says; no new snapshot replaces R's."""
    failed = failed_upgrade(world, "chat2", RESTART_SAYS_OK)
    (original,) = [record["receipt"]["snapshot_id"] for record in world.ledger("chat2", "snapshot-verified")]
    lost = {"prefix": ["docker", "exec"], "regex": "pg_restore --clean", "stderr": "pg_restore: error: connection lost\n",
            "exit": 1}
    world.hosts.set_responses("chat2", {"rules": [lost]})
    broken = world.cli("rollback", "chat2", "--yes")
    assert broken.exit_code == 1, broken.output
    assert f"opsguard rollback chat2 --run {failed}" in broken.stderr
    world.hosts.set_responses("chat2", {"rules": []})

    retry = world.cli("rollback", "chat2", "--yes", "--run", failed)

    assert retry.exit_code == 0, retry.output
    assert len(world.snapshot_posts()) == 1  # R's snapshot is still the VM's only one
    reused = world.ledger("chat2", "snapshot-verified")[-1]
    assert (reused["reused_from"], reused["receipt"]["snapshot_id"]) == (failed, original)
    assert NEW_MIGRATION not in applied_migrations(world, "chat2") and version(world.app_dir("chat2")) == "2.4.0"


def test_rollback_refuses_when_the_ledger_chain_is_broken_at_the_runs_records(world: PlaybookWorld) -> None:
    """M3: R's receipt edited by hand to name a console snapshot: the chain is broken, nothing is authorised."""
    failed = failed_upgrade(world, "chat", RESTART_SAYS_OK)
    env = world.sim.env()
    body = json.dumps({"instance_id": str(SANDBOX_HOSTS["chat"][1]), "description": "someone's manual snapshot"}).encode()
    request = urllib.request.Request(f"{env['VULTR_API_URL']}/snapshots", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {env['VULTR_API_KEY']}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        foreign = json.loads(answer.read())["snapshot"]["id"]
    time.sleep(0.5)  # the console snapshot completes
    path = world.state_dir / "ledger.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record.get("event") == "snapshot-verified" and record.get("run_id") == failed:
            record["receipt"].update(snapshot_id=foreign, tag="manual")
            lines[index] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    changed_before, posts_before = len(world.changes("chat")), len(world.snapshot_posts())

    result = world.cli("rollback", "chat", "--yes")

    assert result.exit_code == 3, result.output
    assert "hash chain" in result.stderr and "opsguard ledger --verify" in result.stderr
    assert len(world.changes("chat")) == changed_before
    assert len(world.snapshot_posts()) == posts_before
    assert not [record for record in world.ledger("chat", "snapshot-verified") if record.get("reused_from")]


def test_run_and_plan_refuse_the_rollback_playbook_before_anything_is_asked(world: PlaybookWorld) -> None:
    """M1: `run HOST rollback --var rolled_back=JSON` would skip every rule-3d check: only `opsguard rollback` runs it."""
    failed = failed_upgrade(world, "chat2", RESTART_SAYS_OK)
    record = json.dumps(rollback_source(Ledger(world.state_dir), "chat2", failed))
    calls_before, posts_before = len(world.journal("chat")), len(world.snapshot_posts())

    ran = world.cli("run", "chat", "rollback", "--yes", "--var", "rolled_back=" + record)
    planned = world.cli("plan", "chat2", "rollback", "--var", "rolled_back=" + record)

    assert ran.exit_code == 2, ran.output
    assert "opsguard rollback chat" in ran.stderr
    assert planned.exit_code == 2, planned.output
    assert "--run" in planned.stderr and "rolled_back" in planned.stderr
    assert len(world.journal("chat")) == calls_before  # no SSH at all: refused before anything is asked
    assert len(world.snapshot_posts()) == posts_before


def stack_state(world: PlaybookWorld) -> dict[str, Any]:
    state: dict[str, Any] = marshal.loads((world.hosts.host("ia").root / "stub-state" / "stack-images").read_bytes())
    return state


def test_rollback_ia_runs_compose_with_the_files_the_upgrade_used(world: PlaybookWorld) -> None:
    """H2: with docker-compose.override.yml beside the compose file, the upgrade's compose read both; so must the rollback."""
    stack = Path(world.hosts.host_vars("ia")["compose_dir"])
    compose = stack / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("n8nio/n8n:1.64.3", "n8nio/n8n:1.65.0"))
    (stack / "docker-compose.override.yml").write_text("services:\n  n8n:\n    environment:\n      - N8N_METRICS=true\n")
    world.hosts.set_stack_images("ia", running={"n8n": "n8nio/n8n:1.64.3"})
    world.hosts.set_responses("ia", {"rules": [{"prefix": ["curl"], "regex": "5678/healthz", "stdout": "503\n"}]})
    upgrade = world.cli("upgrade", "ia", "--yes")
    assert upgrade.exit_code == 1, upgrade.output
    upgraded_with = stack_state(world)["config_files"]["n8n"].split(",")
    assert upgraded_with == [str(compose), str(stack / "docker-compose.override.yml")]
    world.hosts.set_responses("ia", {"rules": []})

    result = world.cli("rollback", "ia", "--yes")

    assert result.exit_code == 0, result.output
    rolled_back_with = stack_state(world)["config_files"]["n8n"].split(",")
    assert rolled_back_with == [*upgraded_with, str(stack / "docker-compose.opsguard-rollback.yml")]
