"""Copies off the host: what a provider restore cannot give back selectively, kept on the machine running opsguard.

After the snapshot and before the first service-affecting step, a change playbook's copy step (a Step with
``download``, see opsguard/plan.py) takes the verified database dump(s), the .env files, nginx sites, the
WhatsApp session data kept on disk and, on the integrations host, the compose files and n8n's encryption
key/config to ``<state_dir>/copies/<host>/<run>/`` (directories 0700, files 0600), with ``manifest.json``.
On a single-slot provider (Hostinger) this is the second rollback point the one snapshot cannot give.

How, and why that way:

- every byte comes through READ-ONLY commands run on the change session with ``mutates=False``
  (``find DIR -type f``, ``stat``/``sha256sum``, ``base64 -- FILE``): each is a recorded read in the
  ledger, nothing is written on the host, and SFTP (which can write any file) is not used. base64 carries
  the bytes intact through the text channel; they stream into the file as they arrive (memory stays
  bounded whatever the size);
- each file's sha256 (and size) is computed ON THE HOST first and compared with the bytes written here;
  a mismatch fails the step (the run stops before any service stops) and the bad copy is removed;
- SAFETY (secrets): the content is never printed, logged or put in the ledger; error messages carry the
  command's stderr, never its stdout. The manifest (0600, next to the copies) gets names, sizes and plain
  sha256 sums: whoever can read it can read the copies anyway. The ledger gets names, sizes and HMAC-SHA256
  sums keyed with ``<state_dir>/copies-sum.key`` (32 random bytes, 0600, made on first use): a plain sum of
  a weak secret (a .env password, n8n's key) would let anyone holding the ledger alone (shown, pasted, shipped
  to a log store) test guesses offline. Every item's sum is keyed, not only the secret ones: nothing has to
  decide which file is a secret, and on this machine the key still checks any copy against the ledger;
- ``check_room`` refuses, BEFORE the snapshot, a run whose copies (estimated in preflight) exceed the cap
  or the state dir's free space; the copy step checks the real sizes again before downloading;
- retention: after a good copy, only the last ``keep`` runs' copies of the host stay, and those of any run that is
  not settled (failed or unknown, not rolled back since); only directories named as run ids are ever removed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shlex
import shutil
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from opsguard import ledger as events
from opsguard.errors import ConfigError, Refused, StepFailed
from opsguard.hostfacts import parse_sha256sum
from opsguard.plan import CopyItem, Download
from opsguard.readonly import read_only_problem

if TYPE_CHECKING:
    from opsguard.session import ChangeSession

quote = shlex.quote
COPIES_DIR = "copies"
MANIFEST = "manifest.json"
CAP_VAR = "copies_max_gb"  # the var every copying playbook declares for the cap
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # smaller copies finish before a progress line would help
# A container file or variable has no stat to size it (n8n's config and key are bytes): this is what it counts for
# in the cap and room checks, and the most that may arrive for it.
CONTAINER_ITEM_MAX_BYTES = 1024 * 1024
CONTAINER_KINDS = ("container-file", "container-env")
_MARGIN = 1.1
_SLACK = 16 * 1024 * 1024  # the ledger (in the same state dir) and the locks need room too
_ROOM_EVERY_BYTES = 8 * 1024 * 1024  # free space is measured again this often during a copy (other runs write too)
SUM_KEY_FILE = "copies-sum.key"  # in the state dir: the key of the sums the ledger records (see the SAFETY above)
_SUM_KEY_BYTES = 32


class CopyFailed(StepFailed):
    """A copy off the host failed or came out different from the file on the host."""


@dataclass(frozen=True)
class Source:
    """One file to copy: its name in the copy dir, where it is (for messages) and the read-only commands that
    print its size and sum (``sum_command``) and its bytes in base64 (``download_command``)."""

    name: str
    where: str
    sum_command: str
    download_command: str
    optional: bool
    size_known: bool  # stat gives host files' sizes; container files and variables are sized by the download


@dataclass(frozen=True)
class CopiedFile:
    """One file copied: its name in the copy dir, where it came from, its size, its sha256 and its keyed sum (the
    HMAC-SHA256 of its bytes with the state dir's sum key: what the ledger records)."""

    name: str
    where: str
    size: int
    sha256: str
    keyed_sum: str


def run_copy_dir(state_dir: Path, host: str, run_id: str) -> Path:
    """Given the state dir, a host and a run id, return the directory that run's copies go to."""
    return Path(state_dir) / COPIES_DIR / host / run_id


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB"


# -- before the snapshot -------------------------------------------------------------------------------------


def check_room(state_dir: Path, host: str, download: Download, facts: Mapping[str, str]) -> int:
    """Given the state dir, the host, a copy step's Download and the facts read in preflight, return the estimated
    size of the copies in bytes; raise Refused (nothing changed, no snapshot taken) when it exceeds the cap or
    the free space of the state dir."""
    text = str(facts.get(download.size_fact, ""))
    if not text.isdigit():
        raise Refused(f"host {host}: the size of the copies off the host was not measured "
                      f"({download.size_fact}={text!r}); no snapshot was taken")
    # Preflight measures files and databases; container items have no size there: each counts at its upper bound.
    estimate = int(text) + container_items(download) * CONTAINER_ITEM_MAX_BYTES
    if estimate > download.max_bytes:
        raise Refused(f"host {host}: the copies off the host (database dump, .env files, ...) would be about "
                      f"{_gb(estimate)}, above the cap {CAP_VAR} = {_gb(download.max_bytes)}: raise it (--var "
                      f"{CAP_VAR}=N, or in the host's vars) if {state_dir} has room; no snapshot was taken")
    free = free_bytes(Path(state_dir) / COPIES_DIR)
    need = int(estimate * _MARGIN) + _SLACK
    if free < need:
        raise Refused(f"host {host}: the state dir {state_dir} has {_gb(free)} free; the copies off the host need "
                      f"about {_gb(need)}: free space there or point OPSGUARD_STATE_DIR at a larger disk; "
                      "no snapshot was taken")
    return estimate


def container_items(download: Download) -> int:
    """Given a copy step's Download, return how many of its items are container files or variables."""
    return sum(1 for item in download.items if item.kind in CONTAINER_KINDS)


def free_bytes(path: Path) -> int:
    """Given a path (it may not exist yet), return the free bytes of the filesystem it is (or will be) on."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


# -- the copy step -------------------------------------------------------------------------------------------


def fetch(session: ChangeSession, download: Download, *, state_dir: Path, step: str,
          progress: TextIO | None = None) -> list[CopiedFile]:
    """Given the run's change session, a copy step's Download, the state dir and the step's name, copy every item
    off the host, verify each against the sha256 computed on the host, write the manifest, record the copies in
    the ledger and prune older runs' copies; return the files copied.

    Raise CopyFailed (the step failed; the bad copy is removed) when a required item cannot be read, the copies
    would exceed the cap or the free space, or a copy differs from the host's file.
    """
    host, run_id = session.host.name, session.run_id
    target = run_copy_dir(state_dir, host, run_id)
    _private_dirs(Path(state_dir), target)
    key = _sum_key(Path(state_dir), host, step)
    sources, missing = _sources(session, download, host, step)
    measured = [(source, *_host_sum(session, source, host, step)) for source in sources]
    present = [(source, size, digest) for source, size, digest in measured if digest is not None]
    missing += [source.where for source, _, digest in measured if digest is None]
    total = sum(CONTAINER_ITEM_MAX_BYTES if size is None else size for _, size, _ in present)
    if total > download.max_bytes or free_bytes(target) < total * _MARGIN + _SLACK:
        raise CopyFailed(f"host {host}: step {step!r}: the copies are up to {_gb(total)} (cap {CAP_VAR} = "
                         f"{_gb(download.max_bytes)}, {_gb(free_bytes(target))} free in {state_dir})", step=step)
    copied: list[CopiedFile] = []
    for source, size, digest in present:
        assert digest is not None
        limits = _Limits(Path(state_dir), target, cap=download.max_bytes, cap_left=download.max_bytes - sum(item.size for item in copied))
        copied.append(_download(session, source, target, size, digest, limits, key, host, step, progress))
    manifest = {
        "host": host, "run_id": run_id, "time": events.utc_now_text(),
        "files": [{"name": item.name, "from": item.where, "bytes": item.size, "sha256": item.sha256} for item in copied],
        "missing": missing,
    }  # fmt: skip
    _write_private(target / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    session.note(events.COPIES, dir=str(target), total_bytes=sum(item.size for item in copied), missing=missing,
                 sum_key=str(Path(state_dir) / SUM_KEY_FILE),
                 files=[{"name": item.name, "bytes": item.size, "hmac_sha256": item.keyed_sum} for item in copied])
    for removed in prune(Path(state_dir), host, download.keep, keep_run=run_id):
        print(f"{host}: removed the copies of run {removed} (keeping the last {download.keep})", file=sys.stderr)
    return copied


def _private_dirs(state_dir: Path, target: Path) -> None:
    """Create copies/, copies/<host>/ and the run's dir, each 0700 (owner only: they hold secrets)."""
    for directory in (state_dir / COPIES_DIR, target.parent, target):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)


