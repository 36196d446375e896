"""SSH to the hosts: strict host keys, one lean connection per host per run, per-step timeouts.

This is the ONLY module that imports paramiko (or fabric/invoke). Nothing the CLI imports for
``--help`` or ``hosts`` may import this module at top level: import it inside the function that
opens a connection.

Why raw paramiko channels and not Fabric/Invoke runners: one step must cost a few milliseconds on
a fast link (BENCHMARKS.md "Step overhead"). We open the TCP socket ourselves with TCP_NODELAY
(paramiko leaves Nagle on, which costs ~40 ms per command waiting for delayed ACKs) and run each
step on a fresh session channel of the one connection.

Outcome rules (docs/design.md, guard rule 6), which callers rely on:
- a non-zero exit status is returned, never raised: the caller decides what it means;
- a channel or connection that dies before an exit status arrives raises ConnectionDropped
  ("outcome unknown"), never a failure and never success;
- a step that runs past its timeout raises StepTimeout: the command may still be running.

Nothing here prints or logs; command text and environment values never go into exception
messages (they may carry secrets such as PGPASSWORD).
"""

from __future__ import annotations

import base64
import codecs
import collections
import contextlib
import hashlib
import logging
import os
import re
import select
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko
from paramiko.hostkeys import HostKeyEntry

from opsguard.errors import (
    ConfigError,
    ConnectionDropped,
    Failed,
    HostKeyRejected,
    OutcomeUnknown,
    StepTimeout,
)
from opsguard.inventory import Host, Settings
from opsguard.readonly import as_user

# paramiko logs connection resets from its transport thread; without a handler Python's
# last-resort handler would print them to stderr. We report through exceptions instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

KEEPALIVE_SECONDS = 15
_READ_SIZE = 65536
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARTIAL_SUFFIX = ".opsguard-partial"
# Output kept per stream in a CommandResult (its tail), in characters; Connection.run's max_kept.
DEFAULT_MAX_KEPT_CHARACTERS = 1 << 20
# A line longer than this goes to on_output in pieces, so an endless line is never held whole.
MAX_PENDING_LINE_CHARACTERS = 64 * 1024

OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. ``command`` is the command as the caller gave it (no env values).

    ``stdout`` and ``stderr`` are the last characters of each stream (Connection.run's ``max_kept``);
    ``stdout_dropped`` and ``stderr_dropped`` count the characters before them that were not kept.
    """

    command: str
    exit_status: int
    stdout: str
    stderr: str
    started_at: float  # epoch seconds
    duration: float  # seconds
    stdout_dropped: int = 0
    stderr_dropped: int = 0


def render_command(
    command: str, *, sudo_user: str | None = None, env: Mapping[str, str] | None = None, pid_file: str | None = None
) -> str:
    """Given a shell command, an optional user to run it as and environment variables, return the text sent to the host.

    ``env`` becomes ``export K=V ...;`` in front of the command (inside the sudo, since sudo
    resets the environment); ``sudo_user`` wraps it as readonly.as_user does
    (``sudo -n -H -u USER -- bash --login -c``: the text reaches bash exactly as written, never ``sudo -i``). With ``pid_file`` the session's shell first writes
    its pid there and removes it on exit: sshd makes that shell a process-group leader, so the pid
    names the whole command's process group, which the guard can find and stop (SAFETY: a step
    that timed out may still run; its lock is kept until that group is gone).
    Raise ValueError for an invalid variable name.
    """
    text = command
    if env:
        assignments = []
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
            assignments.append(f"{name}={shlex.quote(str(value))}")
        text = f"export {' '.join(assignments)}; {text}"
    if sudo_user:
        # bash, not sh: the read-only vocabulary judges text by bash's grammar (sh is dash on Debian/Ubuntu).
        text = as_user(sudo_user, text)
    if pid_file:
        text = pid_file_prefix(pid_file) + text
    return text


def pid_file_prefix(pid_file: str) -> str:
    """Given the remote path of a step's pid file, return the text put in front of the step (see render_command)."""
    path = shlex.quote(pid_file)
    return f"trap 'rm -f -- {path}' EXIT; printf '%s\\n' \"$$\" > {path} 2>/dev/null\n"


