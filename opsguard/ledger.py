"""The append-only audit ledger: one JSON line per event in ``<state_dir>/ledger.jsonl``.

Every record is written whole and fsync'ed before the next step proceeds, so after a crash the
ledger still says which snapshot was taken and how far the change got; a record that cannot be
written raises LedgerWriteError instead. Only values opsguard built itself are written here —
never a token, never a request header.

Reading never fails on a damaged line: each line is decoded on its own, and a line that is not a
usable record (torn by a crash, not UTF-8, not JSON, a field of the wrong type) is skipped and
counted in ``Ledger.skipped_lines``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsguard.errors import ConfigError, LedgerWriteError
from opsguard.redact import redact_data

LEDGER_FILE = "ledger.jsonl"

# Event names, in the order a run writes them.
RUN_STARTED = "run-started"
SNAPSHOT_REQUESTED = "snapshot-requested"
SNAPSHOT_VERIFIED = "snapshot-verified"
SNAPSHOT_FAILED = "snapshot-failed"
STEP = "step"
RUN_ENDED = "run-ended"
LOCK_BROKEN = "lock-broken"  # `opsguard unlock`: who broke which lock, when and why
RUN_FACTS = "run-facts"  # a change run's params and facts (what a rollback of it needs), before its first step
COPIES = "copies"  # what a run copied off the host: where, each file's size and sha256

# How a run ended.
OK = "ok"
FAILED = "failed"
UNKNOWN = "unknown"
REFUSED = "refused"
ABORTED = "aborted"  # the guarded block ended before any mutating step ran: nothing changed


def utc_now_text() -> str:
    """Return the current UTC time as ISO-8601 with a Z suffix and milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LastChange:
    """What the ledger says about the most recent run on a host that got a verified snapshot."""

    run_id: str
    outcome: str  # ok | failed | unknown (no run-ended record counts as unknown)
    snapshot_id: str | None
    failed_step: str | None
    time: str