def _sources(session: ChangeSession, download: Download, host: str, step: str) -> tuple[list[Source], list[str]]:
    """Given the Download, return every file to copy (directories listed on the host) and the optional items missing."""
    sources: list[Source] = []
    missing: list[str] = []
    for item in download.items:
        if item.kind != "dir":
            sources.append(_source(item, item.name, item.path))
            continue
        listing = _read(session, f"find {quote(item.path)} -type f", step, timeout=120)
        if listing.exit_status != 0:
            if item.optional:
                missing.append(item.path)
                continue
            raise CopyFailed(f"host {host}: step {step!r}: cannot list {item.path} ({_stderr_tail(listing.stderr)})", step=step)
        for path in sorted(line for line in listing.stdout.splitlines() if line.startswith(item.path.rstrip("/") + "/")):
            relative = path[len(item.path.rstrip("/")) + 1 :]
            if ".." in relative.split("/"):
                raise CopyFailed(f"host {host}: step {step!r}: {path!r} does not lie under {item.path}", step=step)
            sources.append(_source(item, f"{item.name}/{relative}", path))
    return sources, missing


def _source(item: CopyItem, name: str, path: str) -> Source:
    """Given an item (or a file under a dir item), its name in the copy dir and its path, return the commands that read it."""
    if item.kind in ("file", "dir"):
        return Source(name, path, f"stat -c %s -- {quote(path)} && sha256sum -- {quote(path)}", f"base64 -- {quote(path)}",
                      item.optional, size_known=True)
    inside = f"cd {quote(item.compose_dir)} && docker compose exec -T {quote(item.service)} "
    if item.kind == "container-file":
        return Source(name, f"{path} in service {item.service}", inside + f"sha256sum {quote(path)}",
                      inside + f"base64 {quote(path)}", item.optional, size_known=False)
    # container-env: the variable's value (printenv adds a newline) piped to the host's tools: never printed as is.
    return Source(name, f"${path} of service {item.service}", inside + f"printenv {quote(path)} | sha256sum",
                  inside + f"printenv {quote(path)} | base64", item.optional, size_known=False)


