"""opsguard.transport against real OpenSSH servers on 127.0.0.2-4, and the sandbox hosts' stubs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opsguard.errors import ConfigError, ConnectionDropped, Failed, HostKeyRejected, OutcomeUnknown, StepTimeout
from opsguard.inventory import Inventory, load_inventory
from opsguard.sandbox.hosts import STUB_NAMES, SandboxHosts
from opsguard.transport import Connection, connect, render_command

pytestmark = pytest.mark.integration


@pytest.fixture
def inventory(fresh_hosts: SandboxHosts) -> Inventory:
    return fresh_hosts.inventory()


@pytest.fixture
def chat(inventory: Inventory) -> Iterator[Connection]:
    with connect(inventory.host("chat"), inventory.settings) as connection:
        yield connection


def sha256_fingerprint(public_line: str) -> str:
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def new_public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


# -- running commands ------------------------------------------------------------------------------


def test_connection_run_returns_stdout_and_exit_status_when_command_succeeds(chat: Connection) -> None:
    result = chat.run("echo hello; echo there", timeout=10)
    assert (result.exit_status, result.stdout, result.stderr) == (0, "hello\nthere\n", "")
    assert result.command == "echo hello; echo there"
    assert result.duration > 0 and result.started_at > 0


def test_connection_run_returns_nonzero_exit_without_raising_when_command_fails(chat: Connection) -> None:
    result = chat.run("echo oops >&2; exit 3", timeout=10)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "", "oops\n")


def test_connection_run_streams_lines_in_order_while_command_runs(chat: Connection, tmp_path: Path) -> None:
    # The command waits for a file that only the callback creates (the host is this machine):
    # without streaming the first line would arrive after the command ended, i.e. never.
    flag = tmp_path / "seen-first-line"
    seen: list[tuple[str, str]] = []

    def on_output(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "first":
            flag.touch()

    command = f"echo first; echo warn >&2; while [ ! -e {flag} ]; do sleep 0.02; done; echo second; printf third"
    result = chat.run(command, timeout=20, on_output=on_output)
    assert [line for stream, line in seen if stream == "stdout"] == ["first", "second", "third"]
    assert [line for stream, line in seen if stream == "stderr"] == ["warn"]
    assert result.stdout == "first\nsecond\nthird"


def test_connection_run_keeps_bounded_stdout_tail_when_command_prints_20_mb_in_one_line(chat: Connection) -> None:
    size = 20_000_000
    seen = {"characters": 0, "longest": 0}

    def on_output(stream: str, line: str) -> None:
        seen["characters"] += len(line)
        seen["longest"] = max(seen["longest"], len(line))

    result = chat.run(f"head -c {size} /dev/zero | tr '\\0' x", timeout=120, on_output=on_output)
    kept = 1 << 20  # the default tail
    assert result.exit_status == 0
    assert (len(result.stdout), set(result.stdout)) == (kept, {"x"})
    assert (result.stdout_dropped, result.stderr, result.stderr_dropped) == (size - kept, "", 0)
    assert seen["characters"] == size  # the terminal still sees all of it
    assert seen["longest"] <= 2 * 64 * 1024  # handed over in pieces, never buffered whole


def test_connection_run_keeps_last_max_kept_characters_and_streams_every_line(chat: Connection) -> None:
    lines: list[str] = []
    result = chat.run("seq 1 200000", timeout=60, max_kept=100, on_output=lambda stream, line: lines.append(line))
    full = "".join(f"{number}\n" for number in range(1, 200001))
    assert result.stdout == full[-100:]
    assert result.stdout_dropped == len(full) - 100
    assert lines == [str(number) for number in range(1, 200001)]


def test_connection_run_rejects_negative_max_kept(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    with pytest.raises(ValueError, match="max_kept"):
        chat.run("true", timeout=5, max_kept=-1)
    assert fresh_hosts.journal("chat") == []


def test_connection_reuses_one_ssh_session_for_many_commands(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    transport = chat.transport
    for _ in range(5):
        assert chat.run("systemctl is-system-running", timeout=10).stdout == "running\n"
    sessions = {record["session"] for record in fresh_hosts.journal("chat")}
    assert len(fresh_hosts.journal("chat")) == 5
    assert len(sessions) == 1 and None not in sessions
    assert chat.transport is transport


def test_connect_sets_tcp_nodelay_on_the_socket(chat: Connection) -> None:
    assert chat.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert chat.peer_address == "127.0.0.2"


def test_connection_run_passes_env_values_quoted(chat: Connection) -> None:
    result = chat.run('printf %s "$GREETING"', timeout=10, env={"GREETING": "a b'c $HOME"})
    assert result.stdout == "a b'c $HOME"


def test_connection_run_renders_sudo_user_and_stub_records_target_user(
    chat: Connection, fresh_hosts: SandboxHosts
) -> None:
    as_deploy_user = chat.run("pm2 jlist", timeout=10, sudo_user="deployzdg")
    as_root = chat.run("pm2 jlist", timeout=10)
    apps = json.loads(as_deploy_user.stdout)
    assert [(app["name"], app["pm2_env"]["status"]) for app in apps] == [
        ("zpro-backend", "online"),
        ("zpro-frontend", "online"),
    ]
    assert json.loads(as_root.stdout) == []  # like the real hosts: root's pm2 list is empty
    records = fresh_hosts.journal("chat")
    assert records[0]["argv"] == ["sudo", "-n", "-H", "-u", "deployzdg", "--", "bash", "--login", "-c", "cd 2>/dev/null\npm2 jlist"]
    assert (records[1]["argv"], records[1]["user"]) == (["pm2", "jlist"], "deployzdg")
    assert (records[2]["argv"], records[2]["user"]) == (["pm2", "jlist"], fresh_hosts.user)


def test_connection_run_raises_step_timeout_when_command_outlives_timeout(
    chat: Connection, fresh_hosts: SandboxHosts
) -> None:
    fresh_hosts.set_responses("chat", {"rules": [{"prefix": ["needrestart"], "sleep": 5}]})
    with pytest.raises(StepTimeout, match="may still be running") as raised:
        chat.run("needrestart -b", timeout=0.5)
    assert raised.value.exit_code == 4
    assert chat.run("echo still usable", timeout=10).stdout == "still usable\n"


def test_connection_run_raises_connection_dropped_when_session_dies_mid_command(
    chat: Connection, fresh_hosts: SandboxHosts
) -> None:
    fresh_hosts.set_responses(
        "chat", {"rules": [{"prefix": ["apt-get"], "stdout": "Reading package lists...\n", "drop": True}]}
    )
    with pytest.raises(ConnectionDropped, match="outcome unknown") as raised:
        chat.run("apt-get -y upgrade", timeout=20)
    assert raised.value.exit_code == 4
    assert fresh_hosts.commands("chat") == [["apt-get", "-y", "upgrade"]]
    assert not chat.is_open
    with pytest.raises(ConnectionDropped, match="not sent"):
        chat.run("true", timeout=5)
    assert fresh_hosts.running("chat")  # only the session died, not the host's sshd


def test_connection_run_raises_outcome_unknown_when_command_is_killed_by_signal(chat: Connection) -> None:
    # sshd reports a signal death as exit-signal, not exit-status: paramiko's -1, never "ok" or "failed".
    with pytest.raises(ConnectionDropped, match="without an exit status"):
        chat.run("kill -9 $$", timeout=10)
    assert chat.is_open
    assert chat.run("echo after", timeout=10).stdout == "after\n"


def test_connection_upload_writes_file_with_content_and_mode(
    chat: Connection, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    local = tmp_path / "update.zip"
    local.write_bytes(bytes(range(256)) * 100)
    remote = fresh_hosts.host("chat").path("tmp", "update.zip")
    chat.upload(local, str(remote), mode=0o640)
    assert remote.read_bytes() == local.read_bytes()
    assert stat.S_IMODE(remote.stat().st_mode) == 0o640
    assert not remote.with_name("update.zip.opsguard-partial").exists()


def test_connection_upload_raises_failed_when_remote_directory_is_missing(
    chat: Connection, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    local = tmp_path / "update.zip"
    local.write_bytes(b"zip")
    remote = fresh_hosts.host("chat").path("no", "such", "dir", "update.zip")
    with pytest.raises(Failed, match=r"upload to .* failed"):
        chat.upload(local, str(remote))
    assert chat.run("true", timeout=5).exit_status == 0


def test_connection_upload_raises_config_error_when_local_file_is_missing(chat: Connection, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        chat.upload(tmp_path / "missing.zip", "/tmp/x")


# -- connecting: host keys, reachability, authentication -------------------------------------------


def test_connect_refuses_unknown_host_key_with_keyscan_hint_and_runs_nothing(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    other_hosts = [line for line in fresh_hosts.known_hosts.read_text().splitlines() if "127.0.0.2" not in line]
    known_hosts.write_text("\n".join(other_hosts) + "\n")
    before = known_hosts.read_text()
    host = inventory.host("chat")
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyRejected) as raised:
        connect(host, settings)
    message = str(raised.value)
    assert raised.value.exit_code == 3
    assert "host chat (127.0.0.2:" in message and "not in" in message
    assert f"ssh-keyscan -p {host.port} 127.0.0.2 >> {known_hosts}" in message
    server_public = fresh_hosts.host("chat").path("ssh_host_ed25519_key.pub").read_text()
    assert sha256_fingerprint(server_public) in message
    assert known_hosts.read_text() == before  # never auto-added
    assert fresh_hosts.journal("chat") == []


def test_connect_refuses_changed_host_key_showing_both_fingerprints(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    host = inventory.host("chat")
    impostor = new_public_key()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.2]:{host.port} {impostor}\n")
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyRejected, match="CHANGED") as raised:
        connect(host, settings)
    server_public = fresh_hosts.host("chat").path("ssh_host_ed25519_key.pub").read_text()
    assert sha256_fingerprint(impostor) in str(raised.value)
    assert sha256_fingerprint(server_public) in str(raised.value)


def server_public_key(hosts: SandboxHosts, name: str) -> str:
    """Given the sandbox hosts and a host name, return its host key as "ssh-ed25519 AAAA..." (no comment)."""
    return " ".join(hosts.host(name).path("ssh_host_ed25519_key.pub").read_text().split()[:2])


def write_known_hosts(tmp_path: Path, lines: list[str]) -> Path:
    """Given known_hosts lines, write them to tmp_path/known_hosts and return its path."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(lines) + "\n")
    return known_hosts


