"""opsguard.copies without a host: the room check before the snapshot, the streaming base64 writer, progress on a
terminal, retention, and the read-only commands a copy sends."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest

from opsguard import copies
from opsguard.errors import Refused
from opsguard.plan import CopyItem, Download
from opsguard.readonly import read_only_problem

DOWNLOAD = Download(items=(CopyItem("database.dump", "/var/backups/opsguard/x/database.dump"),), keep=3, max_bytes=10**9)


def test_check_room_returns_the_estimate_when_it_fits(tmp_path: Path) -> None:
    assert copies.check_room(tmp_path, "chat", DOWNLOAD, {"copies_bytes": "1000"}) == 1000


def test_check_room_refuses_when_the_state_dir_is_short_of_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copies, "free_bytes", lambda path: 50 * 10**6)

    with pytest.raises(Refused) as refused:
        copies.check_room(tmp_path, "chat", DOWNLOAD, {"copies_bytes": str(200 * 10**6)})

    assert refused.value.exit_code == 3
    assert f"the state dir {tmp_path} has 0.05 GB free" in str(refused.value) and "no snapshot was taken" in str(refused.value)


def test_check_room_refuses_when_the_size_was_not_measured(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="not measured"):
        copies.check_room(tmp_path, "chat", DOWNLOAD, {})


def test_base64_writer_streams_bytes_and_hashes_them() -> None:
    payload = bytes(range(256)) * 40
    sink = io.BytesIO()
    writer = copies._Base64Writer(sink, copies.CopyProgress("chat", "x", None))
    encoded = base64.encodebytes(payload).decode()
    for line in encoded.splitlines():  # pieces of any length, as the transport hands them over
        writer("stdout", line[:30])
        writer("stdout", line[30:])
    writer("stderr", "not part of the file")
    writer.finish()

    assert writer.error is None and sink.getvalue() == payload
    assert writer.digest.hexdigest() == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize(("lines", "problem"), [(["QUJD", "!!!!"], "did not arrive as base64"), (["QUJDRA"], "truncated")])
def test_base64_writer_reports_a_corrupted_or_truncated_copy(lines: list[str], problem: str) -> None:
    writer = copies._Base64Writer(io.BytesIO(), copies.CopyProgress("chat", "x", None))
    for line in lines:
        writer("stdout", line)
    writer.finish()

    assert writer.error is not None and problem in writer.error


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_copy_progress_draws_on_a_terminal_for_a_large_copy() -> None:
    stream = Terminal()
    progress = copies.CopyProgress("chat", "database.dump", 100 * 2**20, stream=stream)
    progress.update(50 * 2**20)
    progress.close()

    assert "chat: copying database.dump off the host:  50% (50 of 100 MiB)" in stream.getvalue()
    assert stream.getvalue().endswith("100 MiB)\n")


def test_copy_progress_is_silent_off_a_terminal_and_for_small_copies() -> None:
    pipe, terminal = io.StringIO(), Terminal()
    for stream, total in ((pipe, 100 * 2**20), (terminal, 1024)):
        progress = copies.CopyProgress("chat", "x", total, stream=stream)
        progress.update(total // 2)
        progress.close()

    assert pipe.getvalue() == "" and terminal.getvalue() == ""


def test_prune_keeps_the_last_runs_and_the_current_one(tmp_path: Path) -> None:
    runs = ["20240101T000000Z-a", "20240201T000000Z-b", "20240301T000000Z-c", "20240401T000000Z-d"]
    for run in runs:
        copies.run_copy_dir(tmp_path, "chat", run).mkdir(parents=True)

    removed = list(copies.prune(tmp_path, "chat", 2, keep_run=runs[0]))

    assert removed == runs[1:3]
    assert copies.host_copy_runs(tmp_path, "chat") == [runs[0], runs[3]]


@pytest.mark.parametrize(
    "item",
    [CopyItem("f", "/etc/x y"), CopyItem("d", "/etc/nginx", kind="dir"),
     CopyItem("n8n/config", "/home/node/.n8n/config", kind="container-file", service="n8n", compose_dir="/opt/stack"),
     CopyItem("n8n/key", "N8N_ENCRYPTION_KEY", kind="container-env", service="n8n", compose_dir="/opt/stack")],
)  # fmt: skip
def test_every_command_a_copy_sends_is_read_only(item: CopyItem) -> None:
    source = copies._source(item, item.name, item.path)

    assert read_only_problem(source.sum_command) is None
    assert read_only_problem(source.download_command) is None