def _host_sum(session: ChangeSession, source: Source, host: str, step: str) -> tuple[int | None, str | None]:
    """Given a source, return (its size or None, its sha256 on the host); (None, None) when an optional one is missing."""
    result = _read(session, source.sum_command, step, timeout=1800)
    if result.exit_status != 0:
        if source.optional:
            return None, None
        raise CopyFailed(f"host {host}: step {step!r}: cannot read {source.where} ({_stderr_tail(result.stderr)})", step=step)
    lines = result.stdout.splitlines()
    try:
        size = int(lines[0]) if source.size_known else None
        digest = parse_sha256sum(lines[-1] if lines else "")
    except (ValueError, IndexError):
        raise CopyFailed(f"host {host}: step {step!r}: no size and sha256 for {source.where}", step=step) from None
    if not source.size_known and digest == hashlib.sha256(b"").hexdigest():
        # An unset variable (or an empty container file) pipes nothing: there is nothing to copy.
        if source.optional:
            return None, None
        raise CopyFailed(f"host {host}: step {step!r}: {source.where} is empty or missing", step=step)
    return size, digest


class _Limits:
    """What one file's copy may take: the cap left for this run's copies and the state dir's free space (less the
    room the ledger needs), on top of the file's own size."""

    def __init__(self, state_dir: Path, target: Path, *, cap: int, cap_left: int) -> None:
        self.state_dir, self.target, self.cap, self.cap_left = state_dir, target, cap, cap_left

    def room(self) -> int:
        """Return the bytes that may still be written in the state dir (its free space less the ledger's room)."""
        return free_bytes(self.target) - _SLACK

    def out_of_room(self) -> str:
        """Return why a copy stopped for want of space."""
        return (f"the state dir {self.state_dir} is running out of space ({_SLACK // 2**20} MiB must stay free for the "
                "ledger): free space there or point OPSGUARD_STATE_DIR at a larger disk")

    def for_file(self, size: int | None) -> tuple[int, str]:
        """Given a file's size on the host (None: a container item), return the most bytes that may arrive for it
        and why no more may."""
        if size is None:
            own = (CONTAINER_ITEM_MAX_BYTES, f"more than {CONTAINER_ITEM_MAX_BYTES} bytes arrived, the most a container "
                                             "file or variable may have: the download is corrupted")
        else:
            own = (size, f"more than the {size} bytes the file on the host has arrived: it changed during the copy "
                         "or the download is corrupted")
        cap = (self.cap_left, f"the copies went past the cap {CAP_VAR} = {_gb(self.cap)}")
        room = (self.room(), self.out_of_room())
        return min(own, cap, room, key=lambda limit: limit[0])


