"""`opsguard rollback HOST [--run RUN]` (issue 15): undo a platform or stack upgrade without a provider restore,
under the run's own snapshot (guard rule 3d: no new snapshot while the provider has it; a normal guarded change
when it is gone). Real CLI, real sshd hosts, the provider simulator; "what changed" is judged by the journal."""

from __future__ import annotations

import json
import marshal
import urllib.request
from pathlib import Path

import pytest

from opsguard.ledger import Ledger
from opsguard.sandbox.stubs.containers import repo_digest
from tests.integration.playbook_support import NEW_MIGRATION, PlaybookWorld, contains, position, starts

pytestmark = pytest.mark.integration

# pm2 says it restarted the apps but does not: the upgrade fails its verification after the migrate and the swap.
RESTART_SAYS_OK = {"prefix": ["pm2", "restart"], "stdout": "[PM2] Applying action restartProcessId on app\n"}


def failed_upgrade(world: PlaybookWorld, host: str, rule: dict[str, object]) -> str:
    """Given a Zpro host and a stub rule that makes the upgrade fail, run it; return the failed run's id."""
    world.hosts.set_responses(host, {"rules": [rule]})
    result = world.cli("upgrade", host, "--package", str(world.release()), "--yes")
    assert result.exit_code == 1, result.output
    world.hosts.set_responses(host, {"rules": []})  # the cause is fixed before the rollback
    run_id: str = world.ledger(host, "run-ended")[-1]["run_id"]
    return run_id


def applied_migrations(world: PlaybookWorld, host: str) -> list[str]:
    path = world.hosts.host(host).root / "stub-state" / "migrations"
    names: list[str] = marshal.loads(path.read_bytes())
    return names


def version(app_dir: Path) -> str:
    return str(json.loads((app_dir / "backend" / "package.json").read_text())["version"])


def calls_since(world: PlaybookWorld, host: str, moment: float) -> list[list[str]]:
    return [record["argv"] for record in world.journal(host) if record["time"] > moment]


def rollback_run(world: PlaybookWorld, host: str) -> str:
    ends = world.ledger(host, "run-ended")
    run_id: str = ends[-1]["run_id"]
    return run_id


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_rollback_after_migrate_restores_the_dump_and_the_previous_tree_without_a_new_snapshot(
    world: PlaybookWorld, host: str
) -> None:
    failed = failed_upgrade(world, host, RESTART_SAYS_OK)
    app_dir = world.app_dir(host)
    assert version(app_dir) == "2.5.0" and NEW_MIGRATION in applied_migrations(world, host)
    moment = world.journal(host)[-1]["time"]

    result = world.cli("rollback", host, "--yes")

    assert result.exit_code == 0, result.output
    # No new snapshot: R's verified snapshot authorises the rollback (on Hostinger a new one would destroy it).
    assert len(world.snapshot_posts()) == 1
    undo = rollback_run(world, host)
    (reused,) = world.ledger(host, "snapshot-verified")[-1:]
    assert (reused["run_id"], reused["reused_from"]) == (undo, failed)
    assert [record["rolls_back"] for record in world.ledger(host, "run-facts") if record["run_id"] == undo] == [failed]
    last = Ledger(world.state_dir).last_change(host)
    assert last is not None and (last.run_id, last.outcome) == (undo, "ok")  # R's "failed" state is settled
    # The database is back to before the migrate and the old release runs again; the new one is kept aside.
    assert NEW_MIGRATION not in applied_migrations(world, host)
    assert version(app_dir) == "2.4.0"
    (staging,) = app_dir.parent.glob("zpro.io.staging-*")
    assert version(staging) == "2.5.0" and not list(app_dir.parent.glob("zpro.io.previous-*"))
    assert (app_dir / "backend" / "public" / "1700000000000-logo.jpg").is_file()  # the media is back in the live tree
    calls = calls_since(world, host, moment)
    order = [position(calls, starts("pm2", "stop"), "pm2 stop"),
             position(calls, contains("pg_restore", "--clean", "--if-exists"), "pg_restore --clean"),
             position(calls, starts("pm2", "restart"), "pm2 restart")]  # fmt: skip
    assert order == sorted(order)
    assert "downtime until every WhatsApp channel is back" in result.stderr


