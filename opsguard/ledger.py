"""The append-only audit ledger: one JSON line per event in ``<state_dir>/ledger.jsonl``.

Every record is written whole and fsync'ed before the next step proceeds, so after a crash the
ledger still says which snapshot was taken and how far the change got; a record that cannot be
written raises LedgerWriteError instead. Only values opsguard built itself are written here —
never a token, never a request header.

Reading never fails on a damaged line: each line is decoded on its own, and a line that is not a
usable record (torn by a crash, not UTF-8, not JSON, a field of the wrong type) is skipped and
counted in ``Ledger.skipped_lines``.

Tamper evidence: every record carries ``prev_hash``, the sha256 of the line before it as it is on
disk (null for the first line of a new ledger), read under the same exclusive flock that orders
the appends. ``verify_chain`` walks the file and names the first line that does not follow its
predecessor: a record deleted or edited breaks the chain at the record after it. A line torn by a
crash is still a line (the next record hashes it), so a crash never looks like tampering. Records
written before the chain existed carry no ``prev_hash``; they are read as always and count as an
unchained prefix. What a chain cannot show: records cut off the END of the file, and an edit of
the newest record until the next one is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsguard.errors import ConfigError, LedgerWriteError
from opsguard.redact import redact_data

LEDGER_FILE = "ledger.jsonl"
PREV_HASH = "prev_hash"  # the sha256 of the previous line, on every record written since the chain exists
_TAIL_BLOCK = 65536

# How a run is named (opsguard.guard.new_run_id: UTC time, then 6 hex digits): what copies dirs and rollbacks accept.
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")

# Event names, in the order a run writes them.
RUN_STARTED = "run-started"
SNAPSHOT_REQUESTED = "snapshot-requested"
SNAPSHOT_VERIFIED = "snapshot-verified"
SNAPSHOT_FAILED = "snapshot-failed"
STEP = "step"
RUN_ENDED = "run-ended"
LOCK_BROKEN = "lock-broken"  # `opsguard unlock`: who broke which lock, when and why
RUN_FACTS = "run-facts"  # a change run's params and facts (what a rollback of it needs), before its first step
COPIES = "copies"  # what a run copied off the host: where, each file's size and keyed sum (opsguard/copies.py)

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
        descriptor = self._open_for_append()
        try:
            return self._append_locked(descriptor, event, record)
        finally:
            os.close(descriptor)  # also releases the flock

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

    def _append_locked(self, descriptor: int, event: str, record: dict[str, Any]) -> dict[str, Any]:
        """Given the open ledger and one record, chain it to the last line and write it whole under an exclusive
        flock, or take it back and raise; return the record as written."""
        try:
            # Runs on other hosts append to the same file: the flock makes "where my record starts"
            # exact, so a failed record can be cut off without touching anyone else's, and the line
            # read as "the previous one" is the one this record really follows.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            start = os.fstat(descriptor).st_size
            previous = _last_line(descriptor, start)
        except OSError as error:
            raise LedgerWriteError(f"ledger {self.path}: cannot lock it to write the {event} record: {_reason(error)}") from None
        record = {**record, PREV_HASH: line_hash(previous) if previous is not None else None}
        data = (json.dumps(record, sort_keys=True, default=str, separators=(",", ":")) + "\n").encode("utf-8")
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
        return record

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


# -- the hash chain ---------------------------------------------------------------------------------


def line_hash(line: bytes) -> str:
    """Given one ledger line as stored (with or without its newline), return "sha256:<hex>" of its bytes."""
    return "sha256:" + hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _last_line(descriptor: int, size: int) -> bytes | None:
    """Given the open ledger and its size, return its last non-blank line (a torn one too), or None if it has none.

    Reads backwards in blocks, so a large ledger costs only its tail.
    """
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        tail = os.pread(descriptor, end - start, start) + tail
        end = start
        lines = [line for line in tail.split(b"\n") if line.strip()]
        # The first piece may be cut mid-line unless the block reached the file's start.
        if len(lines) > 1 or (lines and end == 0):
            return lines[-1]
    return None


@dataclass(frozen=True)
class ChainBreak:
    """A line of the ledger that does not follow the line before it: where the chain breaks and why."""

    line: int  # 1-based line number in the file
    message: str


@dataclass(frozen=True)
class ChainReport:
    """What verify_chain found: counts, and every break (none when the chain is intact)."""

    path: Path
    records: int  # usable records
    unchained: int  # records written before the chain existed (no prev_hash), at the start of the file
    unreadable: int  # lines that are not records (a crash-torn line, say); the chain still covers them
    breaks: tuple[ChainBreak, ...]

    @property
    def intact(self) -> bool:
        """Return whether every hashed record follows the line before it."""
        return not self.breaks


def verify_chain(path: Path) -> ChainReport:
    """Given a ledger file, return its ChainReport; raise ConfigError naming the file if it exists but cannot be read.

    Each record with ``prev_hash`` must name the hash of the non-blank line before it (null only on
    the first line); once a hashed record has been seen, a record without ``prev_hash`` is an
    insertion or an edit. Lines that are not records are counted, never a break by themselves: the
    record after them says whether they were there when it was written.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ChainReport(path, 0, 0, 0, ())
    except OSError as error:
        raise ConfigError(f"ledger {path}: cannot be read: {_reason(error)}") from None
    records = unchained = unreadable = 0
    breaks: list[ChainBreak] = []
    previous: tuple[int, bytes] | None = None  # (line number, bytes) of the last non-blank line
    chain_started = False
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        record = parse_record(raw)
        if record is None:
            unreadable += 1
        else:
            records += 1
            problem = _chain_problem(record, previous, chain_started)
            if problem:
                breaks.append(ChainBreak(number, problem))
            if PREV_HASH in record:
                chain_started = True
            elif not chain_started:
                unchained += 1
        previous = (number, raw)
    return ChainReport(path, records, unchained, unreadable, tuple(breaks))


def _chain_problem(record: dict[str, Any], previous: tuple[int, bytes] | None, chain_started: bool) -> str | None:
    """Given a record, the line before it and whether the chain has started, return why it breaks the chain, or None."""
    if PREV_HASH not in record:
        return "has no prev_hash although the records before it are chained: it was inserted or edited" if chain_started else None
    expected = record[PREV_HASH]
    if previous is None:
        if expected is None:
            return None
        return "names a previous record but is the first line: the records before it were deleted"
    line, raw = previous
    if expected is None:
        return f"starts a new chain after line {line}: the records before it were replaced"
    if expected != line_hash(raw):
        return f"does not follow line {line}: a record between them was deleted, or line {line} was edited"
    return None
