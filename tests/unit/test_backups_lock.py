"""backup-check run lock: one run at a time; the second waits briefly, then exits 4 naming the holder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsguard.backups import BackupCheckRunning
from opsguard.commands.backup_check import LOCK_NAME, run_lock
from opsguard.errors import ConfigError


def test_run_lock_creates_state_dir_and_records_holder(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    with run_lock(state_dir, 0.0) as path:
        assert path == state_dir / LOCK_NAME
        assert path.read_text().startswith(f"pid={os.getpid()} started=")


def test_run_lock_raises_with_holder_when_already_held(tmp_path: Path) -> None:
    with run_lock(tmp_path, 0.0), pytest.raises(BackupCheckRunning) as raised, run_lock(tmp_path, 0.2):
        pytest.fail("a second holder got the lock")
    assert raised.value.exit_code == 4
    assert f"another backup-check is running (pid {os.getpid()}, started " in str(raised.value)


def test_run_lock_acquired_again_when_first_released(tmp_path: Path) -> None:
    with run_lock(tmp_path, 0.0):
        pass
    with run_lock(tmp_path, 0.0) as path:
        assert path.exists()


def test_run_lock_config_error_when_state_dir_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create the backup-check lock"), run_lock(blocker / "state", 0.0):
        pass
