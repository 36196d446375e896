"""What a fresh-eyes review of the guard found, each reproduced here and closed (real sshd, simulator, real CLI or
the public Python API; judged by the record of every command line a host received)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from opsguard.errors import ReadOnlyViolation
from tests.integration.guard_support import UPGRADE, GuardWorld, GuardWorlds

pytestmark = pytest.mark.integration


@pytest.fixture
def api_world(worlds: GuardWorlds, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuardWorld]:
    world = worlds()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    yield world


def test_read_only_session_refuses_an_environment_that_changes_what_commands_do(api_world: GuardWorld) -> None:
    from opsguard import read_only_session

    with read_only_session("chat", inventory=api_world.inventory) as session, \
            pytest.raises(ReadOnlyViolation, match="TAR_OPTIONS"):
        session.run("cat /etc/hostname", env={"TAR_OPTIONS": "--checkpoint-action=exec=touch /tmp/x"})
    assert api_world.sessions("chat") == []


def test_a_local_failure_after_the_step_ran_is_unknown_never_nothing_changed(
    api_world: GuardWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EOFError out of the SSH library after the command ran used to exit 3 "aborted; nothing was changed"."""
    from opsguard import guard
    from opsguard.cli import main
    from opsguard.transport import connect as real_connect

    class EndOfFileAfterRunning:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def run(self, command: str, **options: Any) -> Any:
            result = self.inner.run(command, **options)
            if command == "apt-get -y upgrade":
                raise EOFError()
            return result

    with guard.seams(connect=lambda host, settings: EndOfFileAfterRunning(real_connect(host, settings))), \
            pytest.raises(SystemExit) as exited:
        main(["exec", "chat", "--yes", "--", *UPGRADE])
    stderr = capsys.readouterr().err
    assert exited.value.code == 4, stderr
    assert "nothing was changed" not in stderr and "rollback point" in stderr
    assert api_world.commands("chat") == [list(UPGRADE)]
    assert api_world.last_run_end("chat")["outcome"] == "unknown"


def test_unlock_of_a_same_named_machine_still_needs_a_stale_heartbeat(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat", {"run_id": "20990101T000000Z-live01", "user": "alice",
                                           "machine": socket.gethostname(), "machine_id": "another-machine",
                                           "pid": 4194000, "since": "2099-01-01T00:00:00Z", "reason": "in progress"})
    (lock / "heartbeat").touch()  # fresh: its owner is alive somewhere else

    result = world.cli("unlock", "chat", "--reason", "looks stale", "--yes")

    assert result.exit_code == 3 and "heartbeat is fresh" in result.stderr, result.output
    assert (lock / "owner").is_file()


def test_update_of_two_hosts_never_says_nothing_was_changed_after_the_first_changed(worlds: GuardWorlds) -> None:
    world = worlds()
    lock = world.hold_remote_lock("chat2", {"run_id": "20990101T000000Z-other1", "user": "bob", "machine": "elsewhere",
                                            "pid": 1, "since": "2099-01-01T00:00:00Z", "reason": "bob's change"})
    (lock / "heartbeat").touch()

    result = world.cli("update", "chat", "chat2", "--yes", timeout=300)

    assert world.last_run_end("chat")["outcome"] == "ok"
    assert result.exit_code == 1, result.output
    assert "chat updated before chat2 was refused" in result.stderr


def test_a_lock_dir_without_an_owner_can_be_unlocked(worlds: GuardWorlds) -> None:
    world = worlds()
    world.lock_dir("chat").mkdir(parents=True)  # a run died between mkdir and writing its owner

    result = world.cli("unlock", "chat", "--reason", "ownerless lock", "--yes")

    assert result.exit_code == 0, result.output
    assert not world.lock_dir("chat").exists()
    (broken,) = world.ledger("chat", "lock-broken")
    assert broken["holder"] == {}


def test_no_public_name_hands_out_a_sessions_connection_or_mints_a_receipt() -> None:
    import opsguard
    import opsguard.guard
    import opsguard.receipt
    import opsguard.session

    public = {name for module in (opsguard.guard, opsguard.session, opsguard.receipt)
              for name in dir(module) if not name.startswith("_")}
    assert not {"check_reused_session", "core_of", "issue_receipt", "session_key"} & public


def test_restore_that_was_requested_is_unknown_when_the_ledger_then_fails(
    worlds: GuardWorlds, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsguard.cli import main
    from opsguard.errors import LedgerWriteError
    from opsguard.ledger import Ledger

    world = worlds()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    snapshot = json.loads(world.cli("snapshot", "chat", "--json").stdout)["snapshot_id"]
    real = Ledger.append

    def append(self: Ledger, event: str, **fields: Any) -> dict[str, Any]:
        if fields.get("phase") == "requested":
            raise LedgerWriteError(f"ledger {self.path}: cannot write the step record: No space left on device")
        return real(self, event, **fields)

    monkeypatch.setattr(Ledger, "append", append)
    with pytest.raises(SystemExit) as exited:
        main(["restore", "chat", "--snapshot", snapshot, "--yes-i-typed-the-host", "chat"])
    stderr = capsys.readouterr().err
    assert exited.value.code == 4, stderr
    assert "was requested" in stderr and "disk is being replaced" in stderr
