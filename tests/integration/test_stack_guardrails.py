"""The compose stack upgrade's guardrails and copies (issue 15): n8n's encryption key must be kept (environment or
config) or the upgrade is refused before the snapshot; n8n and Typebot may not jump a major version without
--allow-major (the configured tag: refused before the snapshot; a floating tag: stopped after the pull, before
anything runs the new image); the compose files, .env, dumps and n8n's key/config are copied off the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsguard.sandbox.hosts import N8N_CONFIG
from tests.integration.playbook_support import PlaybookWorld, contains

pytestmark = pytest.mark.integration

KEY = "n8nkey-SECRET-0d4f7b"
PULL_CHECK = "no major version jump in the pulled images (n8n, Typebot)"


def compose_file(world: PlaybookWorld) -> Path:
    return Path(world.hosts.host_vars("ia")["compose_dir"]) / "docker-compose.yml"


def set_n8n_image(world: PlaybookWorld, image: str) -> None:
    path = compose_file(world)
    path.write_text(path.read_text().replace("image: n8nio/n8n:1.64.3", f"image: {image}"))


def recreated(world: PlaybookWorld) -> bool:
    return any(contains("compose", "up")(record["argv"]) for record in world.journal("ia"))


def test_upgrade_ia_copies_compose_files_dumps_and_n8n_config_off_the_host(world: PlaybookWorld) -> None:
    config = world.hosts.host("ia").path(N8N_CONFIG)
    config.write_text(json.dumps({"encryptionKey": KEY}))

    result = world.cli("upgrade", "ia", "--yes", "--json")

    assert result.exit_code == 0, result.output
    target = world.state_dir / "copies" / "ia" / world.run_end("ia")["run_id"]
    stack = compose_file(world).parent
    (run_backup,) = world.backup_dir("ia").iterdir()
    assert (target / "compose" / "docker-compose.yml").read_bytes() == (stack / "docker-compose.yml").read_bytes()
    assert (target / "compose" / ".env").read_bytes() == (stack / ".env").read_bytes()
    assert (target / "dumps" / "typebot-db.dump").read_bytes() == (run_backup / "typebot-db.dump").read_bytes()
    assert (target / "n8n" / "config").read_bytes() == config.read_bytes()
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["missing"] == ["$N8N_ENCRYPTION_KEY of service n8n"]  # the key is in the config, not the environment
    # SAFETY: the key is copied, never shown or recorded.
    for text in (result.stdout, result.stderr, (world.state_dir / "ledger.jsonl").read_text()):
        assert KEY not in text


def test_upgrade_ia_copies_the_key_from_the_environment_when_n8n_has_no_config(world: PlaybookWorld) -> None:
    world.hosts.host("ia").path(N8N_CONFIG).unlink()
    path = compose_file(world)
    path.write_text(path.read_text().replace("image: n8nio/n8n:1.64.3\n",
                                             f"image: n8nio/n8n:1.64.3\n    environment:\n      - N8N_ENCRYPTION_KEY={KEY}\n"))

    result = world.cli("upgrade", "ia", "--yes")

    assert result.exit_code == 0, result.output
    target = world.state_dir / "copies" / "ia" / world.run_end("ia")["run_id"]
    assert (target / "n8n" / "N8N_ENCRYPTION_KEY").read_text() == KEY + "\n"
    assert not (target / "n8n" / "config").exists()
    assert KEY not in result.stdout + result.stderr


def test_upgrade_ia_refuses_before_the_snapshot_when_n8n_encryption_key_is_missing(world: PlaybookWorld) -> None:
    world.hosts.host("ia").path(N8N_CONFIG).unlink()  # no config, and no N8N_ENCRYPTION_KEY in its environment

    result = world.cli("upgrade", "ia", "--yes")

    assert result.exit_code == 3, result.output
    assert "n8n's encryption key is neither in its environment (N8N_ENCRYPTION_KEY) nor in /home/node/.n8n/config" in result.stderr
    assert "every stored credential would become unreadable" in result.stderr and "no snapshot was taken" in result.stderr
    assert world.snapshot_posts() == []
    assert world.changes("ia") == []


def test_upgrade_ia_refuses_before_the_snapshot_when_the_n8n_tag_jumps_a_major_unless_allowed(world: PlaybookWorld) -> None:
    set_n8n_image(world, "n8nio/n8n:2.0.1")
    world.hosts.set_stack_images("ia", running={"n8n": "n8nio/n8n:1.64.3"})  # it still runs 1.x

    refused = world.cli("upgrade", "ia", "--yes")

    assert refused.exit_code == 3, refused.output
    assert "major version jump in the configured tags: n8n 1.64.3 -> 2.0.1" in refused.stderr
    assert "--allow-major" in refused.stderr
    assert world.snapshot_posts() == [] and world.changes("ia") == []

    allowed = world.cli("upgrade", "ia", "--yes", "--allow-major")

    assert allowed.exit_code == 0, allowed.output
    assert recreated(world)


def test_upgrade_ia_stops_before_recreating_when_a_floating_tag_pulls_a_new_major(world: PlaybookWorld) -> None:
    set_n8n_image(world, "n8nio/n8n:latest")
    world.hosts.set_stack_images("ia", running={"n8n": "n8nio/n8n:latest"}, local={"n8nio/n8n:latest": "1.64.3"},
                                 registry={"n8nio/n8n:latest": "2.1.0"})  # latest moved to 2.x since the last pull

    result = world.cli("upgrade", "ia", "--yes")

    assert result.exit_code == 1, result.output
    end = world.run_end("ia")
    assert (end["outcome"], end["failed_step"]) == ("failed", f"change: {PULL_CHECK}")
    assert "major version jump in the pulled images (nothing runs them yet): n8n 1.64.3 -> 2.1.0" in result.stderr
    assert not recreated(world)  # the old containers keep running the old images
