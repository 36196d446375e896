"""Fabric tasks under the snapshot guard: the connection a task gets, and finding and calling a task in a file.

A Fabric task is a function of a connection ``c`` that calls ``c.run``, ``c.sudo``, ``c.put`` and
``c.get``, inside ``c.cd`` and ``c.prefix``. ``GuardedConnection`` offers that surface (same
signatures for the common arguments, an invoke ``Result`` back, ``UnexpectedExit`` unless
``warn=True``) over a ChangeSession, so a team's task runs unchanged while every call goes through
the guard. Get one with ``ChangeSession.fabric()``; ``opsguard fab`` loads a task file and calls a
task with one (``load_task_file``, ``find_task``, ``parse_task_arguments``, ``call_task``).

SAFETY:
- The connection holds the session (a capability), never the SSH connection. What would reach the
  host around the recording is refused with an error naming it: the raw client and transport, SFTP,
  port forwarding, an interactive shell, a pty, watchers and responders, stdin, asynchronous or
  disowned commands, sudo passwords (opsguard's sudo never prompts).
- Every call is a ledger record: text in the read-only vocabulary (opsguard/readonly.py) a recorded
  read, anything else a mutating step (recorded as started before it is sent).
- ``get`` reads the file with a read-only command (``stat`` and ``base64``), never with an SFTP
  session: SFTP can write any file, so it would be a change.
- After a call ended in an opsguard error (outcome unknown, a refusal), every later call raises that
  error again: a task that catches it cannot go on changing a host whose state is not known.

fabric and invoke are imported here and nowhere else in opsguard; this module is imported only when
a Fabric task runs, so ``opsguard --help`` never loads them.
"""

from __future__ import annotations

import base64
import binascii
import errno
import importlib.util
import inspect
import os
import posixpath
import re
import shlex
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import invoke
from invoke.exceptions import Exit, ParseError, UnexpectedExit
from invoke.parser import Parser, ParserContext
from invoke.runners import Result, normalize_hide
from invoke.tasks import Call, Task

from opsguard.errors import ConfigError, Failed, OpsguardError, StepFailed
from opsguard.inventory import Host
from opsguard.readonly import read_only_problem
from opsguard.session import DEFAULT_STEP_TIMEOUT, ChangeSession
from opsguard.textsafe import printable
from opsguard.transport import render_command

__all__ = [
    "CallRecord",
    "GuardedConnection",
    "LoadedTaskFile",
    "NotOffered",
    "TaskFailed",
    "call_task",
    "check_task_hosts",
    "find_task",
    "load_task_file",
    "parse_task_arguments",
]

OutputCallback = Callable[[str, str], None]

# With warn=True every exit status is accepted: the step is recorded "ok" with its exit status.
_ANY_EXIT = tuple(range(256))
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INVOKE_ECHO_FORMAT = "\033[1;37m{command}\033[0m"

# invoke's Runner.run options: what each one may be under the guard (None: any value).
# SAFETY: a refused option names itself and why; nothing is silently dropped.
_RUN_OPTIONS: dict[str, tuple[Callable[[Any], bool], str] | None] = {
    "hide": None,
    "warn": None,
    "env": None,
    "timeout": None,
    "echo": None,
    "echo_format": None,
    "out_stream": None,
    "err_stream": None,
    "replace_env": None,  # the host's environment is never the local one: env= only adds variables
    "shell": None,  # as in Fabric: a remote command runs in the login user's shell
    "fallback": None,  # pty fallback: there is no pty
    "echo_stdin": None,  # there is no stdin to echo
    "encoding": (lambda value: value is None or str(value).lower().replace("-", "").replace("_", "") == "utf8",
                 "output is decoded as UTF-8"),
    "pty": (lambda value: not value, "a pty makes the command interactive, answering prompts the ledger cannot see"),
    "watchers": (lambda value: not value, "watchers and responders answer the command's prompts behind the recording"),
    "in_stream": (lambda value: value is None or value is False, "a step's stdin is closed: no step may wait for input"),
    "asynchronous": (lambda value: not value, "a step must end (and be recorded) before the next one starts"),
    "disown": (lambda value: not value, "a step must end (and be recorded) before the next one starts"),
    "dry": (lambda value: not value, "a dry run inside a guarded change snapshots for nothing; use `opsguard plan`"),
}