class _CopyStopped(Exception):
    """Raised from the output callback to stop reading a download that went past its limit (the channel is closed)."""


def _download(session: ChangeSession, source: Source, target: Path, size: int | None, digest: str, limits: _Limits,
              key: bytes, host: str, step: str, progress: TextIO | None) -> CopiedFile:
    """Given a source, its size and sum on the host and the limits of this copy, stream its bytes into the copy dir;
    raise CopyFailed if they differ or go past a limit (the reading stops at once: nothing past it is written)."""
    final = target / source.name
    if ".." in Path(source.name).parts or Path(source.name).is_absolute():
        raise CopyFailed(f"host {host}: step {step!r}: {source.name!r} would land outside {target}", step=step)
    most, why = limits.for_file(size)
    if size is not None and size > most:  # known too large before a byte is read
        raise CopyFailed(f"host {host}: step {step!r}: copy of {source.where} ({_gb(size)}): {why}; nothing was copied "
                         "(no service was stopped yet)", step=step)
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    reporter = CopyProgress(host, source.name, size, stream=progress)
    decoder = _Base64Writer(os.fdopen(descriptor, "wb"), reporter, most=max(0, most), why=why, limits=limits, key=key)
    result = None
    try:
        with decoder.handle:
            # A dump of several GB: allow 5 MB/s through base64 on top of ten minutes.
            result = _read(session, source.download_command, step, timeout=600 + (size or 0) / 5e6, on_output=decoder)
            decoder.finish()
    except _CopyStopped:
        pass  # decoder.error says why; the channel was closed, so nothing more is read
    finally:
        reporter.close()
    problem = None
    if result is None:
        problem = decoder.error or "the copy was stopped"
    elif result.exit_status != 0:
        problem = f"the copy command exited {result.exit_status} ({_stderr_tail(result.stderr)})"
    elif decoder.error:
        problem = decoder.error
    elif size is not None and decoder.size != size:
        problem = f"{decoder.size} bytes arrived, the file on the host has {size}: the download is corrupted"
    elif decoder.digest.hexdigest() != digest:
        problem = (f"sha256 of the copy {decoder.digest.hexdigest()} differs from the host's {digest}: the download is "
                   "corrupted")
    if problem:
        partial.unlink(missing_ok=True)
        raise CopyFailed(f"host {host}: step {step!r}: copy of {source.where}: {problem}; the copy was removed "
                         "(no service was stopped yet)", step=step)
    os.chmod(partial, 0o600)
    os.replace(partial, final)
    return CopiedFile(source.name, source.where, decoder.size, digest, decoder.keyed.hexdigest())


