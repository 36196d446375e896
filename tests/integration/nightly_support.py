"""Shared set-up for the audit and health integration tests: real sshd hosts with scripted histories, the real CLI.

A ``NightlyWorld`` is one test's world: the loopback sshd hosts (chat 127.0.0.2, chat2 127.0.0.3,
ia 127.0.0.4) reset to a host left alone for days, and an inventory in tmp_path written by
``SandboxHosts.inventory_text`` (its vars point into each host's root) plus the test's own vars.
``world.cli(...)`` runs the real ``opsguard`` CLI as a subprocess with stdin a closed pipe.

Scripting a host's history uses real files in the host's root (apt's history.log, the history of
guarded runs, /proc/stat's btime, file mtimes) and the stubs' state (containers, pm2, WhatsApp
channels); a change "by hand" (a pm2 restart from a tired shell) goes over SSH like any operator's.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsguard.history import history_line
from opsguard.sandbox.environment import SANDBOX_HOSTS
from opsguard.sandbox.hosts import SandboxHosts
from opsguard.sandbox.journal import changing_sessions
from tests.fixtures.cli_fixtures import CliResult, run_cli

_UNSET = ("OPSGUARD_INVENTORY", "OPSGUARD_AUDIT_PING_URL", "OPSGUARD_HEALTH_PING_URL", "OPSGUARD_WEBHOOK_URL",
          "OPSGUARD_AUDIT_LOCK_WAIT", "OPSGUARD_HEALTH_LOCK_WAIT")  # fmt: skip


def local(moment: datetime) -> datetime:
    """Given a UTC time, return it as the sandbox hosts (this machine) write it in their logs: local, no zone."""
    return datetime.fromtimestamp(moment.timestamp())


def shown(moment: datetime) -> str:
    """Given a UTC time, return it as audit shows it: the host's local "YYYY-MM-DD HH:MM"."""
    return local(moment).strftime("%Y-%m-%d %H:%M")


