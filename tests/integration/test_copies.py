"""Copies off the host (issue 15): after the snapshot and before the first service stops, the Zpro upgrade copies
the verified dump, the .env files and the nginx sites to <state_dir>/copies/<host>/<run>/ (0700/0600), verified
by sha256 against the host's own sums; a corrupted download stops the run before any service stops; older
runs' copies are pruned; copies that would not fit are refused before the snapshot; and what was copied is
never printed. Real CLI, real sshd hosts (base64 is a stub only so a rule can corrupt a copy)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from tests.integration.playbook_support import PlaybookWorld, json_summary, position, starts

pytestmark = pytest.mark.integration

COPY_STEP = "copy off the host: the dump, .env files, nginx sites"
SECRET = "jwt-SECRET-5a9e1c"  # a recognisable secret in the host's backend/.env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_dir(world: PlaybookWorld, host: str) -> Path:
    run_id = world.run_end(host)["run_id"]
    return world.state_dir / "copies" / host / run_id


def plant_secret(world: PlaybookWorld, host: str) -> Path:
    env = world.app_dir(host) / "backend" / ".env"
    env.write_text(env.read_text().replace("JWT_SECRET=sandbox-not-a-secret", f"JWT_SECRET={SECRET}"))
    return env


def test_upgrade_chat_copies_dump_env_and_nginx_off_the_host_verified_by_checksum(world: PlaybookWorld) -> None:
    env = plant_secret(world, "chat")

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--json")

    assert result.exit_code == 0, result.output
    target = copy_dir(world, "chat")
    (run_backup,) = world.backup_dir("chat").iterdir()
    expected = {
        "database.dump": run_backup / "database.dump",
        "env/backend/.env": env,
        "env/frontend/.env": world.app_dir("chat") / "frontend" / ".env",
        "nginx-sites/zpro-backend": Path(world.hosts.host_vars("chat")["nginx_sites_dir"]) / "zpro-backend",
        "nginx-sites/zpro-frontend": Path(world.hosts.host_vars("chat")["nginx_sites_dir"]) / "zpro-frontend",
    }
    # Every copy holds exactly the host's bytes; the manifest and the ledger carry the same sums.
    for name, original in expected.items():
        assert (target / name).read_bytes() == original.read_bytes(), name
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600, name
    for directory in (target, target.parent, target.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    manifest = json.loads((target / "manifest.json").read_text())
    assert {item["name"]: item["sha256"] for item in manifest["files"]} == {name: sha256(path) for name, path in expected.items()}
    (record,) = world.ledger("chat", "copies")
    assert record["dir"] == str(target) and {item["name"] for item in record["files"]} == set(expected)
    # After the snapshot, before the apps stopped; the host was only read to make them (no SFTP, no write).
    calls = [record["argv"] for record in world.journal("chat")]
    assert position(calls, starts("base64", "--"), "a copy") < position(calls, starts("pm2", "stop"), "pm2 stop")
    assert world.journal("chat")[position(calls, starts("base64", "--"), "a copy")]["time"] > world.completed_snapshot("chat")["completed_at"]
    assert not [line for line in world.changes("chat") if "base64" in line or "sha256sum --" in line]
    assert (step := next(s for s in json_summary(result.stdout)["steps"] if s["name"] == COPY_STEP))["result"] == "ok", step
    # SAFETY: what was copied is never shown or recorded: not in the output, not in the ledger.
    ledger_text = (world.state_dir / "ledger.jsonl").read_text()
    for text in (result.stdout, result.stderr, ledger_text):
        assert SECRET not in text


def test_upgrade_chat_stops_before_any_service_stops_when_a_download_is_corrupted(world: PlaybookWorld) -> None:
    env = world.app_dir("chat") / "backend" / ".env"
    flipped = env.read_bytes().replace(b"PORT=3000", b"PORT=3001")  # one byte off, same size: only the sum tells
    world.hosts.set_responses("chat", {"rules": [
        {"prefix": ["base64"], "regex": r"/env/backend/\.env$", "stdout": base64.encodebytes(flipped).decode()}]})

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 1, result.output
    end = world.run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("failed", f"change: {COPY_STEP}")
    assert "env/backend/.env" in result.stderr and "the download is corrupted" in result.stderr
    assert f"differs from the host's {sha256(env)}" in result.stderr
    assert not (copy_dir(world, "chat") / "env" / "backend" / ".env").exists()  # the bad copy is removed
    calls = [record["argv"] for record in world.journal("chat")]
    assert not [call for call in calls if call[:2] == ["pm2", "stop"]], "a service stopped after a bad copy"


def test_upgrade_chat_keeps_only_the_last_copies_per_host_when_copies_keep_is_2(world: PlaybookWorld) -> None:
    copies = world.state_dir / "copies"
    old = ["20200101T000000Z-aaaaaa", "20210101T000000Z-bbbbbb", "20220101T000000Z-cccccc"]
    for run in old:
        (copies / "chat" / run).mkdir(parents=True)
    (copies / "chat2" / old[0]).mkdir(parents=True)  # another host's copies are not counted

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--var", "copies_keep=2")

    assert result.exit_code == 0, result.output
    current = world.run_end("chat")["run_id"]
    assert sorted(entry.name for entry in (copies / "chat").iterdir()) == [old[-1], current]
    assert (copies / "chat2" / old[0]).is_dir()
    assert f"removed the copies of run {old[0]}" in result.stderr


def test_upgrade_chat_refuses_before_the_snapshot_when_the_copies_exceed_the_cap(world: PlaybookWorld) -> None:
    # The sandbox database is ~184 MB: its dump alone is above a 0.1 GB cap.
    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes", "--var", "copies_max_gb=0.1")

    assert result.exit_code == 3, result.output
    assert "above the cap copies_max_gb = 0.10 GB" in result.stderr and "no snapshot was taken" in result.stderr
    assert world.snapshot_posts() == []
    assert world.changes("chat") == []


def test_upgrade_chat_stops_a_copy_at_the_host_files_size_when_more_bytes_arrive(world: PlaybookWorld) -> None:
    env = world.app_dir("chat") / "backend" / ".env"
    # The file grew after stat (or the host is hostile): 4 MB stream in for a file of a few hundred bytes.
    flood = base64.encodebytes(env.read_bytes() + b"#" * 4_000_000).decode()
    world.hosts.set_responses("chat", {"rules": [{"prefix": ["base64"], "regex": r"/env/backend/\.env$", "stdout": flood}]})

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 1, result.output
    end = world.run_end("chat")
    assert (end["outcome"], end["failed_step"]) == ("failed", f"change: {COPY_STEP}")
    assert f"more than the {env.stat().st_size} bytes the file on the host has arrived" in result.stderr
    target = copy_dir(world, "chat")
    assert not list(target.rglob("*.partial")) and not (target / "env" / "backend" / ".env").exists()
    calls = [record["argv"] for record in world.journal("chat")]
    assert not [call for call in calls if call[:2] == ["pm2", "stop"]], "a service stopped after a bad copy"


def test_upgrade_chat_keeps_plain_sums_of_copied_env_files_out_of_the_ledger(world: PlaybookWorld) -> None:
    env = plant_secret(world, "chat")

    result = world.cli("upgrade", "chat", "--package", str(world.release()), "--yes")

    assert result.exit_code == 0, result.output
    ledger_text = (world.state_dir / "ledger.jsonl").read_text()
    assert sha256(env) not in ledger_text  # a weak secret's plain sum would let anyone holding the ledger guess it
    manifest = json.loads((copy_dir(world, "chat") / "manifest.json").read_text())
    assert {item["name"]: item["sha256"] for item in manifest["files"]}["env/backend/.env"] == sha256(env)
    assert stat.S_IMODE((copy_dir(world, "chat") / "manifest.json").stat().st_mode) == 0o600


def test_upgrade_chat_keeps_the_copies_of_a_failed_run_and_hand_made_dirs_when_pruning(world: PlaybookWorld) -> None:
    hand_made = world.state_dir / "copies" / "chat" / "0-KEEP-forever-hand-made"
    hand_made.mkdir(parents=True)
    world.hosts.set_channels("chat", lose_session=["Vendas"])  # the first run fails after its copies: unsettled
    package = str(world.release())
    failed = world.cli("upgrade", "chat", "--package", package, "--yes", "--var", "channels_wait=1")
    assert failed.exit_code == 1, failed.output
    failed_run = world.run_end("chat")["run_id"]
    world.hosts.set_channels("chat", lose_session=[])

    result = world.cli("upgrade", "chat", "--package", package, "--yes", "--var", "copies_keep=1")

    assert result.exit_code == 0, result.output
    current = world.ledger("chat", "run-ended")[-1]["run_id"]
    assert sorted(entry.name for entry in (world.state_dir / "copies" / "chat").iterdir()) == [
        hand_made.name, failed_run, current]
    assert (world.state_dir / "copies" / "chat" / failed_run / "database.dump").is_file()
