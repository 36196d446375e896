"""The record of the last change that opsguard keeps ON the host protects Hostinger's one snapshot across machines."""

from __future__ import annotations

from pathlib import Path

from tests.integration.guard_support import GuardWorlds


def test_guard_refuses_hostinger_overwrite_from_another_machine_after_failed_change(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    failed = world.cli("exec", "chat2", "--yes", "--", "exit 3")
    assert failed.exit_code == 1, failed.output
    posts_before = len([r for r in world.sim.journal() if r["method"] == "POST"])

    other_machine = {"OPSGUARD_STATE_DIR": str(tmp_path / "another-machine")}  # its own, empty ledger
    result = world.cli("exec", "chat2", "--yes", "--", "true", env=other_machine)

    assert result.exit_code == 3, result.output
    assert "the host records that the last change" in result.stderr and "--overwrite-snapshot" in result.stderr
    assert len([r for r in world.sim.journal() if r["method"] == "POST"]) == posts_before
    forced = world.cli("exec", "chat2", "--yes", "--overwrite-snapshot", "--", "true", env=other_machine)
    assert forced.exit_code == 0, forced.output
