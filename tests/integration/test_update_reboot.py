"""`opsguard update --allow-reboot`: the reboot drops the SSH connection; the run reconnects and finishes."""

from __future__ import annotations

from pathlib import Path

from opsguard import ledger as events
from tests.integration.playbook_support import PlaybookWorld


def reboot_that_drops_the_connection(world: PlaybookWorld, host: str) -> None:
    """The host needs a reboot; `systemctl reboot` writes a new boot id and kills the SSH session."""
    host_vars = world.hosts.host_vars(host)
    Path(host_vars["reboot_required_file"]).write_text("*** System restart required ***\n")
    world.hosts.set_responses(host, {"rules": [
        {"prefix": ["systemctl", "reboot"], "write_file": {"path": host_vars["boot_id_file"], "text": "rebooted-0001\n"},
         "drop": "all"},
    ]})


def test_update_reboots_reconnects_retakes_the_lock_and_verifies_when_allowed(world: PlaybookWorld) -> None:
    reboot_that_drops_the_connection(world, "chat2")
    lock_dir = str(world.hosts.host("chat2").root / "run" / "lock" / "opsguard")

    result = world.cli("update", "chat2", "--yes", "--allow-reboot")

    assert result.exit_code == 0, result.output
    assert "reconnecting" in result.stderr
    (reboot,) = [record for record in world.journal("chat2") if record["argv"] == ["systemctl", "reboot"]]
    # The reboot emptied /run/lock: the lock was taken again on the new connection, after the reboot.
    taken = [session for session in world.hosts.sessions("chat2") if lock_dir in session.command and "echo ACQUIRED" in session.command]
    assert len(taken) == 2 and taken[1].time > reboot["time"], taken
    # The verification saw the new boot id, on a connection opened after the reboot.
    assert world.hosts.host_vars("chat2")["boot_id_file"]
    assert Path(world.hosts.host_vars("chat2")["boot_id_file"]).read_text() == "rebooted-0001\n"
    steps = {record["step"]: record for record in world.ledger("chat2", "step") if record.get("phase") == "read"}
    assert any("back after the reboot" in name or "boot id" in name for name in steps), sorted(steps)
    assert world.run_end("chat2")["outcome"] == events.OK
    assert not Path(lock_dir).exists()


def test_update_never_reboots_without_allow_reboot(world: PlaybookWorld) -> None:
    reboot_that_drops_the_connection(world, "chat2")

    result = world.cli("update", "chat2", "--yes")

    assert result.exit_code == 0, result.output
    assert ["systemctl", "reboot"] not in [record["argv"] for record in world.journal("chat2")]