def _read(session: ChangeSession, command: str, step: str, *, timeout: float, on_output: Any = None) -> Any:
    """Given read-only text, run it on the change session as a recorded read and return its result."""
    problem = read_only_problem(command)
    if problem:  # a bug in this module: a copy must never change the host
        raise ValueError(f"copy command is not read-only ({problem}): {command}")
    return session.run(command, mutates=False, name=f"{step}: {command}", timeout=timeout, on_output=on_output)


def _stderr_tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-2:])[:300] or "no error message"


class _Base64Writer:
    """Decodes base64 lines as they arrive and writes the bytes, hashing them on the way (stderr lines are ignored).

    SAFETY (disk): at most ``most`` bytes are written; the first chunk that would go past it is not written and
    raises _CopyStopped, which ends the read (the transport closes the channel). The state dir's free space is
    measured again every ``_ROOM_EVERY_BYTES``: other runs may be filling it, and the ledger must keep its room.
    """

    def __init__(self, handle: Any, reporter: CopyProgress, *, most: int, why: str, limits: _Limits, key: bytes) -> None:
        self.handle = handle
        self.reporter = reporter
        self.most, self.why, self.limits = most, why, limits
        self.digest = hashlib.sha256()
        self.keyed = hmac.new(key, digestmod=hashlib.sha256)
        self.size = 0
        self.error: str | None = None
        self._pending = ""
        self._room_checked_at = 0

    def __call__(self, stream: str, line: str) -> None:
        if stream != "stdout" or self.error:
            return
        data = self._pending + line.strip()
        cut = len(data) - len(data) % 4
        try:
            chunk = base64.b64decode(data[:cut], validate=True)
        except (binascii.Error, ValueError):
            self.error = "the copy did not arrive as base64 (the download is corrupted)"
            return
        self._pending = data[cut:]
        if self.size + len(chunk) > self.most:
            self._stop(self.why)
        if self.size + len(chunk) - self._room_checked_at >= _ROOM_EVERY_BYTES:
            self._room_checked_at = self.size + len(chunk)
            if self.limits.room() < len(chunk):
                self._stop(self.limits.out_of_room())
        self.handle.write(chunk)
        self.digest.update(chunk)
        self.keyed.update(chunk)
        self.size += len(chunk)
        self.reporter.update(self.size)

    def _stop(self, why: str) -> None:
        self.error = why
        raise _CopyStopped(why)

    def finish(self) -> None:
        if self._pending and not self.error:
            self.error = "the copy ended in the middle of a base64 group (the download is truncated)"


