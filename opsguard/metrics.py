"""The read-only commands' reports as Prometheus node_exporter textfile-collector files, written atomically.

Every command writes the series of the shared report model (opsguard/report.py ``textfile_lines``):
``opsguard_<command>_host_ok{host}``, ``opsguard_<command>_state{host,check,state}``,
``opsguard_<command>_value{host,check,name}``, ``opsguard_<command>_timestamp_seconds`` and
``opsguard_<command>_exit_code`` — one file per command (``--textfile``).

backup-check adds its own series (gauges; labels ``host`` and ``provider`` unless said otherwise)::

    opsguard_backup_ok                               1 when the host passed (status ok or warn), else 0
    opsguard_backup_status{host,provider,status}     1 for the host's status (ok|warn|stale|missing|unreachable|config|error)
    opsguard_backup_newest_age_seconds               age of the newest complete backup
    opsguard_backup_count                            number of complete backups
    opsguard_backup_max_age_seconds                  the inventory's max_age
    opsguard_snapshot_expires_timestamp_seconds      Unix time the current Hostinger snapshot expires
    opsguard_backup_check_timestamp_seconds          (no labels) Unix time of this check
    opsguard_backup_check_exit_code                  (no labels) the run's exit code

Unknown values are OMITTED, never written as NaN or 0: a host whose backups could not be listed
has no ``opsguard_backup_count`` / ``opsguard_backup_newest_age_seconds`` series, and a host
with no backup has a count of 0 and no age series. ``opsguard_backup_ok`` is always present, so
alert on ``opsguard_backup_ok == 0`` and on ``time() - opsguard_backup_check_timestamp_seconds``
(a check that stopped running leaves the old file in place).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from opsguard.backups import STATUS_EXIT_CODES, BackupReport, to_report
from opsguard.report import Report, textfile_lines

_HELP = {
    "opsguard_backup_ok": "1 when the host's automatic backups passed backup-check (status ok or warn), else 0.",
    "opsguard_backup_status": "1 for the host's backup-check status.",
    "opsguard_backup_newest_age_seconds": "Age in seconds of the newest complete automatic backup.",
    "opsguard_backup_count": "Number of complete automatic backups the provider lists.",
    "opsguard_backup_max_age_seconds": "The inventory's max_age for the newest backup, in seconds.",
    "opsguard_snapshot_expires_timestamp_seconds": "Unix time at which the host's current provider snapshot expires.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge"]
    lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return lines


def render_report(report: Report) -> str:
    """Given a report of audit or health, return its textfile-collector text (ends with a newline)."""
    return "\n".join(textfile_lines(report)) + "\n"


def render_textfile(report: BackupReport) -> str:
    """Given a BackupReport, return the textfile-collector text: backup-check's series and the common ones."""
    hosts = report.hosts
    lines: list[str] = []
    lines += _family(
        "opsguard_backup_ok", ((_labels(host=h.host, provider=h.provider), 1.0 if h.ok else 0.0) for h in hosts)
    )
    lines += _family(
        "opsguard_backup_status",
        (
            (_labels(host=h.host, provider=h.provider, status=status), 1.0 if h.status == status else 0.0)
            for h in hosts
            for status in STATUS_EXIT_CODES
        ),
    )
    lines += _family(
        "opsguard_backup_newest_age_seconds",
        (
            (_labels(host=h.host, provider=h.provider), h.newest_backup_age_seconds)
            for h in hosts
            if h.newest_backup_age_seconds is not None
        ),
    )
    lines += _family(
        "opsguard_backup_count",
        (
            (_labels(host=h.host, provider=h.provider), float(h.backup_count))
            for h in hosts
            if h.backup_count is not None
        ),
    )
    lines += _family(
        "opsguard_backup_max_age_seconds",
        (
            (_labels(host=h.host, provider=h.provider), h.max_age_seconds)
            for h in hosts
            if h.max_age_seconds is not None
        ),
    )
    lines += _family(
        "opsguard_snapshot_expires_timestamp_seconds",
        (
            (_labels(host=h.host, provider=h.provider), h.snapshot.expires_at.timestamp())
            for h in hosts
            if h.snapshot is not None
            and h.snapshot.expires_at is not None
            and h.snapshot_expires_in_seconds is not None
        ),
    )
    # The common series include opsguard_backup_check_timestamp_seconds and _exit_code (same names as ever).
    lines += textfile_lines(to_report(report))
    return "\n".join(lines) + "\n"


def write_atomically(path: str | Path, text: str) -> None:
    """Given a path and text, replace the file's content atomically; raise OSError if it cannot.

    A temp file in the same directory, fsync, ``os.replace``, then fsync of the directory: the
    collector never reads a half-written file, and a crash leaves the old file or the new one.
    The temp name starts with a dot and does not end in ``.prom``, so node_exporter ignores it.
    """
    target = Path(path)
    directory = target.parent
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it 0600; node_exporter may run as another user
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    try:
        directory_descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # the file is in place; durability of the rename is best effort
    try:
        with contextlib.suppress(OSError):
            os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)
