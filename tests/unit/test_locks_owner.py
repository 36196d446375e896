"""The lock owner record names the OS account, and the local lock's set-up errors are configuration."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from opsguard import errors
from opsguard.locks import LocalLock, owner_record


def test_owner_record_user_is_os_account_when_user_env_is_forged(monkeypatch: pytest.MonkeyPatch) -> None:
    account = pwd.getpwuid(os.getuid()).pw_name
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "admin-forged")

    owner = owner_record("r1", "test")

    assert owner["user"] == account
    assert set(owner) == {"run_id", "user", "machine", "machine_id", "pid", "since", "reason"}


def test_owner_record_user_is_uid_when_account_has_no_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.setenv("USER", "admin-forged")

    assert owner_record("r1", "test")["user"] == str(os.getuid())


def test_local_lock_acquire_raises_config_error_naming_path_when_state_dir_is_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    lock = LocalLock(blocker / "state", "chat")

    with pytest.raises(errors.ConfigError) as raised:
        lock.acquire(owner_record("r1", "test"))

    assert str(blocker / "state") in str(raised.value) and "Not a directory" in str(raised.value)
    assert raised.value.exit_code == 78


def test_local_lock_acquire_raises_config_error_and_releases_when_owner_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from opsguard import locks

    def full(descriptor: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    lock = LocalLock(tmp_path, "chat")
    monkeypatch.setattr(locks.os, "write", full)

    with pytest.raises(errors.ConfigError, match="No space left on device") as raised:
        lock.acquire(owner_record("r1", "test"))
    monkeypatch.undo()

    assert str(lock.path) in str(raised.value)
    assert lock.holder() is None, "a failed acquire must not keep the lock"
    lock.acquire(owner_record("r2", "test"))  # and a later run can take it
    lock.release()
