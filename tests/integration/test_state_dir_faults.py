"""Fault injection on the state dir: a full filesystem, a read-only one, a path under a file, a torn line.

The ledger decides whether Hostinger's only snapshot may be replaced, so each fault must end in
one line naming the path (never exit 70), and must never leave a record that breaks the reader.

Full and read-only filesystems are small tmpfs mounts made by the test: that needs root (tests
run as root in CI, where root ignores directory permissions, so chmod cannot make a directory
read-only) and a working ``mount``; elsewhere those cases are skipped with the reason. Every
mount is removed in a ``finally``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsguard import errors
from opsguard import ledger as events
from opsguard.ledger import Ledger
from opsguard.locks import LocalLock, owner_record
from tests.integration.guard_support import GuardWorld, GuardWorlds

pytestmark = pytest.mark.integration

LONG_REASON = "atualização " * 600  # ~8 KB: larger than what is left in the ledger's last page


def _mount(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *arguments], capture_output=True, text=True, check=False, timeout=30)


def _unmount(path: Path) -> None:
    result = subprocess.run(["umount", str(path)], capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        # Something still holds it open (a child still running): detach it so nothing leaks past the test.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True, check=False, timeout=30)


@contextmanager
def tmpfs(path: Path, *, size: str = "64k", read_only: bool = False) -> Iterator[Path]:
    """Given a directory, mount a small private tmpfs on it for the block; skip the test where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (as a normal user a read-only dir can be made with chmod instead)")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if read_only else "")
    result = _mount("-t", "tmpfs", "-o", options, "opsguard-test", str(path))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN in this container?): {result.stderr.strip()}")
    try:
        yield path
    finally:
        _unmount(path)


def remount_read_only(path: Path) -> None:
    """Given a mounted tmpfs, make it read-only in place (its files stay readable)."""
    result = _mount("-o", "remount,ro", str(path))
    assert result.returncode == 0, result.stderr


def fill(directory: Path) -> Path:
    """Given a directory on a small filesystem, write a filler file until the filesystem is full; return it."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                if os.write(descriptor, b"\0" * 4096) == 0:
                    break
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
        # The last page may still take a few bytes.
        while True:
            try:
                if os.write(descriptor, b"\0") == 0:
                    break
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
    finally:
        os.close(descriptor)
    return filler


def a_file_as_parent(tmp_path: Path) -> Path:
    """Return a state dir path whose parent is a regular file (ENOTDIR, even for root)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir's parent should be\n")
    return blocker / "state"


def assert_one_line_naming(stderr: str, *fragments: str) -> None:
    assert len(stderr.splitlines()) == 1, stderr
    for fragment in fragments:
        assert fragment in stderr, f"{fragment!r} not in {stderr!r}"
    assert "internal error" not in stderr and "Traceback" not in stderr


# -- a full filesystem -------------------------------------------------------------------------------


def test_ledger_append_raises_ledger_write_error_and_leaves_no_torn_record_when_filesystem_is_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full") as state_dir:
        ledger = Ledger(state_dir)
        ledger.append(events.RUN_STARTED, run_id="r1", host="chat2", reason="antes")
        before = ledger.path.read_bytes()
        filler = fill(state_dir)

        with pytest.raises(errors.LedgerWriteError) as raised:
            ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", error=LONG_REASON)

        assert_one_line_naming(str(raised.value), str(ledger.path), "No space left on device")
        assert raised.value.exit_code == 78
        assert ledger.path.read_bytes() == before, "a partial record was left behind"
        assert [r["event"] for r in ledger.records()] == [events.RUN_STARTED] and ledger.skipped_lines == 0

        filler.unlink()
        ledger.append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="ok")
        assert [r["event"] for r in ledger.records()] == [events.RUN_STARTED, events.RUN_ENDED]
        assert ledger.skipped_lines == 0


def test_check_free_space_raises_config_error_naming_free_bytes_when_filesystem_is_nearly_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", size="64k") as state_dir:
        fill(state_dir)
        free = os.statvfs(state_dir).f_bavail * os.statvfs(state_dir).f_frsize

        with pytest.raises(errors.ConfigError) as raised:
            events.check_free_space(state_dir, 1024 * 1024)

        assert_one_line_naming(str(raised.value), str(state_dir), f"{free} bytes free", "1048576")