class CopyProgress:
    """Progress of one large copy on a terminal: one line rewritten in place, at most five times a second.

    Silent when the stream is not a terminal (cron, --json to a pipe) or the copy is small.
    """

    def __init__(self, host: str, name: str, total: int | None, *, stream: TextIO | None = None,
                 minimum: int = PROGRESS_MIN_BYTES) -> None:
        self.stream = stream or sys.stderr
        self.host, self.name, self.total = host, name, total
        self.enabled = bool(total and total >= minimum and _is_terminal(self.stream))
        self._shown = 0.0
        self._done = 0

    def update(self, done: int) -> None:
        """Given the bytes copied so far, redraw the line when a fifth of a second has passed."""
        self._done = done
        now = time.monotonic()
        if self.enabled and now - self._shown >= 0.2:
            self._shown = now
            self._draw()

    def close(self) -> None:
        """End the progress line (drawn once more at its final value)."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        assert self.total
        percent = min(100, int(self._done * 100 / self.total))
        self.stream.write(f"\r{self.host}: copying {self.name} off the host: {percent:3d}% "
                          f"({self._done / 2**20:.0f} of {self.total / 2**20:.0f} MiB)")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _sum_key(state_dir: Path, host: str, step: str) -> bytes:
    """Given the state dir, return the key of the ledger's sums of copies, made the first time (32 random bytes, 0600);
    raise CopyFailed naming the file if it cannot be made or read, or is not such a key (then nothing is copied)."""
    path = state_dir / SUM_KEY_FILE
    try:
        if not path.exists():
            _make_sum_key(path)
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            key = handle.read(_SUM_KEY_BYTES + 1)
    except OSError as error:
        raise CopyFailed(f"host {host}: step {step!r}: cannot make or read the key of the copies' sums {path}: "
                         f"{error.strerror or error}; nothing was copied", step=step) from None
    if not stat.S_ISREG(mode) or stat.S_IMODE(mode) & 0o077 or len(key) != _SUM_KEY_BYTES:
        raise CopyFailed(f"host {host}: step {step!r}: {path} is not the owner-only (0600) {_SUM_KEY_BYTES}-byte key "
                         "opsguard makes for the copies' sums: move it away (a new one is made; the sums already in "
                         "the ledger then cannot be checked) or make it 0600; nothing was copied", step=step)
    return key


def _make_sum_key(path: Path) -> None:
    """Given the key's path, write 32 random bytes there as a 0600 file, whole or not at all (another run may be making
    it at the same moment: the first one linked into place wins)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(_SUM_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    """Given a path and bytes, write them whole as a 0600 file (through a temporary name)."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


# -- retention -----------------------------------------------------------------------------------------------


def host_copy_runs(state_dir: Path, host: str) -> list[str]:
    """Given the state dir and a host, return the run ids that have copies, oldest first (run ids sort by time).

    Only directories named as run ids count: anything else under copies/<host>/ was put there by someone else.
    """
    directory = Path(state_dir) / COPIES_DIR / host
    if not directory.is_dir():
        return []
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and events.RUN_ID.fullmatch(entry.name))


def unsettled_runs(state_dir: Path, host: str) -> set[str]:
    """Given the state dir and a host, return the runs this machine's ledger records as failed or unknown on that host
    (a verified snapshot and no end, or an end that is not ok) and that no rollback has undone successfully since.

    Raise ConfigError if the ledger cannot be read.
    """
    records = events.Ledger(Path(state_dir)).records(host)
    verified = {record["run_id"] for record in records if record.get("event") == events.SNAPSHOT_VERIFIED}
    outcomes = {record["run_id"]: record.get("outcome") for record in records if record.get("event") == events.RUN_ENDED}
    rolls_back = {record["run_id"]: record.get("rolls_back") for record in records
                  if record.get("event") == events.RUN_FACTS and isinstance(record.get("rolls_back"), str)}  # fmt: skip
    undone = {run for rollback, run in rolls_back.items() if outcomes.get(rollback) == events.OK}
    return {run for run in verified if outcomes.get(run, events.UNKNOWN) in (events.FAILED, events.UNKNOWN)} - undone


def prune(state_dir: Path, host: str, keep: int, *, keep_run: str) -> Iterator[str]:
    """Given the state dir, a host, how many runs' copies to keep and the run whose copies must stay, remove the
    copies of the runs older than the last ``keep`` and yield each removed run id.

    SAFETY: the copies of a run that is not settled (failed or unknown, not rolled back: see unsettled_runs) stay
    whatever their age: they may be the only way back for what that run changed. When the ledger cannot be read,
    nothing is removed.
    """
    runs = [run for run in host_copy_runs(state_dir, host) if run != keep_run]
    older = runs[: max(0, len(runs) + 1 - max(1, keep))]
    if not older:
        return
    try:
        unsettled = unsettled_runs(state_dir, host)
    except ConfigError:
        return  # cannot tell which runs are settled: keep every copy
    for run in older:
        if run not in unsettled:
            shutil.rmtree(Path(state_dir) / COPIES_DIR / host / run)
            yield run
