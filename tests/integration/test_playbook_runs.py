"""The three change playbooks run for real: real CLI, real sshd hosts with recording stubs, the provider simulator.

What each run must show on the hosts (issue 5): every change happens AFTER the provider completed the
snapshot, in the plan's order; pm2 is addressed only by name, apt always with its safe options; the
Zpro upgrade swaps trees by renames (media moved, not copied) with a measured downtime; a failing
build stops the run before any service stops and prints the rollback; a full disk refuses at
preflight before any snapshot; a read-only session refuses every plan at its first mutating step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ReadOnlyViolation
from opsguard.guard import ChangeSession, read_only_session
from opsguard.inventory import load_inventory
from opsguard.plan import Step, render
from opsguard.playbooks import build_plan
from opsguard.sandbox.stubs.containers import repo_digest
from tests.integration.playbook_support import (
    APT_ENV,
    APT_OPTIONS,
    MEDIA_FILE,
    NEW_MIGRATION,
    RELEASE_VERSION,
    PlaybookWorld,
    contains,
    disk_full_rule,
    json_summary,
    position,
    starts,
)

pytestmark = pytest.mark.integration

PM2_CHANGES = ("stop", "restart", "reload", "start", "delete")


def assert_changes_after_snapshot(world: PlaybookWorld, host: str) -> list[list[str]]:
    """Given a host whose change ran, check every mutating call came after its snapshot completed; return all argv."""
    event = world.completed_snapshot(host)
    # Judged by every command line the host received (stubbed or not: mkdir, mv, the SFTP upload, nginx -t...)
    # against the moment the PROVIDER reported the snapshot complete.
    changes = world.change_records(host)
    assert changes, f"{host}: no changing command reached the host"
    early = [record.command for record in changes if record.time <= event["completed_at"]]
    assert early == [], f"{host}: changed before the snapshot completed: {early}"
    stubbed = world.mutating(host)
    assert stubbed and stubbed[0]["time"] > event["completed_at"], f"{host}: {stubbed[:1]} ran before the snapshot completed"
    end = world.run_end(host)
    assert (end["outcome"], end["failed_step"], end["snapshot_id"]) == ("ok", None, str(event["snapshot_id"]))
    return [record["argv"] for record in world.journal(host)]


def assert_pm2_only_by_name(calls: list[list[str]]) -> None:
    changes = [call for call in calls if call[0] == "pm2" and len(call) > 1 and call[1] in PM2_CHANGES]
    for call in changes:
        names = [word for word in call[2:] if not word.startswith("-")]
        assert names and "all" not in names, f"pm2 not addressed by name: {call}"


# -- the Zpro platform upgrade (chat) -------------------------------------------------------------------


def test_upgrade_chat_runs_steps_in_order_after_snapshot_when_healthy(world: PlaybookWorld) -> None:
    package = world.release()

    result = world.cli("upgrade", "chat", "--package", str(package), "--yes")

    assert result.exit_code == 0, result.output
    calls = assert_changes_after_snapshot(world, "chat")
    order = [
        position(calls, starts("npm", "install", "--force"), "backend npm install"),
        position(calls, starts("npm", "run", "build"), "npm run build"),
        position(calls, contains("pg_dump", "-Fc"), "pg_dump"),
        position(calls, contains("pg_restore", "-l"), "pg_restore -l of the dump"),
        position(calls, starts("pm2", "stop"), "pm2 stop"),
        position(calls, starts("npx", "--no-install", "sequelize", "db:migrate"), "sequelize db:migrate"),
        position(calls, starts("pm2", "restart"), "pm2 restart"),
        position(calls, starts("pm2", "save"), "pm2 save"),
    ]
    assert order == sorted(order), [" ".join(calls[index]) for index in order]
    assert_pm2_only_by_name(calls)
    # The two installs and the build ran as the deploy user, inside the staged tree (the live one kept serving).
    staged = [record for record in world.journal("chat") if record["argv"][0] == "npm"]
    assert len(staged) == 3
    assert all(record["user"] == "deployzdg" and ".staging-" in record["cwd"] for record in staged)


def test_upgrade_chat_builds_before_pm2_stop_on_the_real_run(world: PlaybookWorld) -> None:
    # A plan-level property checked on the host: downtime starts only after the RAM-heavy build is done.
    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 0, result.output
    calls = [record["argv"] for record in world.journal("chat")]
    assert position(calls, starts("npm", "run", "build"), "npm run build") < position(calls, starts("pm2", "stop"), "pm2 stop")


def test_upgrade_chat_swaps_trees_by_rename_and_reports_downtime_when_healthy(world: PlaybookWorld) -> None:
    app_dir = world.app_dir("chat")
    media_inode = (app_dir / MEDIA_FILE).stat().st_ino
    env_before = (app_dir / "backend" / ".env").read_text()

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--json")

    assert result.exit_code == 0, result.output
    summary = json_summary(result.stdout)
    assert summary["outcome"] == "ok"
    assert isinstance(summary["downtime_seconds"], float) and summary["downtime_seconds"] >= 0
    assert "downtime (first service stop to healthy):" in result.stderr
    # The live tree is the new release, with the live .env, its dependencies installed and the frontend built.
    assert json.loads((app_dir / "backend" / "package.json").read_text())["version"] == RELEASE_VERSION
    assert (app_dir / "backend" / ".env").read_text() == env_before
    assert (app_dir / "frontend" / "node_modules" / ".package-lock.json").is_file()  # the copy left node_modules out
    assert RELEASE_VERSION in (app_dir / "frontend" / "dist" / "spa" / "index.html").read_text()
    # The old tree is kept whole beside it; nothing is left in staging.
    (run_backup,) = world.backup_dir("chat").iterdir()  # <backup_dir>/<ts> of this run
    previous = app_dir.parent / f"zpro.io.previous-{run_backup.name}"
    assert json.loads((previous / "backend" / "package.json").read_text())["version"] == "2.4.0"
    assert not list(app_dir.parent.glob("zpro.io.staging-*"))
    # The media moved (same inode: a rename, not a copy) and is no longer in the old tree.
    assert (app_dir / MEDIA_FILE).stat().st_ino == media_inode
    assert not (previous / MEDIA_FILE).exists()
    # The new migration ran from the staged backend and the apps run again (one restart each).
    migrate = [record for record in world.journal("chat") if record["argv"][:4] == ["npx", "--no-install", "sequelize", "db:migrate"]]
    assert len(migrate) == 1 and ".staging-" in migrate[0]["cwd"]
    apps = pm2_list(world, "chat")
    assert {(app["name"], app["pm2_env"]["status"], app["pm2_env"]["restart_time"]) for app in apps} == {
        ("zpro-backend", "online", 1),
        ("zpro-frontend", "online", 1),
    }
    assert f"up {NEW_MIGRATION}" in migrate_status(world, "chat", app_dir / "backend")


def test_upgrade_chat_stops_before_downtime_and_prints_rollback_when_build_fails(world: PlaybookWorld) -> None:
    world.hosts.set_responses(
        "chat",
        {"rules": [{"prefix": ["npm", "run", "build"], "stderr": "FATAL ERROR: JavaScript heap out of memory\n", "exit": 1}]},
    )
    app_dir = world.app_dir("chat")

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 1, result.output
    calls = [record["argv"] for record in world.journal("chat")]
    assert ["npm", "run", "build"] in calls
    assert not [call for call in calls if call[0] == "pm2" and call[1:2] != ["jlist"]], "a service was stopped"
    assert not [call for call in calls if contains("db:migrate")(call) and "db:migrate:status" not in call]
    event = world.completed_snapshot("chat")
    end = world.run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("failed", "stage: frontend npm run build")
    assert "ROLLBACK" in result.stderr
    restore = f"opsguard restore chat --snapshot {event['snapshot_id']}"
    assert result.stderr.count(restore) == 1, result.stderr  # the plan's own line; the runner does not repeat it
    assert "downtime (first service stop to healthy)" not in result.stderr
    # The live site was never touched: same version, no swap, apps online without a restart.
    assert json.loads((app_dir / "backend" / "package.json").read_text())["version"] == "2.4.0"
    assert not list(app_dir.parent.glob("zpro.io.previous-*"))
    assert {app["pm2_env"]["status"] for app in pm2_list(world, "chat")} == {"online"}


def test_upgrade_chat_fails_verification_and_prints_rollback_when_apps_do_not_come_back(world: PlaybookWorld) -> None:
    # pm2 says it restarted the apps but does not (the rule answers instead of the stub's pm2): nothing listens.
    restart_says_ok = {"prefix": ["pm2", "restart"], "stdout": "[PM2] Applying action restartProcessId on app\n"}
    world.hosts.set_responses("chat", {"rules": [restart_says_ok]})

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 1, result.output
    end = world.run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("failed", "verify: backend answers on localhost:PORT")
    assert "ROLLBACK" in result.stderr and "Couldn't connect to server" in result.stderr
    assert {app["pm2_env"]["status"] for app in pm2_list(world, "chat")} == {"stopped"}


# -- the stack upgrade (ia) and the OS update (chat2) ---------------------------------------------------


def test_upgrade_ia_dumps_then_pulls_and_recreates_after_snapshot_when_healthy(world: PlaybookWorld) -> None:
    result = world.cli("upgrade", "ia", "--yes")

    assert result.exit_code == 0, result.output
    calls = assert_changes_after_snapshot(world, "ia")
    order = [
        position(calls, contains("exec", "typebot-db", "sh"), "pg_dump inside typebot-db"),
        position(calls, contains("exec", "typebot-db", "pg_restore", "-l"), "pg_restore -l of the dump"),
        position(calls, contains("compose", "pull"), "docker compose pull"),
        position(calls, contains("compose", "up", "-d", "--remove-orphans"), "docker compose up -d"),
        position(calls, starts("curl"), "a health check"),
        position(calls, starts("docker", "image", "prune", "-f"), "docker image prune"),
    ]
    assert order == sorted(order), [" ".join(calls[index]) for index in order]
    # Only the app services are pulled: the database image stays as pinned.
    (pull,) = [call for call in calls if contains("compose", "pull")(call)]
    assert pull[pull.index("pull") + 1 :] == ["typebot-builder", "typebot-viewer", "n8n"]
    (dump,) = world.backup_dir("ia").glob("*/typebot-db.dump")
    assert dump.read_bytes().startswith(b"PGDMP")


def test_upgrade_ia_rollback_names_recorded_digests_when_recreate_fails(world: PlaybookWorld) -> None:
    world.hosts.set_responses("ia", {"rules": [{"regex": r"^docker compose up ", "stderr": "Error response from daemon: pull access denied\n", "exit": 1}]})

    result = world.cli("upgrade", "ia", "--yes")

    assert result.exit_code == 1, result.output
    assert world.run_end("ia")["failed_step"] == "recreate changed services"
    # The rollback pins each service back to the registry digest of the image it ran before the change.
    for service, image in (("typebot-db", "postgres:16.4"), ("n8n", "n8nio/n8n:1.64.3"),
                           ("typebot-viewer", "baptistearno/typebot-viewer:2.27.0")):  # fmt: skip
        assert f"{service}={repo_digest(image)}" in result.stderr, result.stderr


def test_update_chat2_runs_apt_with_safe_options_after_snapshot_when_healthy(world: PlaybookWorld) -> None:
    result = world.cli("update", "chat2", "--yes")

    assert result.exit_code == 0, result.output
    calls = assert_changes_after_snapshot(world, "chat2")
    apt = [record for record in world.journal("chat2") if record["argv"][0] == "apt-get"]
    assert [record["argv"][len(APT_OPTIONS) + 1 :] for record in apt] == [["update"], ["-s", "upgrade"], ["-y", "upgrade"]]
    for record in apt:
        assert tuple(record["argv"][1 : len(APT_OPTIONS) + 1]) == APT_OPTIONS
        assert record["env"] == APT_ENV
    assert not [call for call in calls if contains("reboot")(call)]  # no --allow-reboot: never rebooted
    assert_pm2_only_by_name(calls)


# -- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "command"),
    [("chat", ("upgrade", "chat", "--package", "{package}")), ("ia", ("upgrade", "ia")), ("chat2", ("update", "chat2"))],
)
def test_change_playbook_refuses_at_preflight_without_snapshot_when_disk_is_95_percent_full(
    world: PlaybookWorld, host: str, command: tuple[str, ...]
) -> None:
    world.hosts.set_responses(host, {"rules": [disk_full_rule(95)]})
    args = [word.format(package=world.release()) for word in command]

    result = world.cli(*args, "--yes")

    assert result.exit_code == 3, result.output
    assert "disk too full" in result.stderr and "95%" in result.stderr
    assert world.snapshot_posts() == []  # no snapshot was even asked for
    assert world.ledger(host, "snapshot-requested") == []
    assert world.mutating(host) == []
    assert any(record["argv"][0] == "df" for record in world.journal(host))  # it did look


@pytest.mark.parametrize(("host", "playbook"), [("chat", "platform_upgrade"), ("ia", "stack_upgrade"), ("chat2", "update")])
def test_plan_refuses_first_mutating_step_when_session_is_read_only(world: PlaybookWorld, host: str, playbook: str) -> None:
    inventory = load_inventory(world.inventory)
    overrides: dict[str, Any] = {"package": str(world.release())} if playbook == "platform_upgrade" else {}
    plan = build_plan(playbook, inventory.host(host), overrides)
    first_mutating = next(step for step in plan.change if step.mutates)

    with read_only_session(host, inventory=inventory) as session, pytest.raises(ReadOnlyViolation) as refused:
        for step in plan.change:
            run_step(session, step, {key: str(value) for key, value in plan.params.items() if value is not None})

    assert repr(first_mutating.name) in str(refused.value)
    assert world.journal(host) == []  # refused before the command left opsguard
    assert world.snapshot_posts() == []


# -- helpers --------------------------------------------------------------------------------------------


def run_step(session: ChangeSession, step: Step, facts: dict[str, str]) -> None:
    """Run one plan step in a session the way the runner does (upload or command, as the step's user)."""
    if step.upload is not None:
        local, remote = (render(part, facts) for part in step.upload)
        session.upload(Path(local), remote, name=step.name)
        return
    session.run(render(step.shell_text(), facts), mutates=step.mutates, name=step.name, timeout=step.timeout,
                ok_codes=step.ok_codes, sudo_user=step.sudo_user)  # fmt: skip


def pm2_list(world: PlaybookWorld, host: str) -> list[dict[str, Any]]:
    """Given a Zpro host, return its deploy user's `pm2 jlist` as the host answers it now."""
    return host_json(world, host, "pm2 jlist", sudo_user="deployzdg")


def migrate_status(world: PlaybookWorld, host: str, backend: Path) -> str:
    """Given a Zpro host and a backend dir, return `npx sequelize db:migrate:status` run there as the deploy user."""
    return host_run(world, host, f"cd {backend} && npx sequelize db:migrate:status", sudo_user="deployzdg")


def host_json(world: PlaybookWorld, host: str, command: str, sudo_user: str | None = None) -> Any:
    return json.loads(host_run(world, host, command, sudo_user=sudo_user))


def host_run(world: PlaybookWorld, host: str, command: str, sudo_user: str | None = None) -> str:
    """Given a host and a read-only command, run it over SSH (not through opsguard's CLI) and return its stdout."""
    from opsguard.transport import connect

    inventory = load_inventory(world.inventory)
    with connect(inventory.host(host), inventory.settings) as connection:
        result = connection.run(command, timeout=20, sudo_user=sudo_user)
    assert result.exit_status == 0, result.stderr
    return result.stdout



# -- hole 8: preflight is truly read-only ------------------------------------------------------------------


def test_upgrade_refuses_when_pm2_is_not_running_and_starts_no_daemon(world: PlaybookWorld) -> None:
    pid_file = world.app_dir("chat").parent / ".pm2" / "pm2.pid"
    pid_file.unlink()  # the deploy user's pm2 daemon is not running

    result = world.cli("upgrade", "chat", "--yes", "--package", str(world.release()))

    assert result.exit_code == 3, result.output
    assert "pm2 is not running" in result.stderr and "no snapshot was taken" in result.stderr
    assert not pid_file.exists(), "asking pm2 anything would have started a daemon (writing ~/.pm2)"
    assert [record for record in world.journal("chat") if record["argv"][0] == "pm2"] == []
    assert world.changes("chat") == []
    assert world.snapshot_posts() == []


# Each rule fails the plan's LAST preflight step, so every probe before it has run.
LAST_PROBE_FAILS = {
    "chat": {"prefix": ["docker", "exec"], "regex": "SequelizeMeta", "exit": 1, "stderr": 'relation "SequelizeMeta" does not exist\n'},
    "chat2": {"prefix": ["docker", "ps"], "exit": 1, "stderr": "Cannot connect to the Docker daemon\n"},
    "ia": {"prefix": ["docker", "compose", "exec"], "regex": "pg_isready", "exit": 2},
}


@pytest.mark.parametrize(("host", "playbook"), [("chat", "upgrade"), ("chat2", "update"), ("ia", "upgrade")])
def test_preflight_refusal_leaves_every_command_line_read_only(world: PlaybookWorld, host: str, playbook: str) -> None:
    world.hosts.set_responses(host, {"rules": [LAST_PROBE_FAILS[host]]})
    package = ("--package", str(world.release())) if host == "chat" else ()

    result = world.cli(playbook, host, "--yes", *package)

    assert result.exit_code == 3, result.output
    sessions = world.hosts.sessions(host)
    assert len(sessions) >= 5, [s.command for s in sessions]
    assert world.changes(host) == [], "a preflight probe may have changed the host"
    assert not any("nginx -t" in s.command or "db:migrate" in s.command for s in sessions)
    assert world.snapshot_posts() == []
