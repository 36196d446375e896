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


def test_update_reboots_reconnects_and_verifies_when_allowed(world: PlaybookWorld) -> None:
    reboot_that_drops_the_connection(world, "chat2")

    result = world.cli("update", "chat2", "--yes", "--allow-reboot")

    assert result.exit_code == 0, result.output
    assert "reconnecting" in result.stderr
    argv = [record["argv"] for record in world.journal("chat2")]
    assert ["systemctl", "reboot"] in argv
    assert world.run_end("chat2")["outcome"] == events.OK


def test_update_never_reboots_without_allow_reboot(world: PlaybookWorld) -> None:
    reboot_that_drops_the_connection(world, "chat2")

    result = world.cli("update", "chat2", "--yes")

    assert result.exit_code == 0, result.output
    assert ["systemctl", "reboot"] not in [record["argv"] for record in world.journal("chat2")]