class NotOffered(Failed):
    """A task asked the guarded connection for something that would bypass the recording (exit 1)."""


class TaskFailed(Failed):
    """The task raised (or exited non-zero) before it completed (exit 1)."""


@dataclass
class CallRecord:
    """One call a task made: how it is named in the ledger, what became of it, how long it took."""

    name: str
    result: str  # "ok" / "failed" (a step), "read" / "read failed" (a read), "error" (an opsguard error: see the ledger)
    duration: float
    exit_status: int | None = None


class GuardedConnection(invoke.Context):
    """What a Fabric task gets as ``c`` under the guard: run, sudo, put, get, local, cd, prefix — every remote call recorded.

    Get one from ``ChangeSession.fabric()``. ``host``, ``user`` and ``port`` are the inventory
    host's. Offered as in Fabric: ``run``/``sudo`` (``hide``, ``warn``, ``env``, ``timeout``,
    ``echo``, ``out_stream``/``err_stream``; ``sudo`` also ``user``), ``put``, ``get``, ``local``,
    ``cd``, ``prefix``, ``open``/``close`` (no-ops: the guard owns the connection). Refused with
    NotOffered: ``client``, ``transport``, ``sftp``, ``forward_local``, ``forward_remote``,
    ``create_session``, ``shell``, ``open_gateway``, and the run options ``pty``, ``watchers``,
    ``in_stream``, ``asynchronous``, ``disown``, ``dry``, sudo ``password``.
    """

    def __init__(self, session: ChangeSession, *, task: str | None = None, output: OutputCallback | None = None) -> None:
        # lazy: the operator's invoke/fabric configuration files are not read; a task's arguments are its interface.
        super().__init__(config=invoke.Config(lazy=True))
        self._set(_session=session, _task=task, _output=output or _print_line, _halted=None, _last_failure=None)
        self._set(calls=[])

    # -- what Fabric's Connection says about itself ---------------------------------------------------------

    @property
    def host_name(self) -> str:
        """The inventory host's name (opsguard's, for messages)."""
        return self._session.host.name

    @property
    def host(self) -> str:
        """The inventory host's address."""
        return self._session.host.address

    @property
    def original_host(self) -> str:
        """The inventory host's address (Fabric: the host as given)."""
        return self._session.host.address

    @property
    def user(self) -> str:
        """The SSH login user."""
        return self._session.host.user

    @property
    def port(self) -> int:
        """The SSH port."""
        return self._session.host.port

    @property
    def is_connected(self) -> bool:
        """Whether the guarded session is still open."""
        return not self._session.closed

    def open(self) -> None:
        """Do nothing: the guard opened the connection (and owns it)."""

    def close(self) -> None:
        """Do nothing: the guard closes the connection when the guarded block ends."""

    def __enter__(self) -> GuardedConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    # -- refused: each would reach the host around the recording ----------------------------------------------

    @property
    def client(self) -> Any:
        raise self._not_offered("c.client", "a raw SSH client runs commands no ledger records")

    @property
    def transport(self) -> Any:
        raise self._not_offered("c.transport", "a raw SSH transport runs commands no ledger records")

    @property
    def sftp(self) -> Any:
        raise self._not_offered("c.sftp", "an SFTP session can write any file unrecorded; use c.put and c.get")

    @property
    def forward_local(self) -> Any:
        raise self._not_offered("c.forward_local", "port forwarding reaches the host's services around the recording")

    @property
    def forward_remote(self) -> Any:
        raise self._not_offered("c.forward_remote", "port forwarding reaches the host's services around the recording")

    @property
    def create_session(self) -> Any:
        raise self._not_offered("c.create_session", "a raw channel runs commands no ledger records")

    @property
    def shell(self) -> Any:
        raise self._not_offered("c.shell", "an interactive shell's commands are not recorded")

    @property
    def open_gateway(self) -> Any:
        raise self._not_offered("c.open_gateway", "a gateway channel is a raw connection through the host")

    def _not_offered(self, what: str, why: str) -> NotOffered:
        task = f" task {self._task!r}:" if self._task else ""
        return NotOffered(f"host {self._session.host.name}:{task} {what} is not offered under the snapshot guard ({why}); "
                          "use c.run, c.sudo, c.put and c.get, each a recorded step")

    # -- remote commands --------------------------------------------------------------------------------------

    def run(self, command: str, **kwargs: Any) -> Result:
        """Given shell text and invoke's run options, run it on the host as a recorded call; return an invoke Result.

        Read-only text (opsguard/readonly.py) runs as a recorded read, anything else as a mutating step.
        Raise UnexpectedExit for a non-zero exit unless ``warn=True``; NotOffered for an option that
        would bypass the recording; OutcomeUnknown (exit 4) when the host stops answering mid-call.
        """
        return self._remote("run", command, kwargs, sudo_user=None)

    def sudo(self, command: str, **kwargs: Any) -> Result:
        """Given shell text, run it as ``user`` (default root) with ``sudo -n`` (never a password prompt); as ``run``.

        The whole text, with its cd and prefixes, runs as that user (invoke puts only the first
        prefix under sudo). Raise NotOffered for ``password``: give the login user NOPASSWD sudo.
        """
        sudo_config = self.config.sudo
        if kwargs.pop("password", sudo_config.password) is not None:
            raise self._not_offered("sudo password=", "opsguard's sudo never prompts (sudo -n); give the login user "
                                    "NOPASSWD sudo for the commands the task runs")
        kwargs.pop("prompt", None)
        user = kwargs.pop("user", sudo_config.user) or "root"
        return self._remote("sudo", command, kwargs, sudo_user=str(user))

    def local(self, command: str, **kwargs: Any) -> Result | None:
        """Given shell text, run it on THIS machine with invoke (as Fabric's ``local``); not a host step, not recorded."""
        return invoke.Context.run(self, command, **kwargs)

    def _remote(self, verb: str, command: str, kwargs: dict[str, Any], *, sudo_user: str | None) -> Result:
        options = self._run_options(verb, kwargs)
        if not isinstance(command, str):
            raise TypeError(f"{verb}() needs the command as text, not {type(command).__name__}")
        text = self._prefix_commands(command)
        _check_text(verb, text)
        label = verb if sudo_user in (None, "root") else f"sudo -u {sudo_user}"
        name = f"{label}: {command}"
        hidden = normalize_hide(options["hide"], options["out_stream"], options["err_stream"])
        if options["echo"]:
            self._echo(text, options["echo_format"])
        env = dict(options["env"] or {})
        mutates = read_only_problem(text) is not None
        outcome = self._call(name, lambda: self._session.run(
            text,
            mutates=mutates,
            name=name,
            timeout=options["timeout"],
            ok_codes=_ANY_EXIT if options["warn"] else (0,),
            sudo_user=sudo_user,
            env=env or None,
            on_output=self._printer(hidden, options["out_stream"], options["err_stream"]),
        ), read=not mutates, accepted=bool(options["warn"]))
        sent = render_command(text, sudo_user=sudo_user)  # what the host was sent (the sudo wrapper included)
        result = Result(stdout=outcome.stdout, stderr=outcome.stderr, encoding="utf-8", command=sent, shell="",
                        env=env, exited=outcome.exit_status, pty=False, hide=hidden)
        if outcome.exit_status != 0 and not options["warn"]:
            self._set(_last_failure=(result, name))
            raise UnexpectedExit(result)
        return result

    def _run_options(self, verb: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Given a call's keyword arguments, return every run option (the call's, else invoke's defaults).

        Raise TypeError for an unknown argument, NotOffered for a refused value, ValueError for a bad one,
        all before anything is sent.
        """
        unknown = sorted(set(kwargs) - set(_RUN_OPTIONS))
        if unknown:
            raise TypeError(f"{verb}() got an unexpected keyword argument {unknown[0]!r}")
        defaults = self.config.run
        options = {name: kwargs[name] if name in kwargs else defaults.get(name) for name in _RUN_OPTIONS}
        for name, rule in _RUN_OPTIONS.items():
            if rule is not None and not rule[0](options[name]):
                raise self._not_offered(f"{verb}({name}={options[name]!r})", rule[1])
        timeout = options["timeout"] if "timeout" in kwargs else self.config.timeouts.command
        if timeout is None:
            timeout = DEFAULT_STEP_TIMEOUT
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"{verb}(timeout={timeout!r}): expected a number of seconds greater than zero")
        options["timeout"] = float(timeout)
        for variable in options["env"] or {}:
            if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
                raise ValueError(f"{verb}(env=...): invalid environment variable name {variable!r}")
        return options

    def _printer(self, hidden: tuple[str, ...], out_stream: IO[str] | None,
                 err_stream: IO[str] | None) -> OutputCallback | None:
        """Given the hidden streams and the caller's streams, return the on_output callback (None: show nothing)."""
        if len(hidden) == 2:
            return None
        streams = {"stdout": out_stream, "stderr": err_stream}
        show = self._output

        def on_output(stream: str, line: str) -> None:
            if stream in hidden:
                return
            target = streams.get(stream)
            if target is not None:
                target.write(line + "\n")
            else:
                show(stream, line)

        return on_output

    def _echo(self, text: str, echo_format: str | None) -> None:
        from opsguard.output import is_terminal

        shown = echo_format or "{command}"
        if shown == _INVOKE_ECHO_FORMAT and (not is_terminal(sys.stdout) or os.environ.get("NO_COLOR")):
            shown = "{command}"
        print(shown.format(command=text), flush=True)

    # -- files --------------------------------------------------------------------------------------------

    def put(self, local: str | os.PathLike[str] | IO[Any], remote: str | None = None, preserve_mode: bool = True) -> Any:
        """Given a local file (path or file-like object) and a remote path, upload it as a mutating step; return Fabric's transfer Result.

        As Fabric: no remote path means the remote home with the local name; a remote directory gets
        the local name appended; with ``preserve_mode`` the remote file gets the local file's mode.
        Relative remote paths are relative to the login user's home (c.cd does not apply, as in Fabric).
        Raise ValueError for an empty path, OSError for a missing local file (before anything is sent).
        """
        from fabric.transfer import Result as TransferResult

        if not local:
            raise ValueError("Local path must not be empty!")
        file_like = hasattr(local, "read") and callable(local.read)
        path = "" if file_like else os.path.abspath(os.fspath(local))  # type: ignore[arg-type]
        # A missing local file is an OSError here, before anything is sent.
        mode = None if file_like else stat.S_IMODE(os.stat(path).st_mode)
        local_base = os.path.basename(str(getattr(local, "name", "") or "")) if file_like else os.path.basename(path)
        orig_remote = remote
        if not remote:
            if file_like:
                raise ValueError("Must give non-empty remote path when local is a file-like object!")
            remote = local_base
        elif remote.endswith("/") or self._is_remote_dir(remote):
            if not local_base:
                raise ValueError("Can't put a file-like-object into a directory unless it has a non-empty .name attribute!")
            remote = posixpath.join(remote, local_base)
        if file_like:
            with _spooled(local) as path:  # type: ignore[arg-type]
                self._upload(path, remote, f"put: {local_base or 'file-like object'} -> {remote}", None)
            return TransferResult(local=local, orig_local=local, remote=remote, orig_remote=orig_remote, connection=self)
        self._upload(path, remote, f"put: {local} -> {remote}", mode if preserve_mode else None)
        return TransferResult(local=path, orig_local=local, remote=remote, orig_remote=orig_remote, connection=self)

    def _upload(self, path: str, remote: str, name: str, mode: int | None) -> None:
        self._call(name, lambda: self._session.upload(Path(path), remote, name=name, mode=mode), read=False)

    def _is_remote_dir(self, remote: str) -> bool:
        check = f"test -d {shlex.quote(remote)}"
        outcome = self._call(f"put: is {remote} a directory", lambda: self._session.run(
            check, mutates=False, name=f"put: is {remote} a directory"), read=True, accepted=True)
        return bool(outcome.exit_status == 0)

    def get(self, remote: str, local: str | os.PathLike[str] | IO[Any] | None = None, preserve_mode: bool = True) -> Any:
        """Given a remote file and a local path (or file-like object), download it with a recorded read; return Fabric's transfer Result.

        As Fabric: no local path means the remote name in the current directory; a local path ending
        in the separator is a directory; ``{host}``, ``{user}``, ``{port}``, ``{basename}``, ``{dirname}``
        are filled in; missing local directories are created; with ``preserve_mode`` the local file gets
        the remote mode. SAFETY: the file is read by ``stat`` and ``base64`` (read-only commands), never over
        SFTP. Raise FileNotFoundError/OSError if the host cannot read it.
        """
        from fabric.transfer import Result as TransferResult

        if not remote:
            raise ValueError("Remote path must not be empty!")
        quoted = shlex.quote(remote)
        text = f"stat -c %a -- {quoted} && base64 -- {quoted}"
        problem = read_only_problem(text)
        if problem is not None:  # SAFETY: a download must never be a change; refuse rather than run it as one
            raise self._not_offered(f"c.get({remote!r})", f"its read command is not known to be read-only: {problem}")
        lines: list[str] = []
        name = f"get: {remote}"
        outcome = self._call(name, lambda: self._session.run(
            text, mutates=False, name=name,
            on_output=lambda stream, line: lines.append(line) if stream == "stdout" else None), read=True)
        if outcome.exit_status != 0:
            why = printable(outcome.stderr.strip().splitlines()[-1] if outcome.stderr.strip() else f"exit {outcome.exit_status}")
            number = errno.ENOENT if "No such file" in why else errno.EIO
            raise (FileNotFoundError if number == errno.ENOENT else OSError)(
                number, f"host {self._session.host.name}: cannot read {remote}: {why}", remote)
        try:
            mode = int(lines[0].strip(), 8)
            content = base64.b64decode("".join(lines[1:]), validate=True)
        except (IndexError, ValueError, binascii.Error) as error:
            raise OSError(errno.EIO, f"host {self._session.host.name}: reading {remote} gave unexpected output ({error})",
                          remote) from None
        orig_local = local
        if local is not None and not isinstance(local, str | os.PathLike):
            local.write(content)  # a file-like object
            return TransferResult(local=local, orig_local=orig_local, remote=remote, orig_remote=remote, connection=self)
        path = self._local_path(remote, local)
        Path(path).write_bytes(content)
        if preserve_mode:
            os.chmod(path, stat.S_IMODE(mode))
        return TransferResult(local=path, orig_local=orig_local, remote=remote, orig_remote=remote, connection=self)

    def _local_path(self, remote: str, local: str | os.PathLike[str] | None) -> str:
        basename = posixpath.basename(remote)
        text = os.fspath(local) if local else basename
        text = text.format(host=self.host, user=self.user, port=self.port, dirname=posixpath.dirname(remote),
                           basename=basename)
        if text.endswith(os.sep):
            directory, text = text, os.path.join(text, basename)
        else:
            directory = os.path.dirname(text)
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
        return os.path.abspath(text)

    # -- every remote call --------------------------------------------------------------------------------

    def _call(self, name: str, action: Callable[[], Any], *, read: bool, accepted: bool = False) -> Any:
        """Given a call's ledger name and the session call, run it and record it in ``calls``; re-raise an earlier opsguard error first.

        ``read``: the text is read-only (a recorded read); ``accepted``: any exit status is accepted (warn=True).

        SAFETY: once a call ended in an opsguard error (outcome unknown, the receipt expired, the
        ledger unwritable), nothing more is sent even if the task caught that error.
        """
        if self._halted is not None:
            raise self._halted
        started = time.monotonic()
        try:
            outcome = action()
        except OpsguardError as error:
            self._set(_halted=error)
            self.calls.append(CallRecord(name, "error", time.monotonic() - started))
            raise
        exit_status = getattr(outcome, "exit_status", 0)
        stood = exit_status == 0 or accepted
        result = ("read" if stood else "read failed") if read else ("ok" if stood else "failed")
        self.calls.append(CallRecord(name, result, time.monotonic() - started, exit_status))
        return outcome

    def finish(self) -> None:
        """After the task returned: return if every call stood; raise what a caught error left behind.

        Raise the opsguard error a call ended in (the task caught it), or StepFailed for a failed
        step whose UnexpectedExit the task caught and went on from (pass ``warn=True`` where a
        non-zero exit is expected): the ledger already says that step failed.
        """
        if self._halted is not None:
            raise self._halted
        failed = self._session.failed_step
        if failed is not None:
            where = f"task {self._task!r}: " if self._task else ""
            raise StepFailed(f"host {self._session.host.name}: {where}step {failed!r} failed and the task went on "
                             "(a failed step fails the run; pass warn=True where a non-zero exit is expected)",
                             step=failed)

    def failure_of(self, error: UnexpectedExit) -> StepFailed:
        """Given an UnexpectedExit that ended a task, return the StepFailed that says which call failed and how."""
        result = error.result
        last = self._last_failure
        name = last[1] if last is not None and last[0] is result else f"local: {result.command}"
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
        detail = f": {printable(' / '.join(tail))}" if tail else ""
        where = f"task {self._task!r}: " if self._task else ""
        return StepFailed(f"host {self._session.host.name}: {where}step {name!r} exited {result.exited}{detail}",
                          step=name, exit_status=result.exited)


def _check_text(verb: str, text: str) -> None:
    """Given a call's shell text, return if it can be sent; raise ValueError (before anything is sent) if it cannot.

    A NUL cannot be in a command line, and text that is not valid UTF-8 would fail only while being
    sent — after its step was recorded as started, an unknown outcome for nothing.
    """
    if "\x00" in text:
        raise ValueError(f"{verb}(): the command contains a NUL character (at character {text.index(chr(0)) + 1})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{verb}(): the command is not valid UTF-8 (at character {error.start + 1})") from None


def _print_line(stream: str, line: str) -> None:
    """Print a host's output line as Fabric does: stdout to stdout, stderr to stderr."""
    print(line, file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)


@contextmanager
def _spooled(source: IO[Any]) -> Iterator[str]:
    """Given a file-like object, yield the path of a private temporary file holding its content (bytes, or text as UTF-8)."""
    position = source.tell() if hasattr(source, "tell") else None
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        data = source.read()
    finally:
        if position is not None:
            source.seek(position)
    descriptor, path = tempfile.mkstemp(prefix="opsguard-put-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        yield path
    finally:
        os.unlink(path)


# -- task files ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedTaskFile:
    """A task file, imported: its path and its tasks by name (invoke Tasks; a plain function is wrapped in one)."""

    path: Path
    tasks: dict[str, Task[Any]]
    plain_functions: bool  # the file has no @task: its public functions of a connection are the tasks

    def names(self) -> list[str]:
        """Return the task names, each once, in the file's order."""
        seen: list[str] = []
        for task in self.tasks.values():
            if task.name not in seen:
                seen.append(task.name)
        return seen


def load_task_file(path: str | os.PathLike[str]) -> LoadedTaskFile:
    """Given a Python file, import it and return its tasks; raise ConfigError naming the file if it cannot be imported.

    The file's directory goes first on sys.path (as Fabric does for a fabfile), so it can import its
    neighbours. Tasks are the file's invoke/Fabric ``@task`` objects; a file with none offers its
    public functions that take at least one argument (the connection).
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"task file {file}: no such file")
    if file.suffix != ".py":
        raise ConfigError(f"task file {file}: expected a Python file (.py)")
    module = _import_file(file.resolve())
    tasks: dict[str, Task[Any]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, Task):
            for name in (value.name, attribute, *value.aliases):
                tasks.setdefault(name, value)
    if tasks:
        return LoadedTaskFile(file, tasks, plain_functions=False)
    for attribute, value in vars(module).items():
        if (inspect.isfunction(value) and value.__module__ == module.__name__ and not attribute.startswith("_")
                and _takes_a_connection(value)):
            tasks[attribute] = Task(value, name=attribute)
    return LoadedTaskFile(file, tasks, plain_functions=True)


def _import_file(file: Path) -> ModuleType:
    name = f"opsguard_taskfile_{re.sub(r'[^A-Za-z0-9_]', '_', file.stem)}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"task file {file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = str(file.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module  # dataclasses and pickling inside the file look their module up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(name, None)
        raise ConfigError(f"task file {file}: line {error.lineno}: {printable(str(error.msg))}") from None
    except Exception as error:
        sys.modules.pop(name, None)
        raise ConfigError(f"task file {file}: importing it raised {type(error).__name__}: {printable(str(error))}") from error
    return module


def _takes_a_connection(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0].kind in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD)


def find_task(loaded: LoadedTaskFile, name: str) -> Task[Any]:
    """Given a loaded task file and a task name (dashes and underscores alike), return the task; raise ConfigError listing the tasks."""
    for candidate in (name, name.replace("-", "_"), name.replace("_", "-")):
        if candidate in loaded.tasks:
            return loaded.tasks[candidate]
    known = ", ".join(loaded.names()) or "none"
    raise ConfigError(f"task file {loaded.path}: no task {name!r} (tasks: {known})")


def check_task_hosts(task: Task[Any], host: Host) -> None:
    """Given a task and the inventory host it is to run on, return if the task does not name other hosts.

    Raise ConfigError when the task declares ``@task(hosts=[...])`` without this host (by name or
    address): the host to change is the one named on the command line, and a task written for other
    hosts would run on it only by mistake.
    """
    declared = getattr(task, "hosts", None)
    if not declared:
        return
    names = set()
    for entry in declared:
        text = str(entry.get("host", "")) if isinstance(entry, Mapping) else str(entry)
        names.add(text.rpartition("@")[2].partition(":")[0] if not text.startswith("[") else text)
    if host.name in names or host.address in names:
        return
    raise ConfigError(f"task {task.name!r} is declared for hosts {', '.join(sorted(names))}, not {host.name} "
                      f"({host.address})")


def parse_task_arguments(task: Task[Any], words: Sequence[str]) -> dict[str, Any]:
    """Given a task and its command-line words (Fabric's syntax: --name value, --flag, positionals), return its keyword arguments.

    Raise click.UsageError (exit 2) naming the task for a word it does not take or a missing argument.
    """
    import click

    try:
        context = ParserContext(name=task.name, args=task.get_arguments())
        parsed = Parser(contexts=[context]).parse_argv([task.name, *words])
    except (ParseError, TypeError, ValueError) as error:
        raise click.UsageError(f"task {task.name!r}: {printable(str(error))}") from None
    return dict(parsed[0].as_kwargs)


def call_task(connection: GuardedConnection, task: Task[Any] | Callable[..., Any], arguments: Mapping[str, Any]) -> None:
    """Given a guarded connection, a task and its keyword arguments, call its pre-tasks, the task and its post-tasks, as Fabric does.

    Return when the task completed and every call stood. Raise an opsguard error as it came (the
    guard concludes it); StepFailed for an UnexpectedExit (exit 1); TaskFailed for anything else the
    task raised, or a non-zero ``Exit``/``SystemExit``; KeyboardInterrupt passes through.
    """
    host = connection.host_name
    name = getattr(task, "name", getattr(task, "__name__", "task"))
    try:
        for before in getattr(task, "pre", ()) or ():
            _call_one(before, connection)
        task(connection, **arguments)
        for after in getattr(task, "post", ()) or ():
            _call_one(after, connection)
    except OpsguardError:
        raise
    except UnexpectedExit as error:
        raise connection.failure_of(error) from error
    except (Exit, SystemExit) as error:
        code = error.code
        if code not in (0, None):
            message = getattr(error, "message", None) or f"exit code {code}"
            raise TaskFailed(f"host {host}: task {name!r} exited: {printable(str(message))}") from error
    except Exception as error:
        raise TaskFailed(f"host {host}: task {name!r} raised {type(error).__name__}: {printable(str(error))}") from error
    connection.finish()


def _call_one(item: Any, connection: GuardedConnection) -> None:
    if isinstance(item, Call):
        item.task(connection, *item.args, **item.kwargs)
    else:
        item(connection)