def assert_refused_as_revoked(raised: pytest.ExceptionInfo[HostKeyRejected], known_hosts: Path, public: str) -> None:
    """Given a refusal, assert it is the one-line "revoked" refusal naming host, file and fingerprint."""
    message = str(raised.value)
    assert raised.value.exit_code == 3
    assert "host chat (127.0.0.2:" in message and "REVOKED" in message
    assert str(known_hosts) in message and sha256_fingerprint(public) in message
    assert "CHANGED" not in message and "\n" not in message


def test_connect_refuses_revoked_host_key_when_it_is_the_only_line_for_the_host(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    host = inventory.host("chat")
    public = server_public_key(fresh_hosts, "chat")
    known_hosts = write_known_hosts(tmp_path, [f"@revoked [127.0.0.2]:{host.port} {public}"])
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyRejected) as raised:
        connect(host, settings)
    assert_refused_as_revoked(raised, known_hosts, public)
    assert fresh_hosts.journal("chat") == []


@pytest.mark.parametrize("revoked_first", [True, False], ids=["revoked-line-first", "revoked-line-last"])
def test_connect_refuses_revoked_host_key_before_authentication_when_a_plain_line_lists_it_too(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path, revoked_first: bool
) -> None:
    host = inventory.host("chat")
    public = server_public_key(fresh_hosts, "chat")
    revoked, plain = f"@revoked [127.0.0.2]:{host.port} {public}", f"[127.0.0.2]:{host.port} {public}"
    known_hosts = write_known_hosts(tmp_path, [revoked, plain] if revoked_first else [plain, revoked])
    # An identity the host does not accept: were the host key checked after authentication, this
    # would end as ConfigError ("authentication failed"), not as the host key refusal.
    stranger = tmp_path / "stranger_ed25519"
    stranger.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    stranger.chmod(0o600)
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts, identity_file=stranger)
    with pytest.raises(HostKeyRejected) as raised:
        connect(host, settings)
    assert_refused_as_revoked(raised, known_hosts, public)


