"""opsguard.copies without a host: the room check before the snapshot, the streaming base64 writer, progress on a
terminal, retention, and the read-only commands a copy sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import stat
from pathlib import Path

import pytest

from opsguard import copies
from opsguard import ledger as events
from opsguard.errors import Refused
from opsguard.ledger import Ledger
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


def base64_writer(sink: io.BytesIO) -> copies._Base64Writer:
    limits = copies._Limits(Path("."), Path("."), cap=10**9, cap_left=10**9)
    return copies._Base64Writer(sink, copies.CopyProgress("chat", "x", None), most=10**9, why="too much", limits=limits,
                                key=b"k" * 32)


def test_base64_writer_streams_bytes_and_hashes_them() -> None:
    payload = bytes(range(256)) * 40
    sink = io.BytesIO()
    writer = base64_writer(sink)
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
    writer = base64_writer(io.BytesIO())
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
    runs = ["20240101T000000Z-aaaaaa", "20240201T000000Z-bbbbbb", "20240301T000000Z-cccccc", "20240401T000000Z-dddddd"]
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


# -- the copy step against a scripted host (no SSH): what stat/sha256sum print, then what base64 streams -----


class ScriptedHost:
    """Stands in for the change session: ``sums`` answers the sum command of each path, ``streams`` the base64 lines
    of each path (a host may stream more than it said: a file that grew, a hostile host). It counts the lines it
    handed over and the largest the partial copy ever was."""

    def __init__(self, state_dir: Path, sums: dict[str, str], streams: dict[str, list[str]]) -> None:
        self.host = type("Host", (), {"name": "chat"})()
        self.run_id = "20250101T000000Z-abcdef"
        self.state_dir, self.sums, self.streams = state_dir, sums, streams
        self.notes: list[tuple[str, dict[str, object]]] = []
        self.lines_handed = 0
        self.largest_partial = 0

    def note(self, event: str, **fields: object) -> None:
        self.notes.append((event, fields))

    def run(self, command: str, *, mutates: bool, name: str, timeout: float, on_output: object = None) -> object:
        assert mutates is False
        for path, answer in self.sums.items():
            if "sha256sum" in command and path in command:
                return Result(0, answer)
        for path, lines in self.streams.items():
            if "base64" in command and path in command:
                assert callable(on_output)
                for line in lines:
                    self.lines_handed += 1
                    on_output("stdout", line)
                    self.largest_partial = max([self.largest_partial, *self._partial_sizes()])
                return Result(0, "")
        raise AssertionError(f"unexpected command {command}")

    def _partial_sizes(self) -> list[int]:
        return [path.stat().st_size for path in (self.state_dir / "copies").rglob("*.partial")]


class Result:
    def __init__(self, exit_status: int, stdout: str) -> None:
        self.exit_status, self.stdout, self.stderr = exit_status, stdout, ""


def stat_answer(data: bytes, path: str) -> str:
    return f"{len(data)}\n{hashlib.sha256(data).hexdigest()}  {path}\n"


def base64_lines(data: bytes) -> list[str]:
    return base64.encodebytes(data).decode().splitlines()


FLOOD = [base64.b64encode(b"A" * 57_000).decode()] * 1000  # 57 MB, in 57 kB lines


def test_fetch_stops_reading_when_more_bytes_arrive_than_the_host_file_has(tmp_path: Path) -> None:
    # stat said 10 bytes; the host streams 57 MB (the file grew, or the host is hostile): the copy must stop at once.
    host = ScriptedHost(tmp_path, {"/x": stat_answer(b"0123456789", "/x")}, {"/x": FLOOD})
    download = Download(items=(CopyItem("f", "/x"),), keep=3, max_bytes=10**9)

    with pytest.raises(copies.CopyFailed, match="more than the 10 bytes the file on the host has"):
        copies.fetch(host, download, state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    assert host.largest_partial <= 10
    assert host.lines_handed == 1  # nothing more was read after the first line went past the size
    assert not list((tmp_path / "copies").rglob("*.partial"))


def test_fetch_stops_reading_at_the_cap_when_a_container_item_streams_without_end(tmp_path: Path) -> None:
    # A container file has no stat: its fixed upper bound (and the cap) limit what may arrive.
    path = "/home/node/.n8n/config"
    item = CopyItem("n8n/config", path, kind="container-file", service="n8n", compose_dir="/opt/stack")
    host = ScriptedHost(tmp_path, {path: f"{hashlib.sha256(b'x').hexdigest()}  {path}\n"}, {path: FLOOD})
    download = Download(items=(item,), keep=3, max_bytes=10**9)

    with pytest.raises(copies.CopyFailed, match="more than"):
        copies.fetch(host, download, state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    assert host.largest_partial <= copies.CONTAINER_ITEM_MAX_BYTES
    assert host.lines_handed < 1000


def test_fetch_counts_container_items_in_the_cap_check_before_any_download(tmp_path: Path) -> None:
    path = "/home/node/.n8n/config"
    item = CopyItem("n8n/config", path, kind="container-file", service="n8n", compose_dir="/opt/stack")
    host = ScriptedHost(tmp_path, {path: f"{hashlib.sha256(b'x').hexdigest()}  {path}\n"}, {path: FLOOD})
    download = Download(items=(item,), keep=3, max_bytes=copies.CONTAINER_ITEM_MAX_BYTES - 1)

    with pytest.raises(copies.CopyFailed, match="cap copies_max_gb"):
        copies.fetch(host, download, state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    assert host.lines_handed == 0


def test_check_room_counts_container_items_when_the_estimate_leaves_them_out(tmp_path: Path) -> None:
    item = CopyItem("n8n/N8N_ENCRYPTION_KEY", "N8N_ENCRYPTION_KEY", kind="container-env", service="n8n", compose_dir="/opt/stack")
    download = Download(items=(item, *DOWNLOAD.items), keep=3, max_bytes=10**9)

    assert copies.check_room(tmp_path, "chat", download, {"copies_bytes": "1000"}) == 1000 + copies.CONTAINER_ITEM_MAX_BYTES


def test_fetch_stops_reading_when_the_state_dir_runs_out_of_space_during_a_copy(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The room check passed; then another run on this machine fills the disk: the copy stops before the ledger's room.
    data = b"B" * (40 * 2**20)
    host = ScriptedHost(tmp_path, {"/dump": stat_answer(data, "/dump")}, {"/dump": base64_lines(data)})
    free = iter([10**12, 10**12] + [copies._SLACK - 1] * 10**6)
    monkeypatch.setattr(copies, "free_bytes", lambda path: next(free))
    download = Download(items=(CopyItem("database.dump", "/dump"),), keep=3, max_bytes=10**12)

    with pytest.raises(copies.CopyFailed, match="running out of space"):
        copies.fetch(host, download, state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    assert host.largest_partial < len(data)
    assert host.lines_handed < len(base64_lines(data))


# -- retention: only run dirs, never an unsettled run's copies -----------------------------------------------

RUNS = ["20250101T000000Z-aaaaaa", "20250102T000000Z-bbbbbb", "20250103T000000Z-cccccc", "20250104T000000Z-dddddd"]


def make_copy_dirs(state_dir: Path, names: list[str]) -> None:
    for name in names:
        copies.run_copy_dir(state_dir, "chat", name).mkdir(parents=True)


def record_run(state_dir: Path, run_id: str, outcome: str | None, **facts: object) -> None:
    """Put a guarded run in the ledger: its verified snapshot, its facts, and how it ended (None: no end record)."""
    ledger = Ledger(state_dir)
    ledger.append(events.SNAPSHOT_VERIFIED, run_id=run_id, host="chat", receipt={"snapshot_id": f"snap-{run_id[-6:]}"})
    if facts:
        ledger.append(events.RUN_FACTS, run_id=run_id, host="chat", **facts)
    if outcome is not None:
        ledger.append(events.RUN_ENDED, run_id=run_id, host="chat", outcome=outcome)


def test_prune_removes_only_directories_named_as_run_ids_when_others_are_there(tmp_path: Path) -> None:
    make_copy_dirs(tmp_path, ["0-KEEP-forever-hand-made", *RUNS[:3], "notes"])

    removed = list(copies.prune(tmp_path, "chat", 2, keep_run=RUNS[2]))

    assert removed == [RUNS[0]]
    assert sorted(path.name for path in (tmp_path / "copies" / "chat").iterdir()) == ["0-KEEP-forever-hand-made", *RUNS[1:3], "notes"]


@pytest.mark.parametrize("outcome", ["failed", "unknown", None], ids=["failed", "unknown", "no-end-record"])
def test_prune_keeps_the_copies_of_a_run_that_is_not_settled_when_it_is_beyond_keep(tmp_path: Path, outcome: str | None) -> None:
    make_copy_dirs(tmp_path, RUNS)
    record_run(tmp_path, RUNS[0], outcome)
    record_run(tmp_path, RUNS[1], "ok")

    removed = list(copies.prune(tmp_path, "chat", 2, keep_run=RUNS[3]))

    assert removed == [RUNS[1]]
    assert copies.host_copy_runs(tmp_path, "chat") == [RUNS[0], *RUNS[2:]]


def test_prune_removes_the_copies_of_a_failed_run_once_a_rollback_of_it_succeeded(tmp_path: Path) -> None:
    make_copy_dirs(tmp_path, RUNS[:3])
    record_run(tmp_path, RUNS[0], "failed")
    rollback = "20250101T120000Z-eeeeee"
    record_run(tmp_path, rollback, "failed", rolls_back=RUNS[0])  # a failed rollback settles nothing
    assert list(copies.prune(tmp_path, "chat", 1, keep_run=RUNS[2])) == [RUNS[1]]

    record_run(tmp_path, "20250101T130000Z-ffffff", "ok", rolls_back=RUNS[0])

    assert list(copies.prune(tmp_path, "chat", 1, keep_run=RUNS[2])) == [RUNS[0]]


# -- what the ledger learns about the copies -----------------------------------------------------------------


def test_fetch_keeps_plain_sha256_of_copied_files_out_of_the_ledger_when_they_hold_secrets(tmp_path: Path) -> None:
    secret = b"POSTGRES_PASSWORD=summer2024\n"  # a weak secret: a plain sha256 of it is an offline guessing oracle
    path = "/opt/stack/.env"
    host = ScriptedHost(tmp_path, {path: stat_answer(secret, path)}, {path: base64_lines(secret)})
    download = Download(items=(CopyItem("compose/.env", path),), keep=3, max_bytes=10**9)

    copies.fetch(host, download, state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    [(event, fields)] = host.notes
    assert event == events.COPIES
    assert hashlib.sha256(secret).hexdigest() not in json.dumps(fields)
    # The manifest, owner-only next to the copy itself, keeps the plain sum (it gives nothing the copy does not).
    target = copies.run_copy_dir(tmp_path, "chat", host.run_id)
    manifest = json.loads((target / copies.MANIFEST).read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(secret).hexdigest()
    # The ledger's sum is keyed with the state dir's own key, so it still proves which bytes were copied.
    key_file = tmp_path / copies.SUM_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [entry] = fields["files"]  # type: ignore[misc]
    assert entry == {"name": "compose/.env", "bytes": len(secret),
                     "hmac_sha256": hmac.new(key_file.read_bytes(), secret, hashlib.sha256).hexdigest()}


def test_fetch_refuses_to_copy_when_the_sum_key_is_readable_by_others(tmp_path: Path) -> None:
    key_file = tmp_path / copies.SUM_KEY_FILE
    key_file.write_bytes(b"k" * 32)
    key_file.chmod(0o644)
    host = ScriptedHost(tmp_path, {"/x": stat_answer(b"x", "/x")}, {"/x": base64_lines(b"x")})

    with pytest.raises(copies.CopyFailed, match="not the owner-only"):
        copies.fetch(host, Download(items=(CopyItem("f", "/x"),)), state_dir=tmp_path, step="copy")  # type: ignore[arg-type]

    assert host.lines_handed == 0 and host.notes == []