class Ledger:
    """The ledger file of one state directory.

    ``skipped_lines`` is how many lines the last read (``records`` or ``last_change``) could not
    use; 0 before any read.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LEDGER_FILE
        self.skipped_lines = 0

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Given an event name and its fields, append one record durably (whole, fsync'ed) and return it.

        Raise LedgerWriteError naming the ledger and the reason if the record cannot be written
        whole: a change must not run unrecorded. A failed record is taken back, so the file
        never keeps part of it.
        """
        record: dict[str, Any] = {"time": utc_now_text(), "epoch": round(time.time(), 6), "event": event}
        record.update(fields)
        # SAFETY: defence in depth: whatever a caller passes (an error text a server echoed), no
        # configured token value reaches the file.
        record = redact_data(record)
        line = json.dumps(record, sort_keys=True, default=str, separators=(",", ":")) + "\n"
        descriptor = self._open_for_append()
        try:
            self._append_locked(descriptor, event, line.encode("utf-8"))
        finally:
            os.close(descriptor)  # also releases the flock
        return record

    def _open_for_append(self) -> int:
        """Create the state dir if needed and open the ledger for appending; raise LedgerWriteError if impossible."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise LedgerWriteError(f"ledger {self.path}: state dir {self.state_dir} exists and is not a directory") from None
        except OSError as error:
            raise LedgerWriteError(f"ledger {self.path}: cannot create the state dir {self.state_dir}: {_reason(error)}") from None
        created = not self.path.exists()
        try:
            # Read too: the last byte says whether a crash left a torn line to step over.
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:
            raise LedgerWriteError(f"ledger {self.path}: cannot open it for writing: {_reason(error)}") from None
        if created:
            _sync_directory(self.state_dir)
        return descriptor

    def _append_locked(self, descriptor: int, event: str, data: bytes) -> None:
        """Given the open ledger and one encoded record, write it whole under an exclusive flock, or take it back and raise."""
        try:
            # Runs on other hosts append to the same file: the flock makes "where my record starts"
            # exact, so a failed record can be cut off without touching anyone else's.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            start = os.fstat(descriptor).st_size
        except OSError as error:
            raise LedgerWriteError(f"ledger {self.path}: cannot lock it to write the {event} record: {_reason(error)}") from None
        if start and not _ends_with_newline(descriptor, start):
            data = b"\n" + data  # the last line was torn by a crash: keep our record off it
        try:
            write_all(descriptor, data)
            os.fsync(descriptor)
        except OSError as error:
            taken_back = _truncate(descriptor, start)
            leftover = "" if taken_back else "; a partial record may remain (it will be skipped when read)"
            raise LedgerWriteError(
                f"ledger {self.path}: cannot write the {event} record: {_reason(error)}; the record was not written{leftover}"
            ) from None

    def records(self, host: str | None = None) -> list[dict[str, Any]]:
        """Given an optional host name, return the ledger's usable records (that host's only), oldest first.

        Never fails on a damaged line: unusable lines are skipped and counted in ``skipped_lines``
        (over the whole file, whatever the host). Raise ConfigError naming the ledger if the file
        exists but cannot be read: an unreadable ledger must not pass for "nothing happened".
        """
        return [record for record in self._read() if host is None or record["host"] == host]

    def _read(self) -> list[dict[str, Any]]:
        self.skipped_lines = 0
        usable: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as handle:
                for raw in handle:
                    if not raw.strip():
                        continue
                    record = parse_record(raw)
                    if record is None:
                        self.skipped_lines += 1
                    else:
                        usable.append(record)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ConfigError(f"ledger {self.path}: cannot be read: {_reason(error)}") from None
        return usable

    def last_change(self, host: str) -> LastChange | None:
        """Given a host, return how its most recent snapshot-verified run ended, or None if there is none.

        A run with a verified snapshot but no run-ended record (killed, power loss) counts as unknown.
        A successful `opsguard restore` after it clears it: the host is back on a snapshot.
        """
        verified: dict[str, dict[str, Any]] = {}
        ended: dict[str, dict[str, Any]] = {}
        restores: set[str] = set()
        order: list[str] = []  # verified runs and successful restores, in ledger order
        for record in self.records(host):
            run_id = record.get("run_id")
            if not isinstance(run_id, str):
                continue
            if record.get("event") == SNAPSHOT_VERIFIED:
                verified[run_id] = record
                order.append(run_id)
            elif record.get("event") == RUN_STARTED and record.get("command") == "restore":
                restores.add(run_id)
            elif record.get("event") == RUN_ENDED:
                ended[run_id] = record
                if run_id in restores and record.get("outcome") == OK:
                    order.append(run_id)
        if not order or order[-1] in restores:
            # Nothing changed yet, or the host was last restored from a snapshot: no failed change to protect.
            return None
        run_id = order[-1]
        end = ended.get(run_id)
        receipt = verified[run_id].get("receipt") or {}
        return LastChange(
            run_id=run_id,
            outcome=str(end.get("outcome", UNKNOWN)) if end else UNKNOWN,
            snapshot_id=receipt.get("snapshot_id"),
            failed_step=end.get("failed_step") if end else None,
            time=str((end or verified[run_id]).get("time", "")),
        )


# Fields every record has (append sets time and event; every writer passes run_id and host).
_TEXT_FIELDS = ("time", "event", "run_id", "host")
# Fields that readers look into, so they must be objects when present.
_OBJECT_FIELDS = ("receipt", "previous_snapshot")


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """Given one raw ledger line, return its record, or None if the line is not a usable record.

    Usable: valid UTF-8, a JSON object, with string ``time``, ``event``, ``run_id`` and ``host``,
    and ``receipt``/``previous_snapshot`` objects (or null) when present. Never raises.
    """
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers bad JSON and over-long integers; RecursionError absurdly deep nesting.
        return None
    if not isinstance(value, dict):
        return None
    if not all(isinstance(value.get(name), str) for name in _TEXT_FIELDS):
        return None
    if not all(value.get(name) is None or isinstance(value.get(name), dict) for name in _OBJECT_FIELDS):
        return None
    return value


def check_free_space(state_dir: Path, minimum_bytes: int) -> None:
    """Given the state dir and the bytes a run needs there, return if it can hold them.

    Creates the dir (and an empty ledger) when missing, exactly as the first ledger record would.
    Raise ConfigError naming the dir if it cannot be created or the ledger in it cannot be opened
    for writing (read-only filesystem, a file in the way), or naming its free bytes and the
    minimum if statvfs reports less free space (or no free inode).
    """
    directory = Path(state_dir)
    ledger_path = directory / LEDGER_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise ConfigError(f"state_dir {directory}: exists and is not a directory") from None
    except OSError as error:
        raise ConfigError(f"state_dir {directory}: cannot be created: {_reason(error)}") from None
    try:
        os.close(os.open(ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        usage = os.statvfs(directory)
    except OSError as error:
        raise ConfigError(f"state_dir {directory}: cannot write the ledger {ledger_path}: {_reason(error)}") from None
    free = usage.f_bavail * usage.f_frsize
    if free < minimum_bytes:
        raise ConfigError(
            f"state_dir {directory}: only {free} bytes free, at least {minimum_bytes} needed for the ledger and locks; "
            "free some space or point OPSGUARD_STATE_DIR elsewhere"
        )
    if usage.f_files > 0 and usage.f_favail == 0:  # f_files 0: the filesystem does not count inodes
        raise ConfigError(f"state_dir {directory}: no free inode left for the lock files; free some or point OPSGUARD_STATE_DIR elsewhere")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def write_all(descriptor: int, data: bytes) -> None:
    """Given a descriptor and bytes, write every byte (os.write may write fewer); raise OSError if that fails."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written <= 0:
            # A regular file never writes 0 bytes of a non-empty buffer unless something is badly wrong.
            raise OSError(0, "the system wrote 0 bytes")
        view = view[written:]


def _ends_with_newline(descriptor: int, size: int) -> bool:
    """Given the open ledger and its size (> 0), return whether its last byte is a newline (True if unreadable)."""
    try:
        return os.pread(descriptor, 1, size - 1) == b"\n"
    except OSError:
        return True  # cannot tell: write as usual rather than fail a record over it


def _truncate(descriptor: int, size: int) -> bool:
    """Given the open ledger and its size before a failed record, cut the record off; return whether that worked."""
    try:
        os.ftruncate(descriptor, size)
    except OSError:
        return False
    return True


def _sync_directory(directory: Path) -> None:
    """Given the state dir, fsync it so a newly created ledger's name survives a power loss (best effort).

    Some filesystems refuse fsync on a directory; the records themselves are still fsync'ed.
    """
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