def test_snapshot_exits_without_snapshot_naming_path_when_state_dir_is_full(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    with tmpfs(tmp_path / "full") as state_dir:
        fill(state_dir)

        result = world.cli("snapshot", "chat", env={"OPSGUARD_STATE_DIR": str(state_dir)})

        # The guard checks the state dir's free space before its first record: 78 naming the dir.
        assert result.exit_code == errors.EXIT_CONFIG, result.output
        assert str(state_dir) in result.stderr and "0 bytes free" in result.stderr
        assert "internal error" not in result.stderr
        assert world.snapshot_posts() == []


# -- a read-only state dir ---------------------------------------------------------------------------


def test_ledger_append_raises_ledger_write_error_naming_path_when_state_dir_is_read_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as mount_point:
        for state_dir in (mount_point, mount_point / "state"):
            with pytest.raises(errors.LedgerWriteError) as raised:
                Ledger(state_dir).append(events.RUN_STARTED, run_id="r1", host="chat")

            assert_one_line_naming(str(raised.value), str(state_dir), "Read-only file system")
            assert raised.value.exit_code == 78


def test_local_lock_acquire_raises_config_error_naming_path_when_state_dir_is_read_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as state_dir:
        with pytest.raises(errors.ConfigError) as raised:
            LocalLock(state_dir, "chat").acquire(owner_record("r1", "test"))

        assert_one_line_naming(str(raised.value), str(state_dir / "locks"), "Read-only file system")


def test_check_free_space_raises_config_error_naming_path_when_state_dir_is_read_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as state_dir:
        with pytest.raises(errors.ConfigError) as raised:
            events.check_free_space(state_dir, 1)

        assert_one_line_naming(str(raised.value), str(state_dir), "Read-only file system")


def test_snapshot_exits_78_naming_path_when_state_dir_is_read_only(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    with tmpfs(tmp_path / "ro", read_only=True) as state_dir:
        result = world.cli("snapshot", "chat", env={"OPSGUARD_STATE_DIR": str(state_dir)})

        assert result.exit_code == errors.EXIT_CONFIG, result.output
        assert_one_line_naming(result.stderr, str(state_dir), "Read-only file system")
        assert world.snapshot_posts() == []


def test_ledger_view_shows_records_when_state_dir_is_read_only(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    with tmpfs(tmp_path / "was-rw") as state_dir:
        Ledger(state_dir).append(events.RUN_ENDED, run_id="r1", host="chat2", outcome="failed", failed_step="migrate")
        remount_read_only(state_dir)

        result = world.cli("ledger", env={"OPSGUARD_STATE_DIR": str(state_dir)})

        assert result.exit_code == 0, result.output
        assert "ended: failed at step 'migrate'" in result.stdout


# -- a state dir under a regular file (ENOTDIR: works as any user, root included) ---------------------


def test_snapshot_exits_78_naming_path_when_state_dir_parent_is_a_file(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    state_dir = a_file_as_parent(tmp_path)

    result = world.cli("snapshot", "chat", env={"OPSGUARD_STATE_DIR": str(state_dir)})

    assert result.exit_code == errors.EXIT_CONFIG, result.output
    assert_one_line_naming(result.stderr, str(state_dir), "Not a directory")
    assert world.snapshot_posts() == []


def test_local_lock_acquire_raises_config_error_naming_path_when_state_dir_parent_is_a_file(tmp_path: Path) -> None:
    state_dir = a_file_as_parent(tmp_path)

    with pytest.raises(errors.ConfigError) as raised:
        LocalLock(state_dir, "chat").acquire(owner_record("r1", "test"))

    assert_one_line_naming(str(raised.value), str(state_dir), "Not a directory")


# -- a torn last line --------------------------------------------------------------------------------


def test_snapshot_of_hostinger_host_works_when_ledger_ends_in_torn_utf8_character(world_with_torn_ledger: GuardWorld) -> None:
    world = world_with_torn_ledger
    ledger = Ledger(world.state_dir)

    result = world.cli("snapshot", "chat2", "--reason", "segunda tentativa")

    assert result.exit_code == 0, result.output
    records = ledger.records("chat2")
    assert [r["event"] for r in records][-1] == events.RUN_ENDED and records[-1]["outcome"] == events.OK
    assert any(r["event"] == events.RUN_STARTED and r["reason"] == "segunda tentativa" for r in records)
    assert ledger.skipped_lines == 1  # only the torn line; the new records did not stick to it
    assert len(world.snapshot_posts()) == 1


@pytest.fixture
def world_with_torn_ledger(worlds: GuardWorlds) -> GuardWorld:
    """A world whose ledger holds a finished chat2 run and then a run-started torn inside a "ç"."""
    world = worlds()
    ledger = Ledger(world.state_dir)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id="r0", host="chat2", receipt={"snapshot_id": "s0"})
    ledger.append(events.RUN_ENDED, run_id="r0", host="chat2", outcome=events.OK)
    torn = json.dumps({"event": "run-started", "run_id": "r1", "host": "chat2", "reason": "correção"}, ensure_ascii=False)
    with ledger.path.open("ab") as handle:
        handle.write(torn.encode()[: torn.encode().index("ç".encode()) + 1])
    return world
