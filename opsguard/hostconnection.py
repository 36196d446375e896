"""The run's one SSH connection to a host: re-openable after a reboot, and checked to be the snapshotted machine.

Sessions and the remote lock hold this object, not the transport connection, so after
``reconnect()`` every holder uses the new connection. It is never handed out by a session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsguard.errors import Refused
from opsguard.inventory import Host, Settings

if TYPE_CHECKING:
    from opsguard.transport import CommandResult, Connection

Connector = Callable[[Host, Settings], "Connection"]


class HostConnection:
    """One SSH connection to one host; with ``require_peer`` it must reach one of the instance's IPs.

    SAFETY: the identity check resolved the address once and SSH resolved it again; with several
    A records or a DNS change in between, the change could land on another machine than the
    snapshot. So the connection's peer address must be one of the instance's IPs, checked on the
    first connection and on every reconnect BEFORE the new connection is used: a connection that
    fails the check (or cannot say which address it reached) is closed and nothing more is sent
    through this object — not the change record, not the lock release.
    """

    def __init__(self, host: Host, settings: Settings, connect: Connector) -> None:
        self.host = host
        self.settings = settings
        self._connect = connect
        self._inner: Any = connect(host, settings)
        self._allowed_peers: set[str] | None = None
        self._unusable: str | None = None  # why nothing may be sent any more (identity failed)
        self._after_reconnect: list[Callable[[], None]] = []
        self._swap = threading.Lock()

    def require_peer(self, addresses: set[str]) -> None:
        """Given the IPs the provider instance has, return if this connection reached one; raise Refused if not."""
        self._allowed_peers = set(addresses)
        problem = self._peer_problem(self._inner)
        if problem:
            self._poison(problem)

    def after_reconnect(self, action: Callable[[], None]) -> None:
        """Given an action (e.g. re-taking the remote lock), run it after every successful reconnect."""
        self._after_reconnect.append(action)

    def _peer_problem(self, inner: Any) -> str | None:
        if self._allowed_peers is None:
            return None
        try:
            peer = inner.peer_address
        except Exception:
            peer = None
        allowed = ", ".join(sorted(self._allowed_peers))
        if not peer:
            return f"host {self.host.name}: the SSH connection cannot say which address it reached (the instance has {allowed})"
        if peer not in self._allowed_peers:
            return f"host {self.host.name}: SSH reached {peer}, which is not the instance's address ({allowed})"
        return None

    def _poison(self, problem: str) -> None:
        self._unusable = problem
        with suppress(Exception):
            self._inner.close()
        raise Refused(problem)

    def run(self, command: str, **options: Any) -> CommandResult:
        """Given a command and transport options, run it on the host and return its result; raise Refused if unusable."""
        if self._unusable:
            raise Refused(self._unusable)
        inner = self._inner
        result: CommandResult = inner.run(command, **options)
        return result

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None) -> None:
        """Given a local file and a remote path, copy the file over SFTP; raise Refused if unusable."""
        if self._unusable:
            raise Refused(self._unusable)
        self._inner.upload(local_path, remote_path, mode=mode)

    def reconnect(self) -> None:
        """Close the current connection and open a new one; raise OutcomeUnknown while the host is down.

        Raise Refused (and keep nothing) if the new connection reached another machine. SAFETY: the
        new connection goes through the same strict host-key check as the first.
        """
        if self._unusable:
            raise Refused(self._unusable)
        with self._swap:
            with suppress(Exception):
                self._inner.close()
            fresh = self._connect(self.host, self.settings)
            problem = self._peer_problem(fresh)
            if problem:
                self._inner = fresh
                self._poison(problem)
            self._inner = fresh
        for action in self._after_reconnect:
            action()

    def authenticated_key(self) -> str | None:
        """Return the SHA256 fingerprint of the key that logged in, when the transport can tell."""
        with suppress(Exception):
            value = self._inner.authenticated_key()
            return str(value) if value else None
        return None

    def close(self) -> None:
        """Close the connection."""
        with suppress(Exception):
            self._inner.close()