def test_connect_refuses_revoked_host_key_when_another_key_is_listed_for_the_host(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    # The server still offers the revoked key; known_hosts already lists a replacement. Revoked, not "changed".
    host = inventory.host("chat")
    public = server_public_key(fresh_hosts, "chat")
    lines = [f"@revoked [127.0.0.2]:{host.port} {public}", f"[127.0.0.2]:{host.port} {new_public_key()}"]
    known_hosts = write_known_hosts(tmp_path, lines)
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyRejected) as raised:
        connect(host, settings)
    assert_refused_as_revoked(raised, known_hosts, public)


def test_connect_accepts_host_key_when_only_a_different_key_is_revoked(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    host = inventory.host("chat")
    public = server_public_key(fresh_hosts, "chat")
    lines = [f"@revoked [127.0.0.2]:{host.port} {new_public_key()}", f"[127.0.0.2]:{host.port} {public}"]
    settings = dataclasses.replace(inventory.settings, known_hosts=write_known_hosts(tmp_path, lines))
    with connect(host, settings) as connection:
        assert connection.run("echo ok", timeout=10).stdout == "ok\n"


def test_connect_does_not_trust_a_cert_authority_line_as_a_host_key(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    host = inventory.host("chat")
    public = server_public_key(fresh_hosts, "chat")
    known_hosts = write_known_hosts(tmp_path, [f"@cert-authority [127.0.0.2]:{host.port} {public}"])
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(HostKeyRejected, match="not in"):
        connect(host, settings)


def test_connect_accepts_known_hosts_with_unparseable_and_marker_lines(
    inventory: Inventory, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    noise = "@cert-authority *.example.com ssh-ed25519 AAAA\nbroken line\nhost ssh-ed25519 !!notbase64!!\n"
    known_hosts.write_text(noise + fresh_hosts.known_hosts.read_text())
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with connect(inventory.host("chat"), settings) as connection:
        assert connection.run("echo ok", timeout=10).stdout == "ok\n"


def test_connect_refuses_when_known_hosts_file_is_missing(inventory: Inventory, tmp_path: Path) -> None:
    settings = dataclasses.replace(inventory.settings, known_hosts=tmp_path / "absent")
    with pytest.raises(HostKeyRejected, match="does not exist") as raised:
        connect(inventory.host("chat"), settings)
    assert raised.value.exit_code == 3


def test_connect_raises_config_error_when_known_hosts_is_a_directory(inventory: Inventory, tmp_path: Path) -> None:
    directory = tmp_path / "known_hosts.d"
    directory.mkdir()
    settings = dataclasses.replace(inventory.settings, known_hosts=directory)
    with pytest.raises(ConfigError) as raised:
        connect(inventory.host("chat"), settings)
    message = str(raised.value)
    assert raised.value.exit_code == 78
    assert str(directory) in message and "is a directory" in message and "settings.known_hosts" in message
    assert "\n" not in message


def test_connect_raises_config_error_when_known_hosts_is_not_a_regular_file(inventory: Inventory, tmp_path: Path) -> None:
    fifo = tmp_path / "known_hosts"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    settings = dataclasses.replace(inventory.settings, known_hosts=fifo)
    with pytest.raises(ConfigError, match="not a regular file") as raised:
        connect(inventory.host("chat"), settings)
    assert str(fifo) in str(raised.value) and "settings.known_hosts" in str(raised.value)


def test_connect_raises_config_error_when_known_hosts_cannot_be_read(
    inventory: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, which reads any file whatever its mode: make the read itself fail as EACCES does.
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    real_read_text = Path.read_text

    def read_text(path: Path, *args: object, **kwargs: object) -> str:
        if path == known_hosts:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    settings = dataclasses.replace(inventory.settings, known_hosts=known_hosts)
    with pytest.raises(ConfigError) as raised:
        connect(inventory.host("chat"), settings)
    message = str(raised.value)
    assert raised.value.exit_code == 78
    assert str(known_hosts) in message and "cannot be read" in message and "Permission denied" in message


def test_connect_reports_outcome_unknown_when_port_refuses(inventory: Inventory) -> None:
    port = free_port("127.0.0.2")
    host = dataclasses.replace(inventory.host("chat"), port=port)
    with pytest.raises(OutcomeUnknown, match=f"127.0.0.2:{port}") as raised:
        connect(host, inventory.settings)
    assert raised.value.exit_code == 4
    assert not isinstance(raised.value, ConnectionDropped)


def test_connect_reports_outcome_unknown_when_server_sends_no_banner(inventory: Inventory) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.2", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        accepted: list[socket.socket] = []
        acceptor = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
        acceptor.start()
        host = dataclasses.replace(inventory.host("chat"), port=port)
        with pytest.raises(OutcomeUnknown, match="handshake failed"):
            connect(host, inventory.settings, connect_timeout=0.3)
        acceptor.join(5)
        for connection in accepted:
            connection.close()


def test_connect_raises_config_error_when_key_is_not_authorized(inventory: Inventory, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_ed25519"
    key = Ed25519PrivateKey.generate()
    stranger.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    stranger.chmod(0o600)
    settings = dataclasses.replace(inventory.settings, identity_file=stranger)
    with pytest.raises(ConfigError, match="authentication failed for user") as raised:
        connect(inventory.host("chat"), settings)
    assert "host chat" in str(raised.value) and raised.value.exit_code == 78


def test_connect_raises_config_error_when_identity_file_is_missing(inventory: Inventory, tmp_path: Path) -> None:
    settings = dataclasses.replace(inventory.settings, identity_file=tmp_path / "absent_key")
    with pytest.raises(ConfigError, match="identity_file"):
        connect(inventory.host("chat"), settings)


# -- the sandbox hosts and their stubs ---------------------------------------------------------------


def test_sandbox_stub_names_resolve_to_the_stub_on_every_host(inventory: Inventory, fresh_hosts: SandboxHosts) -> None:
    # SAFETY: every command a playbook may use to change a system must hit the stub, never the real one.
    loop = "for name in " + " ".join(STUB_NAMES) + '; do command -v "$name" || echo "MISSING $name"; done'
    for name in fresh_hosts.hosts:
        with connect(inventory.host(name), inventory.settings) as connection:
            resolved = connection.run(loop, timeout=20).stdout.splitlines()
        stubs_bin = fresh_hosts.host(name).path("stubs-bin")
        assert resolved == [f"{stubs_bin}/{command}" for command in STUB_NAMES]


@pytest.mark.parametrize(
    ("host", "command", "stream", "expected"),
    [
        ("chat", "df -P /", "stdout", "40% /"),
        ("chat", "df --output=pcent,avail /var", "stdout", "40%"),
        ("chat", "free -m", "stdout", "8192"),
        ("chat", "docker exec postgresql pg_isready -U zpro", "stdout", "accepting connections"),
        ("chat", "docker exec postgresql pg_dump -Fc -U zpro zpro", "stdout", "PGDMP"),
        ("chat", "docker exec redis-zpro redis-cli ping", "stdout", "PONG"),
        ("chat", "nginx -t", "stderr", "test is successful"),
        ("chat", "apt-get -o DPkg::Lock::Timeout=600 -s upgrade", "stdout", "Inst openssl"),
        ("chat", "needrestart -b", "stdout", "NEEDRESTART-VER: 3.6"),
        ("chat", "systemctl is-system-running", "stdout", "running"),
        ("chat", "curl -s -o /dev/null -w '%{http_code}' http://localhost:3000", "stdout", "200"),
        ("chat", "npx sequelize db:migrate:status", "stdout", "up 20240101000000-create-tenants.js"),
        ("ia", "docker compose config -q && echo valid", "stdout", "valid"),
        ("ia", "docker compose ps --format json", "stdout", '"State": "running"'),
        ("ia", "docker compose images --format json", "stdout", '"Repository": "n8nio/n8n"'),
    ],
)
def test_sandbox_stub_defaults_look_like_a_healthy_host(
    inventory: Inventory, host: str, command: str, stream: str, expected: str
) -> None:
    with connect(inventory.host(host), inventory.settings) as connection:
        result = connection.run(command, timeout=20)
    assert result.exit_status == 0
    assert expected in (result.stdout if stream == "stdout" else result.stderr)


def test_sandbox_stub_rule_sets_output_and_exit_then_expires_after_times(
    chat: Connection, fresh_hosts: SandboxHosts
) -> None:
    rule = {"prefix": ["systemctl", "is-system-running"], "stdout": "degraded\n", "exit": 1, "times": 1}
    fresh_hosts.set_responses("chat", {"rules": [rule]})
    first = chat.run("systemctl is-system-running", timeout=10)
    second = chat.run("systemctl is-system-running", timeout=10)
    assert (first.exit_status, first.stdout) == (1, "degraded\n")
    assert (second.exit_status, second.stdout) == (0, "running\n")


def test_sandbox_stub_regex_rule_writes_file_inside_root(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    marker = fresh_hosts.host("chat").path("var", "run", "reboot-required")
    fresh_hosts.set_responses(
        "chat",
        {
            "rules": [
                {
                    "regex": r"^apt-get .*-y upgrade$",
                    "write_file": {"path": str(marker), "text": "*** System restart required ***\n"},
                }
            ]
        },
    )
    assert chat.run("apt-get -y upgrade", timeout=10).exit_status == 0
    assert marker.read_text() == "*** System restart required ***\n"


def test_sandbox_stub_refuses_write_file_outside_root(
    chat: Connection, fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    fresh_hosts.set_responses(
        "chat", {"rules": [{"prefix": ["certbot"], "write_file": {"path": str(outside), "text": "x"}}]}
    )
    result = chat.run("certbot renew", timeout=10)
    assert result.exit_status == 97 and "outside the sandbox root" in result.stderr
    assert not outside.exists()


def test_sandbox_stub_records_stdin_bytes_and_cwd(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    app_dir = fresh_hosts.host_vars("chat")["app_dir"]
    chat.run(f"cd {app_dir} && printf abcdef | psql -U zpro", timeout=10)
    (record,) = fresh_hosts.journal("chat")
    assert (record["argv"], record["stdin_bytes"], record["cwd"]) == (["psql", "-U", "zpro"], 6, app_dir)


def test_sandbox_set_responses_rejects_unknown_rule_keys(fresh_hosts: SandboxHosts) -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        fresh_hosts.set_responses("chat", {"rules": [{"prefix": ["pm2"], "stdot": "typo"}]})


def test_sandbox_reset_restores_layout_and_empties_journal(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    env_file = Path(fresh_hosts.host_vars("chat")["app_dir"]) / "backend" / ".env"
    original = env_file.read_text()
    env_file.write_text("BROKEN=1\n")
    chat.run("pm2 save", timeout=10)
    fresh_hosts.set_responses("chat", {"rules": [{"prefix": ["pm2"], "exit": 9}]})
    fresh_hosts.reset("chat")
    assert env_file.read_text() == original and "PORT=3000" in original
    assert fresh_hosts.journal("chat") == []
    assert chat.run("pm2 save", timeout=10).exit_status == 0


def test_sandbox_inventory_text_loads_and_points_vars_into_host_roots(
    fresh_hosts: SandboxHosts, tmp_path: Path
) -> None:
    path = tmp_path / "inventory.toml"
    uuid = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
    path.write_text(fresh_hosts.inventory_text({"chat": ("vultr", uuid), "ia": ("hostinger", 1234)}))
    inventory = load_inventory(path)
    assert list(inventory.hosts) == ["chat", "ia"]
    assert (inventory.host("chat").instance, inventory.host("ia").instance) == (uuid, 1234)
    assert inventory.host("ia").roles == ("integrations",)
    assert inventory.settings.identity_file == fresh_hosts.client_key
    for name in ("chat", "ia"):
        root = str(fresh_hosts.host(name).root) + "/"
        host = inventory.host(name)
        assert host.remote_lock.startswith(root)
        # Every path var (a string or a list of them) points inside the host's root; the rest are waits in seconds.
        paths = [value for key, value in host.vars.items() if key != "deploy_user" and not isinstance(value, int | float)]
        assert all(str(item).startswith(root) for value in paths for item in (value if isinstance(value, list) else [value]))
    assert (fresh_hosts.host("ia").path("opt", "stack", "docker-compose.yml")).is_file()


def test_connection_run_as_sudo_user_sends_text_with_dollar_words_unchanged(chat: Connection, fresh_hosts: SandboxHosts) -> None:
    """`sudo -i` escapes all but letters, digits, _ - $ and has a login shell parse the line again, so a quoted
    '$1-o/FILE' became an option (third review). The text a step sends must reach bash exactly as written."""
    target = fresh_hosts.host("chat").root / "tmp" / "written-by-sort"
    target.parent.mkdir(parents=True, exist_ok=True)
    chat.run(f"sort '$1-o{target}' /etc/hostname", timeout=10, sudo_user="deployzdg")
    assert not target.exists()
    echoed = chat.run("printf '%s|' \"$1\" '$HOME' 'a;b'", timeout=10, sudo_user="deployzdg")
    assert echoed.stdout == "|$HOME|a;b|"


# -- rendering (no network) --------------------------------------------------------------------------


def test_render_command_wraps_sudo_user_around_env_and_command() -> None:
    text = render_command("apt-get -y upgrade", sudo_user="deployzdg", env={"DEBIAN_FRONTEND": "noninteractive"})
    assert text == ("sudo -n -H -u deployzdg -- bash --login -c 'cd 2>/dev/null\n"
                    "export DEBIAN_FRONTEND=noninteractive; apt-get -y upgrade'")


def test_render_command_rejects_invalid_env_name() -> None:
    with pytest.raises(ValueError, match="invalid environment variable name"):
        render_command("true", env={"BAD-NAME": "x"})
