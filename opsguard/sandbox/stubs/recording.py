"""The journal: one JSON line per stubbed call, and the SSH session (sshd processes) it came from.

Each call appends {"time", "argv", "cwd", "user", "stdin_bytes", "pid", "session", "env"} to
<root>/journal.jsonl under an exclusive lock, fsynced (env: the apt variables DEBIAN_FRONTEND,
NEEDRESTART_MODE, UCF_FORCE_CONFFOLD when set). A fake may add fields of its own: its module's
``journal_fields()`` (pm2 adds whether its daemon was running). The tests' oracle reads these
records through ``SandboxHosts.journal``.
"""

from __future__ import annotations

import fcntl
import os

from .core import to_json

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_RECORDED = ("DEBIAN_FRONTEND", "NEEDRESTART_MODE", "UCF_FORCE_CONFFOLD")  # journaled with each call


_STDIN_HEAD = bytearray()  # the first STDIN_HEAD_BYTES of what this call read on stdin (pg_restore reads its archive)
STDIN_HEAD_BYTES = 65536


def stdin_head() -> bytes:
    """Return the first bytes this call read on stdin (at most STDIN_HEAD_BYTES; empty before read_stdin)."""
    return bytes(_STDIN_HEAD)


def read_stdin(idle: float = 0.5) -> int:
    """Count stdin bytes until EOF, or until no data came for ``idle`` seconds (an open, silent pipe); keep the head."""
    import select

    try:
        if os.isatty(0):
            return 0
    except OSError:
        return 0
    total = 0
    while True:
        try:
            ready, _, _ = select.select([0], [], [], idle)
            if not ready:
                return total
            data = os.read(0, 65536)
        except (OSError, ValueError):
            return total
        if not data:
            return total
        if len(_STDIN_HEAD) < STDIN_HEAD_BYTES:
            _STDIN_HEAD.extend(data[: STDIN_HEAD_BYTES - len(_STDIN_HEAD)])
        total += len(data)


def record(root: str, entry: dict[str, Any]) -> None:
    """Append one JSON line to the journal; calls may overlap, so lock the file while appending."""
    line = to_json(entry) + "\n"
    with open(os.path.join(root, "journal.jsonl"), "a", encoding="utf-8") as journal:
        fcntl.flock(journal, fcntl.LOCK_EX)
        journal.write(line)
        journal.flush()
        os.fsync(journal.fileno())


def ancestors() -> list[tuple[int, str]]:
    """Return (pid, command name) of each ancestor process, nearest first."""
    chain: list[tuple[int, str]] = []
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat_file:
                stat = stat_file.read()
        except OSError:
            break
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        chain.append((pid, command))
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return chain


def sshd_session_pids(root: str) -> list[int]:
    """Return the pids of this SSH session's sshd processes, nearest first (never the listener).

    SAFETY: only when the host's own listener (pid in <root>/sshd.pid) is an ancestor, so a drop
    rule can never kill an sshd that is not this sandbox's.
    """
    try:
        with open(os.path.join(root, "sshd.pid"), encoding="utf-8") as pid_file:
            listener = int(pid_file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids: list[int] = []
    for pid, command in ancestors():
        if pid == listener:
            return pids
        if command.startswith("sshd"):
            pids.append(pid)
    return []


def sshd_all_session_pids(root: str) -> list[int]:
    """Return the pids of every SSH connection of this host (children of its listener): a reboot ends them all.

    SAFETY: only children of the host's own listener (pid in <root>/sshd.pid).
    """
    try:
        with open(os.path.join(root, "sshd.pid"), encoding="utf-8") as pid_file:
            listener = int(pid_file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == listener:
            children.append(int(entry))
    return children
