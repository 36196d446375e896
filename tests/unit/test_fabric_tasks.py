"""The Fabric task model under the guard (fakes only, no sockets): every call recorded, nothing around the recording."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shlex
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from opsguard import ledger as events
from opsguard.errors import ConfigError, ConnectionDropped, OutcomeUnknown, StepFailed
from opsguard.fabric_tasks import (
    GuardedConnection,
    NotOffered,
    TaskFailed,
    call_task,
    check_task_hosts,
    find_task,
    load_task_file,
    parse_task_arguments,
)
from opsguard.ledger import Ledger
from tests.unit.fakes import FakeConnection, FakeProvider, FakeResult, guard, write_inventory


@dataclass
class FileHost(FakeConnection):
    """A fake host with files: answers `stat`/`base64` reads and `test -d`, keeps uploads, streams output lines.

    A command ending in ``; exit N`` exits N (a failing change step).
    """

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)  # the options of every user command

    def run(self, command: str, *, timeout: float, pid_file: str | None = None, **options: Any) -> FakeResult:
        if command.startswith("stat -c %a -- "):
            self.commands.append(command)
            path = shlex.split(command)[4]
            result = self._read_file(command, path)
        elif command.startswith("test -d "):
            self.commands.append(command)
            result = FakeResult(command, 0 if shlex.split(command)[2] in self.directories else 1)
        else:
            result = super().run(command, timeout=timeout, pid_file=pid_file)
            failing = re.search(r"; exit (\d+)$", command)
            if failing:
                result = FakeResult(command, int(failing.group(1)), "", "npm ERR! migration failed\n")
        if "/run/lock/opsguard" not in command and "/var/lib/opsguard" not in command:
            self.sent.append({"command": command, "timeout": timeout, **options})
        on_output = options.get("on_output")
        if on_output is not None:
            for line in result.stdout.splitlines():
                on_output("stdout", line)
            for line in result.stderr.splitlines():
                on_output("stderr", line)
        return result

    def _read_file(self, command: str, path: str) -> FakeResult:
        if path not in self.files:
            return FakeResult(command, 1, "", f"stat: cannot statx '{path}': No such file or directory\n")
        content, mode = self.files[path]
        encoded = base64.encodebytes(content).decode()
        return FakeResult(command, 0, f"{mode:o}\n{encoded}")

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None) -> None:
        super().upload(local_path, remote_path, mode=mode)
        self.files[remote_path] = (Path(local_path).read_bytes(), mode if mode is not None else 0o600)


@pytest.fixture
def inventory(tmp_path: Path) -> Any:
    return write_inventory(tmp_path)


@pytest.fixture
def host() -> FileHost:
    return FileHost()


def steps(inventory: Any) -> list[dict[str, Any]]:
    return [record for record in Ledger(inventory.settings.state_dir).records("chat") if record["event"] == events.STEP]


@pytest.fixture
def change(inventory: Any, host: FileHost) -> Iterator[Any]:
    with guard(inventory, FakeProvider(), host) as session:
        yield session


# -- run, sudo, cd, prefix --------------------------------------------------------------------------------


def test_fabric_run_returns_invoke_result_and_each_call_is_a_ledger_record(change: Any, host: FileHost,
                                                                           inventory: Any) -> None:
    c = change.fabric()

    pulled = c.run("git pull", hide=True)
    uptime = c.run("uptime", hide=True)

    assert isinstance(pulled, Result) and pulled.exited == 0 and pulled.ok and pulled.stdout == "ok\n"
    assert isinstance(uptime, Result) and uptime.command == "uptime"
    assert host.user_commands() == ["git pull", "uptime"]
    # git pull is a change (started before it was sent, then ended); uptime is in the read-only vocabulary: a read.
    assert [(r["phase"], r["step"]) for r in steps(inventory)] == [
        ("started", "run: git pull"), ("ended", "run: git pull"), ("read", "run: uptime")]
    assert change.started


def test_fabric_cd_and_prefix_wrap_the_command_as_invoke_does(change: Any, host: FileHost) -> None:
    c = change.fabric()

    with c.cd("/srv/app"), c.prefix("source venv/bin/activate"):
        c.run("make install", hide=True)
        with c.cd("current"):
            c.run("ls", hide=True)
    c.run("make clean", hide=True)

    assert host.user_commands() == [
        "cd /srv/app && source venv/bin/activate && make install",
        "cd /srv/app/current && source venv/bin/activate && ls",
        "make clean",
    ]


def test_fabric_sudo_runs_the_whole_text_as_the_user_without_a_prompt(change: Any, host: FileHost) -> None:
    c = change.fabric()

    with c.cd("/etc/nginx"):
        as_root = c.sudo("nginx -s reload", hide=True)
    as_deploy = c.sudo("pm2 restart all", user="deployzdg", hide=True, env={"NODE_ENV": "production"})

    assert [(sent["command"], sent["sudo_user"]) for sent in host.sent] == [
        ("cd /etc/nginx && nginx -s reload", "root"), ("pm2 restart all", "deployzdg")]
    assert host.sent[1]["env"] == {"NODE_ENV": "production"}
    assert as_root.command == "sudo -n -H -u root -- bash --login -c 'cd 2>/dev/null\ncd /etc/nginx && nginx -s reload'"
    assert as_deploy.env == {"NODE_ENV": "production"}


def test_fabric_nonzero_exit_raises_unexpected_exit_unless_warn(change: Any, inventory: Any) -> None:
    c = change.fabric()

    with pytest.raises(UnexpectedExit) as raised:
        c.run("npm run migrate; exit 3", hide=True)
    accepted = c.run("npm run seed; exit 4", warn=True, hide=True)

    assert raised.value.result.exited == 3 and "migration failed" in raised.value.result.stderr
    assert accepted.exited == 4 and accepted.failed
    ended = [(r["step"], r["result"], r["exit_status"]) for r in steps(inventory) if r["phase"] == "ended"]
    # The refused exit is a failed step; the one the task accepted with warn=True is ok with its exit status.
    assert ended == [("run: npm run migrate; exit 3", "failed", 3), ("run: npm run seed; exit 4", "ok", 4)]


def test_fabric_hide_shows_only_the_streams_not_hidden(change: Any) -> None:
    shown: list[tuple[str, str]] = []
    c = change.fabric(output=lambda stream, line: shown.append((stream, line)))
    out = io.StringIO()

    c.run("git status")
    c.run("git log", hide="out")
    c.run("git diff", hide=True, out_stream=out)

    assert shown == [("stdout", "ok")]
    assert out.getvalue() == "ok\n"  # a stream the task passed still gets its output (invoke's rule)


# -- refused: what would reach the host around the recording --------------------------------------------------


@pytest.mark.parametrize("attribute", ["client", "transport", "sftp", "forward_local", "forward_remote",
                                       "create_session", "shell", "open_gateway"])
def test_fabric_refuses_raw_connection_features_naming_them(change: Any, host: FileHost, attribute: str) -> None:
    c = change.fabric(task="deploy")

    with pytest.raises(NotOffered, match=f"c.{attribute} is not offered under the snapshot guard") as raised:
        getattr(c, attribute)

    assert "task 'deploy'" in str(raised.value) and raised.value.exit_code == 1
    assert host.user_commands() == []


@pytest.mark.parametrize(("option", "value"), [("pty", True), ("watchers", [object()]), ("in_stream", io.StringIO("y\n")),
                                               ("asynchronous", True), ("disown", True), ("dry", True),
                                               ("encoding", "latin-1")])
def test_fabric_refuses_run_options_that_bypass_the_recording_before_sending(change: Any, host: FileHost,
                                                                           inventory: Any, option: str, value: Any) -> None:
    c = change.fabric()

    with pytest.raises(NotOffered, match=f"run\\({option}="):
        c.run("apt-get -y upgrade", **{option: value})

    assert host.user_commands() == [] and steps(inventory) == []


def test_fabric_refuses_pty_set_in_the_config_too(change: Any, host: FileHost) -> None:
    c = change.fabric()
    c.config.run.pty = True

    with pytest.raises(NotOffered, match="pty=True"):
        c.run("apt-get -y upgrade")

    assert host.user_commands() == []


def test_fabric_refuses_a_sudo_password(change: Any, host: FileHost) -> None:
    c = change.fabric()

    with pytest.raises(NotOffered, match="sudo password"):
        c.sudo("apt-get -y upgrade", password="hunter2")

    assert host.user_commands() == []


def test_fabric_unknown_argument_is_a_type_error_before_sending(change: Any, host: FileHost) -> None:
    with pytest.raises(TypeError, match="'colour'"):
        change.fabric().run("apt-get -y upgrade", colour=True)
    assert host.user_commands() == []


@pytest.mark.parametrize(("command", "fragment"), [("echo a\x00b", "NUL"), ("echo \udcff", "not valid UTF-8")])
def test_fabric_command_that_cannot_be_sent_is_a_value_error_before_anything_is_recorded(
    change: Any, host: FileHost, inventory: Any, command: str, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        change.fabric().run(f"{command} > /etc/x")
    assert host.user_commands() == [] and steps(inventory) == [] and not change.started


def test_fabric_open_and_close_leave_the_guards_connection_alone(change: Any, host: FileHost) -> None:
    c = change.fabric()

    with c:
        c.open()
        c.close()
    c.run("git pull", hide=True)

    assert not host.closed and host.user_commands() == ["git pull"]


# -- files ----------------------------------------------------------------------------------------------------


def test_fabric_get_reads_with_stat_and_base64_never_sftp(change: Any, host: FileHost, inventory: Any,
                                                        tmp_path: Path) -> None:
    content = bytes(range(256)) * 40  # binary, several base64 lines
    host.files["/etc/app/secret.key"] = (content, 0o640)
    c = change.fabric()

    result = c.get("/etc/app/secret.key", str(tmp_path / "keys") + os.sep)

    local = tmp_path / "keys" / "secret.key"
    assert local.read_bytes() == content and result.local == str(local)
    assert stat.S_IMODE(local.stat().st_mode) == 0o640
    assert host.user_commands() == ["stat -c %a -- /etc/app/secret.key && base64 -- /etc/app/secret.key"]
    assert not any(command.startswith("upload") for command in host.commands)
    assert [(r["phase"], r["step"]) for r in steps(inventory)] == [("read", "get: /etc/app/secret.key")]
    assert not change.started  # a download is a read: nothing has changed yet


def test_fabric_get_into_a_file_like_object(change: Any, host: FileHost) -> None:
    host.files["app.env"] = (b"PORT=3000\n", 0o600)
    buffer = io.BytesIO()

    change.fabric().get("app.env", buffer)

    assert buffer.getvalue() == b"PORT=3000\n"


def test_fabric_get_of_a_missing_file_raises_file_not_found(change: Any) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        change.fabric().get("/etc/missing.conf", io.BytesIO())


def test_fabric_put_uploads_as_a_mutating_step_with_the_local_mode(change: Any, host: FileHost, inventory: Any,
                                                                  tmp_path: Path) -> None:
    local = tmp_path / "nginx.conf"
    local.write_text("server {}\n")
    local.chmod(0o644)
    host.directories.add("/etc/nginx/sites-enabled")
    c = change.fabric()

    into_dir = c.put(str(local), "/etc/nginx/sites-enabled")
    exact = c.put(local, "/etc/nginx/nginx.conf", preserve_mode=False)

    assert into_dir.remote == "/etc/nginx/sites-enabled/nginx.conf"
    assert host.files["/etc/nginx/sites-enabled/nginx.conf"] == (b"server {}\n", 0o644)
    assert exact.remote == "/etc/nginx/nginx.conf" and host.files["/etc/nginx/nginx.conf"][1] == 0o600
    ended = [r["step"] for r in steps(inventory) if r["phase"] == "ended"]
    assert ended == [f"put: {local} -> /etc/nginx/sites-enabled/nginx.conf", f"put: {local} -> /etc/nginx/nginx.conf"]


def test_fabric_put_of_a_file_like_object_needs_a_remote_path(change: Any, host: FileHost) -> None:
    c = change.fabric()

    c.put(io.StringIO("PORT=3000\n"), "/srv/app/.env")
    with pytest.raises(ValueError, match="remote path"):
        c.put(io.BytesIO(b"x"))

    assert host.files["/srv/app/.env"][0] == b"PORT=3000\n"


def test_fabric_put_of_a_missing_local_file_sends_nothing(change: Any, host: FileHost, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        change.fabric().put(str(tmp_path / "absent.conf"), "/etc/absent.conf")
    assert not change.started and host.user_commands() == []


# -- after an error the task caught ---------------------------------------------------------------------------


def test_fabric_call_after_an_unknown_outcome_is_refused_even_if_the_task_caught_it(
    inventory: Any, tmp_path: Path
) -> None:
    host = FileHost(drop_on="systemctl restart")
    with pytest.raises(ConnectionDropped), guard(inventory, FakeProvider(), host) as change:
        c = change.fabric()
        with contextlib.suppress(Exception):  # a careless task carries on
            c.run("systemctl restart app", hide=True)
        with pytest.raises(ConnectionDropped):
            c.run("rm -rf /srv/app/old", hide=True)
        call_task(c, lambda connection: None, {})  # the task "completed": the unknown outcome still ends the run

    assert "rm -rf /srv/app/old" not in host.commands


# -- calling tasks ----------------------------------------------------------------------------------------------


def test_call_task_runs_a_fabric_task_unchanged_with_its_pre_and_post_tasks(change: Any, host: FileHost) -> None:
    from fabric import task

    @task
    def stop(c: Any) -> None:
        c.run("systemctl stop app", hide=True)

    @task
    def start(c: Any) -> None:
        c.run("systemctl start app", hide=True)

    @task(pre=[stop], post=[start])
    def deploy(c: Any, version: str = "1.0") -> None:
        with c.cd("/srv/app"):
            c.run(f"git checkout v{version}", hide=True)

    c = change.fabric(task="deploy")
    call_task(c, deploy, {"version": "1.4"})
    deploy(c, version="1.5")  # Fabric's own Task object accepts the guarded connection as its context

    assert host.user_commands() == ["systemctl stop app", "cd /srv/app && git checkout v1.4", "systemctl start app",
                                    "cd /srv/app && git checkout v1.5"]


def test_call_task_turns_unexpected_exit_into_step_failed_naming_the_call(change: Any) -> None:
    def migrate(c: Any) -> None:
        c.run("npm run migrate; exit 2", hide=True)

    with pytest.raises(StepFailed, match="task 'migrate': step 'run: npm run migrate; exit 2' exited 2: npm ERR!") as raised:
        call_task(change.fabric(task="migrate"), migrate, {})

    assert raised.value.exit_code == 1 and raised.value.exit_status == 2


def test_call_task_fails_the_run_when_the_task_swallowed_a_failed_step(change: Any) -> None:
    def careless(c: Any) -> None:
        with contextlib.suppress(UnexpectedExit):
            c.run("npm run migrate; exit 1", hide=True)

    with pytest.raises(StepFailed, match="failed and the task went on"):
        call_task(change.fabric(task="careless"), careless, {})


@pytest.mark.parametrize(("body", "fragment"), [
    (lambda c: (_ for _ in ()).throw(ValueError("bad\nforged line")), "raised ValueError: bad\\nforged line"),
    (lambda c: (_ for _ in ()).throw(SystemExit(3)), "exited: exit code 3"),
])
def test_call_task_turns_what_the_task_raised_into_task_failed(change: Any, body: Any, fragment: str) -> None:
    with pytest.raises(TaskFailed) as raised:
        call_task(change.fabric(task="t"), body, {})
    assert fragment in str(raised.value) and raised.value.exit_code == 1


def test_call_task_lets_an_opsguard_error_through_as_it_came(inventory: Any) -> None:
    host = FileHost(drop_on="apt-get")

    def upgrade(c: Any) -> None:
        c.run("apt-get -y upgrade", hide=True)

    with pytest.raises(OutcomeUnknown), guard(inventory, FakeProvider(), host) as change:
        call_task(change.fabric(), upgrade, {})


# -- task files -----------------------------------------------------------------------------------------------


TASK_FILE = '''
from fabric import task

HELPER_CALLS = []

@task
def deploy(c, version, force=False):
    """Deploy a version."""
    c.run(f"deploy {version} {force}")

@task(aliases=["restart"])
def restart_app(c):
    c.run("systemctl restart app")

def helper(c):
    HELPER_CALLS.append(c)
'''


def test_load_task_file_finds_fabric_tasks_by_name_alias_and_dashed_name(tmp_path: Path) -> None:
    path = tmp_path / "tasks.py"
    path.write_text(TASK_FILE)

    loaded = load_task_file(path)

    assert loaded.names() == ["deploy", "restart_app"] and not loaded.plain_functions
    assert find_task(loaded, "restart-app") is find_task(loaded, "restart") is find_task(loaded, "restart_app")
    with pytest.raises(ConfigError, match=r"no task 'helper' \(tasks: deploy, restart_app\)"):
        find_task(loaded, "helper")  # a file with @task offers only its tasks


def test_load_task_file_without_task_decorators_offers_its_public_functions(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text("import os\n\ndef deploy(c, version='1'):\n    c.run('x')\n\ndef _private(c):\n    pass\n\n"
                    "def no_connection():\n    pass\n")

    loaded = load_task_file(path)

    assert loaded.plain_functions and loaded.names() == ["deploy"]
    assert parse_task_arguments(find_task(loaded, "deploy"), ["--version", "2"]) == {"version": "2"}


@pytest.mark.parametrize(("text", "fragment"), [
    ("def deploy(c):\n  c.run('x'\n", "line 2"),
    ("raise RuntimeError('no config')\n", "importing it raised RuntimeError: no config"),
])
def test_load_task_file_that_cannot_be_imported_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "broken.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"task file {path}") as raised:
        load_task_file(path)
    assert fragment in str(raised.value) and raised.value.exit_code == 78


def test_load_task_file_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_task_file(tmp_path / "absent.py")


def test_parse_task_arguments_takes_fabric_style_words(tmp_path: Path) -> None:
    path = tmp_path / "tasks.py"
    path.write_text(TASK_FILE)
    deploy = find_task(load_task_file(path), "deploy")

    assert parse_task_arguments(deploy, ["1.4", "--force"]) == {"version": "1.4", "force": True}
    assert parse_task_arguments(deploy, ["--version=1.5"]) == {"version": "1.5", "force": False}
    with pytest.raises(click.UsageError, match="did not receive required positional arguments: 'version'"):
        parse_task_arguments(deploy, [])
    with pytest.raises(click.UsageError, match="task 'deploy'"):
        parse_task_arguments(deploy, ["1.4", "--colour"])
    with pytest.raises(click.UsageError, match="'extra'"):
        parse_task_arguments(deploy, ["1.4", "extra"])


def test_guarded_connection_is_an_invoke_context_without_the_raw_connection(change: Any) -> None:
    import invoke

    c = change.fabric()

    assert isinstance(c, invoke.Context) and isinstance(c, GuardedConnection)
    assert (c.host, c.user, c.port, c.host_name) == ("10.9.9.2", "root", 22, "chat")
    assert not any("connection" in name.lower() for name in vars(c))


def test_fabric_calls_keep_each_call_with_its_result_for_the_summary(change: Any) -> None:
    c = change.fabric()

    c.run("git pull", hide=True)
    c.run("uptime", hide=True)
    c.run("npm run seed; exit 4", warn=True, hide=True)
    c.put(io.StringIO("x"), "/etc/nginx/app.conf")
    with contextlib.suppress(UnexpectedExit):
        c.run("cat /etc/absent; exit 1", hide=True)
    with contextlib.suppress(UnexpectedExit):
        c.run("npm run migrate; exit 3", hide=True)

    assert [(call.name, call.result, call.exit_status) for call in c.calls] == [
        ("run: git pull", "ok", 0),
        ("run: uptime", "read", 0),
        ("run: npm run seed; exit 4", "ok", 4),
        ("put: is /etc/nginx/app.conf a directory", "read", 1),
        ("put: file-like object -> /etc/nginx/app.conf", "ok", 0),
        ("run: cat /etc/absent; exit 1", "read failed", 1),
        ("run: npm run migrate; exit 3", "failed", 3),
    ]


@pytest.mark.parametrize(("hosts", "allowed"), [
    (None, True), (["chat"], True), (["deploy@10.9.9.2:22"], True), ([{"host": "10.9.9.2"}], True),
    (["web1", "web2"], False),
])
def test_check_task_hosts_refuses_a_task_declared_for_other_hosts(inventory: Any, hosts: Any, allowed: bool) -> None:
    from fabric import task

    @task(hosts=hosts)
    def deploy(c: Any) -> None:
        pass

    if allowed:
        check_task_hosts(deploy, inventory.host("chat"))
    else:
        with pytest.raises(ConfigError, match="declared for hosts web1, web2, not chat"):
            check_task_hosts(deploy, inventory.host("chat"))
