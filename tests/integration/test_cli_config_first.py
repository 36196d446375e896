"""Configuration problems come first: before any confirmation, snapshot or SSH (the shipped inventory has no ids)."""

from __future__ import annotations

from tests.fixtures.cli_fixtures import REPO_ROOT, run_cli

SHIPPED = str(REPO_ROOT / "inventory.toml")


def test_update_all_lists_every_missing_instance_before_touching_any_host() -> None:
    result = run_cli("-i", SHIPPED, "update", "--all", "--yes", input_text="")
    assert result.exit_code == 78, result.output
    assert result.stderr.splitlines() == [
        f"{SHIPPED}: hosts.{name}.instance is not set (run 'opsguard discover')" for name in ("chat", "chat2", "ia")
    ]


def test_exec_reports_missing_instance_before_asking_for_confirmation() -> None:
    result = run_cli("-i", SHIPPED, "exec", "chat", "--", "uptime", input_text="")
    assert result.exit_code == 78, result.output
    assert "hosts.chat.instance is not set" in result.stderr
    assert "confirmation" not in result.stderr
