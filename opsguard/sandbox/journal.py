"""Judging what a sandbox host received: which commands may have changed it.

SAFETY: this is the oracle of the tests and the demo for "refused => nothing mutating ran". It uses
opsguard's ONE read-only vocabulary (opsguard/readonly.py) and inverts the burden: a command counts
as read-only only when the vocabulary knows it is; anything else — an unknown tool, a redirection
into a file, an SFTP session — counts as a change.

Two records, two judgements:
- ``changing_sessions``: every SSH session's FULL command line, as the session recorder wrote it
  (opsguard/sandbox/hosts.py). This sees everything a host was asked, stubbed tool or not (``mv``,
  ``rm``, ``tar``, a redirect). Writes under the directories the caller names as opsguard's own (its
  lock dir and change record) are bookkeeping, not changes.
- ``is_mutating_call`` / ``mutating_calls``: one stub call (argv) from the stub journal, judged by
  the same vocabulary. A pm2 listing counts as read-only only when the stub saw the user's daemon
  already running (otherwise pm2 started one: a write).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from opsguard.readonly import classify, read_only_problem
from opsguard.sandbox.hosts import SandboxHosts, SessionRecord
from opsguard.transport import pid_file_prefix

_PM2_LISTINGS = {"jlist", "list", "ls", "l", "status", "describe", "desc", "show", "info", "prettylist", "pid"}


def session_problem(session: SessionRecord, *, writable: Sequence[str] = ()) -> str | None:
    """Given one recorded SSH session and opsguard's own directories, return None if it only read
    (or wrote only there), else why it may have changed the host."""
    if session.is_sftp:
        return "an SFTP session (it can write any file)"
    return classify(_without_pid_file_prefix(session.command, writable), writable=writable)


_PID_FILE_PREFIX = re.compile(r"trap 'rm -f -- (/[A-Za-z0-9_./-]+)' EXIT; ")


def _without_pid_file_prefix(command: str, writable: Sequence[str]) -> str:
    """Given a command line, return it without the exact pid-file prefix opsguard's transport puts in front of a
    step, when that pid file is in one of opsguard's own directories; else the command line unchanged."""
    match = _PID_FILE_PREFIX.match(command)
    if match is None or not any(match.group(1).startswith(directory.rstrip("/") + "/") for directory in writable):
        return command
    # SAFETY: only the prefix transport.render_command writes, byte for byte; anything else is judged whole.
    prefix = pid_file_prefix(match.group(1))
    return command[len(prefix):] if command.startswith(prefix) and ".." not in match.group(1) else command


def changing_sessions(sessions: Iterable[SessionRecord], *, writable: Sequence[str] = ()) -> list[str]:
    """Given a host's recorded sessions and opsguard's own directories, return the command lines that may have
    changed the host, oldest first (an empty list means: nothing but reads and opsguard's bookkeeping)."""
    return [session.command for session in sessions if session_problem(session, writable=writable) is not None]


def opsguard_dirs(hosts: SandboxHosts, name: str) -> tuple[str, str]:
    """Given the sandbox hosts and a host name, return opsguard's own dirs on it: the remote lock and the change record."""
    root = hosts.host(name).root
    return str(root / "run" / "lock" / "opsguard"), str(root / "var" / "lib" / "opsguard")


def host_change_records(hosts: SandboxHosts, name: str) -> list[SessionRecord]:
    """Given the sandbox hosts and a host name, return every session it received that may have changed it
    (opsguard's lock and change record aside), oldest first, with when it arrived."""
    writable = opsguard_dirs(hosts, name)
    return [session for session in hosts.sessions(name) if session_problem(session, writable=writable) is not None]


def host_changes(hosts: SandboxHosts, name: str) -> list[str]:
    """Given the sandbox hosts and a host name, return every command line it received that may have changed it
    (opsguard's lock and change record aside), oldest first."""
    return [session.command for session in host_change_records(hosts, name)]


def is_mutating_call(argv: list[str], *, pm2_daemon_running: bool = False) -> bool:
    """Given a recorded stub call (argv), return whether it may have changed the host."""
    if not argv:
        return False
    if argv[0] == "sudo":
        # sudo ... -- sh -c 'CMD': the inner commands are recorded as their own calls by their stubs.
        return False
    if argv[0] == "pm2" and pm2_daemon_running and len(argv) > 1 and argv[1] in _PM2_LISTINGS:
        return False
    return read_only_problem(shlex.join(argv)) is not None


def mutating_calls(journal: list[dict[str, Any]]) -> list[list[str]]:
    """Given a host's stub journal records, return the argv of every call that may have changed the host."""
    calls = []
    for record in journal:
        argv = record.get("argv")
        if not isinstance(argv, list):
            continue
        words = [str(word) for word in argv]
        if is_mutating_call(words, pm2_daemon_running=bool(record.get("pm2_daemon"))):
            calls.append(words)
    return calls