def docker_time(moment: datetime) -> str:
    """Given a UTC time, return it as docker inspect writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


@dataclass
class NightlyWorld:
    """One test's sshd hosts + inventory + state dir, ways to script a host's history, and the record of sessions."""

    hosts: SandboxHosts
    inventory: Path
    state_dir: Path
    extra_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)

    # -- inventory and running --------------------------------------------------------------------

    def write_inventory(self) -> None:
        """Write the inventory: every host, its sandbox vars plus the test's; unreachable hosts on a closed port."""
        text = self.hosts.inventory_text({name: SANDBOX_HOSTS[name] for name in self.hosts.hosts},
                                         settings={"state_dir": str(self.state_dir)})
        for name, variables in self.extra_vars.items():
            lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in variables.items())
            text = text.replace(f"[hosts.{name}.vars]\n", f"[hosts.{name}.vars]\n{lines}")
        for name in self.unreachable:
            address = self.hosts.host(name).address
            text = re.sub(rf'(address = "{re.escape(address)}"\nport = )\d+', rf"\g<1>{closed_port(address)}", text)
        self.inventory.write_text(text, encoding="utf-8")

    def set_vars(self, host: str, **variables: Any) -> None:
        """Given a host and vars, add them to its inventory vars and rewrite the inventory."""
        self.extra_vars.setdefault(host, {}).update(variables)
        self.write_inventory()

    def make_unreachable(self, host: str) -> None:
        """Given a host, point the inventory at a port where nothing listens."""
        self.unreachable.add(host)
        self.write_inventory()

    def cli(self, *args: str) -> CliResult:
        """Given CLI arguments, run the real `opsguard` (stdin a closed pipe) and return the result."""
        env = {"OPSGUARD_INVENTORY": str(self.inventory), "OPSGUARD_STATE_DIR": str(self.state_dir)}
        return run_cli(*args, env=env, input_text="", timeout=90)

    def report(self, command: str, *args: str) -> tuple[int, dict[str, Any]]:
        """Given a command (audit | health), run it with --json; return its exit code and document."""
        result = self.cli(command, "--json", *args)
        assert result.stdout.strip(), f"{command} printed no JSON: {result.stderr}"
        return result.exit_code, json.loads(result.stdout)

    # -- a host's history -------------------------------------------------------------------------

    def root(self, host: str) -> Path:
        return self.hosts.host(host).root

    def add_apt_run(self, host: str, at: datetime, commandline: str, packages: int, *, action: str = "Upgrade") -> None:
        """Given a host, a UTC time, the command line and a package count, append an apt run to its history.log."""
        start = local(at).strftime("%Y-%m-%d  %H:%M:%S")
        end = local(at + timedelta(seconds=30)).strftime("%Y-%m-%d  %H:%M:%S")
        names = ", ".join(f"lib{index}:amd64 (1.0-1, 1.0-2)" for index in range(packages))
        with (self.root(host) / "var" / "log" / "apt" / "history.log").open("a", encoding="utf-8") as log:
            log.write(f"\nStart-Date: {start}\nCommandline: {commandline}\n{action}: {names}\nEnd-Date: {end}\n")

    def add_guarded_run(self, host: str, start: datetime, end: datetime | None, run_id: str = "20261201T000000Z-abc123") -> None:
        """Given a host and a window, append the start (and end) entries the guard writes to the host's history."""
        entry = {"run_id": run_id, "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": None, "snapshot_id": "snap-1",
                 "outcome": "in-progress", "user": "ops", "machine": "laptop", "command": "update"}
        path = self.root(host) / "var" / "lib" / "opsguard" / "history.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [history_line(entry)]
        if end is not None:
            lines.append(history_line({**entry, "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "outcome": "ok"}))
        with path.open("a", encoding="utf-8") as history:
            history.write("".join(line + "\n" for line in lines))

    def booted_at(self, host: str, at: datetime) -> None:
        """Given a host and a UTC time, make that its boot time (/proc/stat btime)."""
        (self.root(host) / "proc" / "stat").write_text(f"btime {int(at.timestamp())}\n", encoding="utf-8")

    def touch(self, host: str, relative: str, at: datetime, text: str = "changed\n") -> Path:
        """Given a host, a path in its root and a UTC time, write the file with that mtime; return its path."""
        path = self.root(host) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        os.utime(path, (at.timestamp(), at.timestamp()))
        return path

    def by_hand(self, host: str, command: str) -> None:
        """Given a host and a command, run it over SSH as an operator would, outside opsguard's guard."""
        from opsguard.inventory import load_inventory
        from opsguard.transport import connect

        inventory = load_inventory(self.inventory)
        with connect(inventory.host(host), inventory.settings) as connection:
            result = connection.run(command, timeout=30)
        assert result.exit_status == 0, result.stderr

    # -- what the hosts received ------------------------------------------------------------------

    def session_counts(self) -> dict[str, int]:
        return {name: len(self.hosts.sessions(name)) for name in self.hosts.hosts}

    def assert_read_only_since(self, counts: Mapping[str, int]) -> int:
        """Given session counts taken before a command, check every session since only read; return how many there were."""
        total = 0
        for name in self.hosts.hosts:
            sessions = self.hosts.sessions(name)[counts.get(name, 0):]
            assert changing_sessions(sessions) == [], f"{name} received commands that may change it"
            total += len(sessions)
        return total


def closed_port(address: str) -> int:
    """Given a loopback address, return a TCP port on it that nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def new_world(hosts: SandboxHosts, tmp_path: Path, state_dir: Path, monkeypatch: Any) -> NightlyWorld:
    """Given fresh sandbox hosts, tmp_path and the state dir, return a world with its inventory written."""
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    world = NightlyWorld(hosts=hosts, inventory=tmp_path / "inventory.toml", state_dir=state_dir)
    world.write_inventory()
    for name in ("chat", "chat2"):
        # A healthy baseline: the sandbox's default channel table has one channel long DISCONNECTED (what the
        # upgrade tests need); health would rightly fail on it.
        hosts.set_stub_state(name, "channels", HEALTHY_CHANNELS)
    return world


HEALTHY_CHANNELS = [
    {"id": 1, "name": "Atendimento", "type": "baileys", "tenantId": 1, "status": "CONNECTED", "since": 0.0},
    {"id": 2, "name": "Oficial", "type": "waba", "tenantId": 2, "status": "CONNECTED", "since": 0.0},
]


def checks(document: Mapping[str, Any], host: str, check: str | None = None) -> list[dict[str, Any]]:
    """Given a --json document, a host and optionally a check name, return that host's check records."""
    [record] = [item for item in document["hosts"] if item["host"] == host]
    return [item for item in record["checks"] if check is None or item["check"] == check]


# -- a TLS server with a short-lived certificate ------------------------------------------------------


@contextmanager
def tls_server(tmp_path: Path, name: str, days_left: float) -> Iterator[int]:
    """Given a directory, a host name and the days its certificate has left, serve TLS on 127.0.0.1; yield the port."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=80))
        .not_valid_after(now + timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(client, server_side=True) as wrapped:
                    wrapped.settimeout(2)
                    with suppress(OSError):
                        wrapped.recv(1)
            except (OSError, ssl.SSLError):
                client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def wait_a_second() -> None:
    """Let the clock move past the last audit's end (the next audit starts there, at one-second resolution)."""
    time.sleep(1.1)