def fingerprint(key: Any) -> str:
    """Given a paramiko public key, return its OpenSSH SHA256 fingerprint ("SHA256:...")."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class _LineStream:
    """Decodes one output stream incrementally: hands lines to the callback as they arrive, keeps a bounded tail.

    Work is linear in the output and memory bounded per stream, whatever the output's shape:
    - the callback gets every character, in order: each complete line (without "\n" and trailing
      "\r"), and a line longer than ``max_pending`` characters in pieces as it grows (joined, the
      pieces are the line), so one endless line is never held whole;
    - the kept text (what CommandResult carries) is the last ``max_kept`` characters; ``dropped``
      counts the characters before them.
    """

    def __init__(
        self,
        name: str,
        callback: OutputCallback | None,
        *,
        max_kept: int = DEFAULT_MAX_KEPT_CHARACTERS,
        max_pending: int = MAX_PENDING_LINE_CHARACTERS,
    ) -> None:
        self.name = name
        self.dropped = 0
        self._callback = callback
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max_kept = max_kept
        self._kept: collections.deque[str] = collections.deque()
        self._kept_length = 0
        self._max_pending = max_pending
        # The line not yet ended by "\n", as pieces: joined once, when its newline arrives (joining
        # on every read is what made a long line quadratic).
        self._pending: list[str] = []
        self._pending_length = 0
        self._line_continues = False  # part of the current line was already handed over

    def feed(self, data: bytes) -> None:
        """Given bytes read from the stream, decode them, keep their tail and hand complete lines to the callback."""
        self._take(self._decoder.decode(data))

    def finish(self) -> str:
        """Given the end of the stream, hand over the last unended line; return the kept text (at most max_kept characters)."""
        self._take(self._decoder.decode(b"", final=True))
        if self._callback is not None and self._pending:
            self._hand_over_line(self._callback, "".join(self._pending))
            self._pending.clear()
            self._pending_length = 0
        return "".join(self._kept)

    def _take(self, text: str) -> None:
        if not text:
            return
        self._keep(text)
        if self._callback is not None:
            self._split_lines(self._callback, text)

    def _keep(self, text: str) -> None:
        self._kept.append(text)
        self._kept_length += len(text)
        excess = self._kept_length - self._max_kept
        while excess > 0:
            oldest = self._kept[0]
            if len(oldest) <= excess:
                self._kept.popleft()
                cut = len(oldest)
            else:
                self._kept[0] = oldest[excess:]
                cut = excess
            self._kept_length -= cut
            self.dropped += cut
            excess -= cut

    def _split_lines(self, callback: OutputCallback, text: str) -> None:
        if "\n" in text:
            lines = text.split("\n")
            if self._pending:
                self._pending.append(lines[0])
                lines[0] = "".join(self._pending)
                self._pending.clear()
                self._pending_length = 0
            rest = lines.pop()
            for line in lines:
                self._hand_over_line(callback, line)
            text = rest
        if text:
            self._pending.append(text)
            self._pending_length += len(text)
            if self._pending_length >= self._max_pending:
                self._hand_over_piece(callback)

    def _hand_over_line(self, callback: OutputCallback, line: str) -> None:
        line = line.rstrip("\r")
        # The end of a line already handed over in pieces may be empty: that is no line of its own.
        if line or not self._line_continues:
            callback(self.name, line)
        self._line_continues = False

    def _hand_over_piece(self, callback: OutputCallback) -> None:
        pending = "".join(self._pending)
        piece = pending.rstrip("\r")
        # Hold back trailing "\r": if "\n" follows, it is part of the line ending, not of the line.
        held = pending[len(piece) :] if piece else ""
        callback(self.name, piece or pending)
        self._line_continues = True
        self._pending = [held] if held else []
        self._pending_length = len(held)


class Connection:
    """One SSH connection to one host, reused for every step of a run. Not thread-safe.

    Get one from ``connect()``; use it as a context manager or call ``close()``.
    """

    def __init__(self, host: Host, client: Any, sock: socket.socket) -> None:
        self.host = host
        self._client = client
        self._sock = sock
        self._sftp: Any = None
        self._label = f"host {host.name} ({_endpoint(host)})"

    # -- introspection (tests and diagnostics) --------------------------------------------------
    @property
    def socket(self) -> socket.socket:
        """The TCP socket under the connection (TCP_NODELAY is set on it)."""
        return self._sock

    @property
    def peer_address(self) -> str:
        """The IP address this connection actually reached (a DNS name resolved once, at connect)."""
        return str(self._sock.getpeername()[0])

    @property
    def transport(self) -> Any:
        """The paramiko Transport (one per connection), or None after close()."""
        return self._client.get_transport()

    def authenticated_key(self) -> str | None:
        """Return the SHA256 fingerprint of the key that authenticated this connection (agent or file), if known."""
        handler = getattr(self.transport, "auth_handler", None)
        key = getattr(handler, "private_key", None)
        return fingerprint(key) if key is not None else None

    @property
    def is_open(self) -> bool:
        """True while the SSH connection is alive."""
        transport = self.transport
        return transport is not None and transport.is_active()

    # -- steps ----------------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        timeout: float,
        sudo_user: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
        max_kept: int = DEFAULT_MAX_KEPT_CHARACTERS,
        pid_file: str | None = None,
    ) -> CommandResult:
        """Given a shell command and a timeout in seconds, run it on the host and return its CommandResult.

        ``on_output(stream, line)`` is called for each line ("stdout" or "stderr") as it arrives,
        without the newline; a line longer than 64 KiB arrives in pieces as it grows. All output
        reaches ``on_output``; the result keeps only the last ``max_kept`` characters of each
        stream (default 1 MiB) and counts the rest in ``stdout_dropped``/``stderr_dropped``.
        A non-zero exit status is returned, not raised. The command's stdin is closed at once
        (no step may wait for input). ``pid_file``: see render_command.
        Raise ValueError for a timeout <= 0 or a negative max_kept; ConnectionDropped if the
        connection or channel dies before an exit status arrives (outcome unknown); StepTimeout
        after ``timeout`` seconds (the command may still run).
        """
        if timeout <= 0:
            raise ValueError(f"timeout must be greater than zero, not {timeout!r}")
        if max_kept < 0:
            raise ValueError(f"max_kept must be zero or more characters, not {max_kept!r}")
        text = render_command(command, sudo_user=sudo_user, env=env, pid_file=pid_file)
        started_at = time.time()
        start = time.monotonic()
        deadline = start + timeout
        channel = self._open_channel(deadline)
        try:
            try:
                channel.exec_command(text)
                channel.shutdown_write()
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise ConnectionDropped(
                    f"{self._label}: the connection failed while starting a command ({_reason(error)}); "
                    "it may or may not have started"
                ) from None
            stdout = _LineStream("stdout", on_output, max_kept=max_kept)
            stderr = _LineStream("stderr", on_output, max_kept=max_kept)
            self._pump(channel, stdout, stderr, deadline, timeout)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise self._timeout(timeout)
            exit_status = channel.exit_status
            out_text, err_text = stdout.finish(), stderr.finish()
        finally:
            # Closing a channel whose transport died must not hide what happened to the command.
            with contextlib.suppress(Exception):
                channel.close()
        if exit_status == -1:
            # paramiko wakes channel waiters before it marks a dead transport inactive: give a
            # dying transport thread a moment to finish so the message says the right thing.
            transport = self.transport
            if transport is not None:
                transport.join(0.25)
            if self.is_open:
                why = "the command ended without an exit status (killed by a signal?)"
            else:
                why = "the SSH connection dropped while the command ran"
            raise ConnectionDropped(f"{self._label}: {why}; outcome unknown: it may or may not have taken effect")
        return CommandResult(
            command=command,
            exit_status=exit_status,
            stdout=out_text,
            stderr=err_text,
            started_at=started_at,
            duration=time.monotonic() - start,
            stdout_dropped=stdout.dropped,
            stderr_dropped=stderr.dropped,
        )

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None, timeout: float = 600.0) -> None:
        """Given a local file and a remote path, copy it over SFTP (to a temporary name, then renamed into place).

        ``mode`` (e.g. 0o640) is applied before the rename, so the final path never holds a partial
        or wrongly-permissioned file. Raise ConfigError if the local file is missing, Failed if the
        host refuses the write, StepTimeout if the transfer stalls for ``timeout`` seconds,
        ConnectionDropped if the connection dies.
        """
        local_path = Path(local_path)
        if not local_path.is_file():
            raise ConfigError(f"{local_path}: no such file to upload to {self._label}")
        partial = remote_path + _PARTIAL_SUFFIX
        try:
            sftp = self._sftp_client()
            sftp.get_channel().settimeout(timeout)
            sftp.put(str(local_path), partial, confirm=True)
            if mode is not None:
                sftp.chmod(partial, mode)
            sftp.posix_rename(partial, remote_path)
        except TimeoutError:
            self._drop_sftp()
            raise StepTimeout(
                f"{self._label}: upload to {remote_path} timed out after {timeout:g}s; a partial file may remain at {partial}"
            ) from None
        except (paramiko.SSHException, EOFError) as error:
            self._drop_sftp()
            raise ConnectionDropped(
                f"{self._label}: the connection dropped during upload to {remote_path} ({_reason(error)})"
            ) from None
        except OSError as error:
            if not self.is_open:
                self._drop_sftp()
                raise ConnectionDropped(
                    f"{self._label}: the connection dropped during upload to {remote_path}"
                ) from None
            self._remove_quietly(partial)
            raise Failed(f"{self._label}: upload to {remote_path} failed: {_reason(error)}") from None

    def close(self) -> None:
        """Close the SFTP session (if any) and the connection; safe to call twice."""
        self._drop_sftp()
        self._client.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Connection {self._label} {'open' if self.is_open else 'closed'}>"

    # -- internals ------------------------------------------------------------------------------
    def _open_channel(self, deadline: float) -> Any:
        transport = self.transport
        if transport is None or not transport.is_active():
            raise ConnectionDropped(f"{self._label}: the SSH connection is closed; the command was not sent")
        try:
            return transport.open_session(timeout=max(0.001, deadline - time.monotonic()))
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise ConnectionDropped(
                f"{self._label}: could not open a session ({_reason(error)}); the command was not sent"
            ) from None

    def _pump(self, channel: Any, stdout: _LineStream, stderr: _LineStream, deadline: float, timeout: float) -> None:
        # Read both streams until the server sends EOF or the channel closes. select() on the
        # channel wakes on data for either stream and on EOF/close (paramiko signals a pipe).
        while True:
            if channel.recv_ready():
                stdout.feed(channel.recv(_READ_SIZE))
                continue
            if channel.recv_stderr_ready():
                stderr.feed(channel.recv_stderr(_READ_SIZE))
                continue
            if channel.eof_received or channel.closed:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(timeout)
            select.select([channel], [], [], remaining)

    def _timeout(self, timeout: float) -> StepTimeout:
        return StepTimeout(
            f"{self._label}: the command did not finish within {timeout:g}s; its channel was closed but "
            "the command may still be running on the host"
        )

    def _sftp_client(self) -> Any:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def _drop_sftp(self) -> None:
        if self._sftp is not None:
            # Closing a dead SFTP session must not mask the real error.
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None

    def _remove_quietly(self, remote_path: str) -> None:
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
            self._sftp_client().remove(remote_path)


class _UnknownHostKey(Exception):
    """Raised by our missing-host-key policy; turned into HostKeyRejected by connect()."""

    def __init__(self, key: Any) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RevokedHostKey(Exception):
    """Raised by our missing-host-key policy for a key marked @revoked; turned into HostKeyRejected by connect()."""

    def __init__(self, key: Any) -> None:
        super().__init__("revoked host key")
        self.key = key


@dataclass(frozen=True)
class _KnownHosts:
    """What connect() trusts from known_hosts: (host name, key) pairs, and the keys marked @revoked."""

    entries: list[tuple[str, Any]]
    revoked: frozenset[bytes]  # public key blobs

    def is_revoked(self, key: Any) -> bool:
        """Given a paramiko public key, return True if known_hosts marks it @revoked."""
        return bytes(key.asbytes()) in self.revoked


class _RejectUnknownHostKey(paramiko.RejectPolicy):  # type: ignore[misc]
    """Strict checking: a host whose key is not in known_hosts is refused, never added; a revoked key says so."""

    def __init__(self, known: _KnownHosts) -> None:
        self._known = known

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        # connect() drops every entry whose key is revoked, so a revoked key always ends up here
        # (or in BadHostKeyException when the host also has another key of that type).
        if self._known.is_revoked(key):
            raise _RevokedHostKey(key)
        raise _UnknownHostKey(key)


def connect(host: Host, settings: Settings, *, connect_timeout: float = 10.0) -> Connection:
    """Given an inventory host and settings, return an open, authenticated Connection.

    Host keys come ONLY from ``settings.known_hosts``; an unknown, changed or ``@revoked`` key is
    refused before authentication (``@cert-authority`` lines are not supported: never trusted).
    Authentication uses ``settings.identity_file`` if set, else ssh-agent, ~/.ssh/config
    IdentityFile and the default keys.
    Raise HostKeyRejected (exit 3) if known_hosts is missing, lacks or contradicts the host's key
    or marks it revoked; ConfigError (exit 78) if known_hosts is a directory (or not a regular
    file) or cannot be read, if authentication fails or the identity file is missing;
    OutcomeUnknown (exit 4) if the host cannot be reached or the SSH handshake fails.
    """
    label = f"host {host.name} ({_endpoint(host)})"
    known_hosts = settings.known_hosts
    known = _load_known_hosts(known_hosts, host, label)
    key_filenames = _identity_files(host, settings, label)
    sock = _open_socket(host, connect_timeout, label)
    client = paramiko.SSHClient()
    try:
        # Strict: only the configured known_hosts file (never load_system_host_keys, never AutoAdd).
        local_keys = client.get_host_keys()
        for name, key in known.entries:
            local_keys.add(name, key.get_name(), key)
        client.set_missing_host_key_policy(_RejectUnknownHostKey(known))
        client.connect(
            hostname=host.address,
            port=host.port,
            username=host.user,
            sock=sock,
            key_filename=key_filenames or None,
            look_for_keys=settings.identity_file is None,
            allow_agent=True,
            timeout=connect_timeout,
            banner_timeout=connect_timeout,
            auth_timeout=connect_timeout,
            channel_timeout=connect_timeout,
        )
        client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
    except _RevokedHostKey as error:
        _close_quietly(client, sock)
        raise _revoked_refusal(label, error.key, known_hosts) from None
    except _UnknownHostKey as error:
        _close_quietly(client, sock)
        raise HostKeyRejected(
            f"{label}: host key is not in {known_hosts} (the server offered {error.key.get_name()} "
            f"{fingerprint(error.key)}); verify its fingerprint with the provider console, then add it: "
            f"{_keyscan_hint(host, known_hosts)}"
        ) from None
    except paramiko.BadHostKeyException as error:
        _close_quietly(client, sock)
        if known.is_revoked(error.key):
            raise _revoked_refusal(label, error.key, known_hosts) from None
        raise HostKeyRejected(
            f"{label}: host key CHANGED (possible man-in-the-middle, or the server was reinstalled): "
            f"{known_hosts} has {error.expected_key.get_name()} {fingerprint(error.expected_key)}, the server offered "
            f"{error.key.get_name()} {fingerprint(error.key)}; verify with the provider console before replacing the "
            f"entry (ssh-keygen -R {_known_hosts_name(host)} -f {known_hosts})"
        ) from None
    except paramiko.AuthenticationException:
        _close_quietly(client, sock)
        where = f"identity_file {settings.identity_file}" if settings.identity_file else "ssh-agent / default keys"
        raise ConfigError(
            f"{label}: SSH authentication failed for user {host.user!r} ({where}); check the key is in that "
            f"user's authorized_keys, and settings.identity_file / hosts.{host.name}.user in the inventory"
        ) from None
    except (paramiko.SSHException, EOFError, OSError) as error:
        _close_quietly(client, sock)
        raise OutcomeUnknown(f"{label}: SSH handshake failed: {_reason(error)}") from None
    except BaseException:
        _close_quietly(client, sock)
        raise
    return Connection(host, client, sock)


# -- connect helpers -------------------------------------------------------------------------------


def _endpoint(host: Host) -> str:
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"{address}:{host.port}"


def _known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _keyscan_hint(host: Host, known_hosts: Path) -> str:
    return f"ssh-keyscan -p {host.port} {host.address} >> {known_hosts}"


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _revoked_refusal(label: str, key: Any, known_hosts: Path) -> HostKeyRejected:
    return HostKeyRejected(
        f"{label}: host key {key.get_name()} {fingerprint(key)} is REVOKED (marked @revoked in {known_hosts}); "
        "refusing to connect, as a revoked key may be in someone else's hands: get the host's new key "
        "from the provider console"
    )


def _load_known_hosts(path: Path, host: Host, label: str) -> _KnownHosts:
    """Read known_hosts tolerantly: keep plain entries whose key is not @revoked; skip lines paramiko cannot parse."""
    text = _read_known_hosts(path, host, label)
    entries: list[tuple[str, Any]] = []
    revoked: set[bytes] = set()
    for number, raw_line in enumerate(text.splitlines(), 1):
        fields = raw_line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "@revoked":
            # SAFETY: a revoked key is refused for every host, whatever names its line gives: a
            # key that must never be accepted for one name must not be accepted under another.
            entry = _parse_known_hosts_line(" ".join(fields[1:]), number)
            if entry is not None:
                revoked.add(bytes(entry.key.asbytes()))
            continue
        if fields[0].startswith("@"):
            # @cert-authority (and any other marker): paramiko cannot honour it; skipping means
            # such a key is simply not trusted (refused), never accepted.
            continue
        entry = _parse_known_hosts_line(raw_line.strip(), number)
        if entry is not None:
            entries += [(name, entry.key) for name in entry.hostnames]
    # Dropped, not just flagged: paramiko would otherwise accept the key from its own table.
    kept = [(name, key) for name, key in entries if bytes(key.asbytes()) not in revoked]
    return _KnownHosts(kept, frozenset(revoked))


def _read_known_hosts(path: Path, host: Host, label: str) -> str:
    if path.is_dir():
        raise ConfigError(
            f"{label}: known_hosts {path} is a directory, not a file; point settings.known_hosts in the "
            "inventory at the known_hosts file itself"
        )
    missing = HostKeyRejected(
        f"{label}: known_hosts file {path} does not exist, so no host key can be verified; verify the host's "
        f"fingerprint with the provider console, then add it: {_keyscan_hint(host, path)}"
    )
    if not path.exists():
        raise missing
    if not path.is_file():
        raise ConfigError(
            f"{label}: known_hosts {path} is not a regular file; point settings.known_hosts in the inventory "
            "at the known_hosts file itself"
        )
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:  # removed since the check above
        raise missing from None
    except OSError as error:
        raise ConfigError(
            f"{label}: known_hosts {path} cannot be read: {_reason(error)}; check its permissions, or "
            "settings.known_hosts in the inventory"
        ) from None


def _parse_known_hosts_line(line: str, number: int) -> HostKeyEntry | None:
    try:
        return HostKeyEntry.from_line(line, number)
    except Exception:  # a corrupt line must not stop strict checking of the others
        return None


def _identity_files(host: Host, settings: Settings, label: str) -> list[str]:
    if settings.identity_file is not None:
        if not settings.identity_file.is_file():
            raise ConfigError(f"{label}: settings.identity_file {settings.identity_file} does not exist")
        return [str(settings.identity_file)]
    config_path = Path(os.path.expanduser("~/.ssh/config"))
    if not config_path.is_file():
        return []
    try:
        config = paramiko.SSHConfig.from_path(str(config_path))
        found = config.lookup(host.address).get("identityfile", [])
    except Exception:  # an unreadable ~/.ssh/config only loses a hint; agent and default keys remain
        return []
    return [path for path in found if Path(path).is_file()]


def _open_socket(host: Host, connect_timeout: float, label: str) -> socket.socket:
    try:
        sock = socket.create_connection((host.address, host.port), timeout=connect_timeout)
    except socket.gaierror as error:
        raise OutcomeUnknown(f"{label}: cannot resolve {host.address}: {error.strerror or error}") from None
    except TimeoutError:
        raise OutcomeUnknown(f"{label}: no answer within {connect_timeout:g}s (host down or port filtered?)") from None
    except OSError as error:
        raise OutcomeUnknown(f"{label}: cannot connect: {_reason(error)}") from None
    # Nagle off: each small SSH request otherwise waits for a delayed ACK (~40 ms per step).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _close_quietly(client: Any, sock: socket.socket) -> None:
    # Cleanup after a failed connect must not hide the real error.
    with contextlib.suppress(Exception):
        client.close()
    with contextlib.suppress(OSError):
        sock.close()
