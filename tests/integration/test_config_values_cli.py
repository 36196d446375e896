"""Configuration values that used to crash or exit 2 through the real CLI: each is one line, exit 78.

No sockets: both commands stop at the configuration before any provider is called.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import run_cli
from tests.unit.inventory_cases import VALID


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(VALID, encoding="utf-8")
    return path


def test_validate_exits_78_naming_file_when_inventory_nesting_is_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")

    result = run_cli("-i", str(path), "validate")

    assert result.exit_code == 78, result.output
    assert len(result.stderr.splitlines()) == 1 and str(path) in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["1", "ten seconds", "-5s"])
def test_backup_check_exits_78_naming_variable_when_lock_wait_env_is_not_a_duration(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.delenv("OPSGUARD_BACKUP_CHECK_LOCK_WAIT", raising=False)

    result = run_cli("-i", str(inventory), "backup-check", env={"OPSGUARD_BACKUP_CHECK_LOCK_WAIT": value})

    assert result.exit_code == 78, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "OPSGUARD_BACKUP_CHECK_LOCK_WAIT" in result.stderr and '"10s"' in result.stderr


def test_backup_check_lock_wait_option_stays_usage_error_when_not_a_duration(inventory: Path) -> None:
    result = run_cli("-i", str(inventory), "backup-check", "--lock-wait", "1")

    assert result.exit_code == 2, result.output
    assert "--lock-wait" in result.stderr