def test_rollback_before_migrate_only_restarts_the_apps(world: PlaybookWorld) -> None:
    failed = failed_upgrade(world, "chat", {"prefix": ["pm2", "stop"], "stderr": "[PM2][ERROR] timeout\n", "exit": 1})
    moment = world.journal("chat")[-1]["time"]

    planned = world.cli("plan", "chat", "rollback")
    result = world.cli("rollback", "chat", "--yes", "--run", failed)

    assert planned.exit_code == 0, planned.output
    assert f"undo Zpro upgrade run {failed} (failed at 'stop the apps by name')" in planned.stdout
    assert "pg_restore" not in planned.stdout and "mv -T" not in planned.stdout
    assert result.exit_code == 0, result.output
    calls = calls_since(world, "chat", moment)
    assert not [call for call in calls if "pg_restore" in call and "-l" not in call]
    assert [call[:2] for call in calls if call[0] == "pm2" and call[1] != "jlist"] == [["pm2", "restart"], ["pm2", "save"]]
    assert len(world.snapshot_posts()) == 1


def test_rollback_on_vultr_takes_a_new_snapshot_when_the_runs_snapshot_is_gone(world: PlaybookWorld) -> None:
    failed = failed_upgrade(world, "chat", RESTART_SAYS_OK)
    snapshot = world.completed_snapshot("chat")["snapshot_id"]
    env = world.sim.env()
    request = urllib.request.Request(f"{env['VULTR_API_URL']}/snapshots/{snapshot}", method="DELETE",
                                     headers={"Authorization": f"Bearer {env['VULTR_API_KEY']}"})
    urllib.request.urlopen(request, timeout=5).close()

    result = world.cli("rollback", "chat", "--yes")

    assert result.exit_code == 0, result.output
    assert "the rollback runs as a normal guarded change: a new snapshot first" in result.stderr
    assert "refused, nothing was changed" not in result.stderr  # it was not refused: it went on (L4)
    assert len(world.snapshot_posts()) == 2
    undo = rollback_run(world, "chat")
    assert [record["rolls_back"] for record in world.ledger("chat", "run-facts") if record["run_id"] == undo] == [failed]
    assert NEW_MIGRATION not in applied_migrations(world, "chat")


def test_rollback_refuses_when_the_run_never_touched_a_service_or_was_rolled_back(world: PlaybookWorld) -> None:
    before_stop = {"prefix": ["npm", "run", "build"], "stderr": "FATAL ERROR: heap out of memory\n", "exit": 1}
    failed_upgrade(world, "chat", before_stop)

    nothing = world.cli("rollback", "chat", "--yes")

    assert nothing.exit_code == 3, nothing.output
    assert "the live site was never touched, nothing to roll back" in nothing.stderr
    assert len(world.snapshot_posts()) == 1 and world.ledger("chat", "run-started")[-1]["command"] == "platform_upgrade"

    failed = failed_upgrade(world, "chat", RESTART_SAYS_OK)
    assert world.cli("rollback", "chat", "--yes").exit_code == 0
    again = world.cli("rollback", "chat", "--yes", "--run", failed)

    assert again.exit_code == 3, again.output
    assert f"run {failed} was already rolled back by run {rollback_run(world, 'chat')}" in again.stderr


def test_rollback_ia_restores_the_dumps_and_pins_the_recorded_images(world: PlaybookWorld) -> None:
    compose = Path(world.hosts.host_vars("ia")["compose_dir"]) / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("n8nio/n8n:1.64.3", "n8nio/n8n:1.65.0"))
    world.hosts.set_stack_images("ia", running={"n8n": "n8nio/n8n:1.64.3"})
    not_ready = {"prefix": ["curl"], "regex": "5678/healthz", "stdout": "503\n"}  # the new n8n never gets ready
    world.hosts.set_responses("ia", {"rules": [not_ready]})
    upgrade = world.cli("upgrade", "ia", "--yes")
    assert upgrade.exit_code == 1 and world.run_end("ia")["failed_step"] == "change: wait: n8n ready (GET /healthz/readiness = 200)"
    world.hosts.set_responses("ia", {"rules": []})
    moment = world.journal("ia")[-1]["time"]

    result = world.cli("rollback", "ia", "--yes")

    assert result.exit_code == 0, result.output
    assert len(world.snapshot_posts()) == 1  # Hostinger: R's snapshot, no new one
    override = (compose.parent / "docker-compose.opsguard-rollback.yml").read_text()
    assert f"  n8n:\n    image: {repo_digest('n8nio/n8n:1.64.3')}\n" in override
    calls = calls_since(world, "ia", moment)
    order = [position(calls, contains("compose", "stop", "n8n"), "compose stop of the apps"),
             position(calls, contains("exec", "typebot-db", "sh"), "pg_restore inside typebot-db"),
             position(calls, contains("-f", "docker-compose.opsguard-rollback.yml", "up", "-d"), "up -d pinned")]  # fmt: skip
    assert order == sorted(order)
    running = marshal.loads((world.hosts.host("ia").root / "stub-state" / "stack-images").read_bytes())["running"]
    assert running["n8n"] == repo_digest("n8nio/n8n:1.64.3")
