"""Loopback test hosts: real OpenSSH ``sshd`` processes on 127.0.0.2-4 whose system commands are stubs.

Each host gets its own directory (its "root"): an ed25519 host key, an sshd_config, a
``stubs-bin/`` directory that comes first in the session PATH, a journal of every stub call, the
stub answers (responses.json) and a small "real-ish" filesystem (home/deployzdg/zpro.io, etc/nginx,
var/backups/opsguard, var/lib/dpkg, boot, proc/sys/kernel/random/boot_id, opt/stack, run/lock) that
the inventory vars point into. What the nightly audit reads is there too, as a host that has been
left alone for days: apt and dpkg logs, /proc/stat's boot time (3 days ago), apt and needrestart
settings (Ubuntu 24.04 defaults), crontabs, authorized_keys; every laid-out file is 10 days old. The inventory vars also carry short waits (``FAST_VARS``), so a whole
playbook run on these hosts takes seconds, not the minutes a real host needs to settle.

SAFETY: these hosts run commands as the current user (root in CI) on THIS machine. Every command a
playbook uses to change a system is in ``STUB_NAMES`` and resolves to the recording stub, never
the real program; the paths playbooks use come from inventory vars that point inside each host's
root, so the real /etc, /home and /var are never touched. A test checks every name in
``STUB_NAMES`` resolves to the stub over SSH. Playbooks must call commands by bare name (an
absolute path such as /usr/bin/apt-get would bypass the stubs).
"""

from __future__ import annotations

import compileall
import ctypes
import getpass
import json
import marshal
import os
import py_compile
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from opsguard.sandbox.stubs.fake_pm2 import write_daemon_files
from opsguard.sandbox.stubs.migrations import MIGRATIONS  # the migrations every sandbox Zpro backend has applied

if TYPE_CHECKING:
    from opsguard.inventory import Inventory

SSHD = Path("/usr/sbin/sshd")
DEFAULT_HOSTS: tuple[tuple[str, str], ...] = (("chat", "127.0.0.2"), ("chat2", "127.0.0.3"), ("ia", "127.0.0.4"))
DEFAULT_ROLES = {"ia": "integrations"}  # any other host is a Zpro host
DEFAULT_PROVIDERS = {"chat": "vultr"}  # any other host is at Hostinger (as in the real inventory)
DEPLOY_USER = "deployzdg"
STUBS_DIR = Path(__file__).resolve().parent / "stubs"  # the stub package: dispatch, rules, one fake per tool
STUB_PACKAGE = "opsguard_sandbox_stubs"  # its name in <base>/stublib, where the launcher imports it

# The ONE list of commands that never reach the real program on a sandbox host.
STUB_NAMES: tuple[str, ...] = (
    # packages
    "apt-get", "apt", "apt-mark", "dpkg", "dpkg-reconfigure", "needrestart", "snap",
    # services, power, system state
    "systemctl", "service", "reboot", "shutdown", "poweroff", "halt", "journalctl",
    "timedatectl", "hostnamectl", "update-grub", "mount", "umount", "swapon", "swapoff",
    # the platform
    "pm2", "docker", "docker-compose", "npm", "npx", "node", "yarn", "nginx", "certbot",
    # databases
    "redis-cli", "pg_dump", "pg_restore", "psql",
    # network and firewall
    "curl", "wget", "ufw", "iptables",
    # facts read from the host
    "df", "free", "fuser", "lsof",
    # privileges, users, processes, schedules
    "sudo", "pkill", "killall", "crontab", "useradd", "usermod", "userdel", "passwd",
    # archives
    "unzip",
    # a reader, stubbed only so a test rule can corrupt a copy off the host (the fake is coreutils' encoder)
    "base64",
)  # fmt: skip

# sshd runs this for every session (ForceCommand): it records the session's full command line, then
# runs it as sshd would have. The record is what the tests' oracle judges (every command, not only the
# stubbed tools). Records end with NUL (no command line can hold one); flock keeps them whole. Bash
# builtins only, but for flock: the recorder adds about a millisecond to each command.
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SESSION_RECORDER = f"""#!/bin/bash
command=${{SSH_ORIGINAL_COMMAND-}}
{{ flock 9; printf '%s %s %s\\0' "$EPOCHREALTIME" "$$" "$command" >&9; }} 9>>"$OPSGUARD_SANDBOX_ROOT/sessions.log"
if [ "$command" = {SFTP_SERVER} ]; then exec {SFTP_SERVER}; fi
exec "${{SHELL:-/bin/sh}}" -c "$command"
"""

RULE_KEYS = frozenset(
    {"prefix", "regex", "times", "stdout", "stdout_file", "stderr", "exit", "sleep", "drop", "write_file", "default"}
)
_LAYOUT_DIRS = ("home", "var", "etc", "opt", "run", "tmp", "root", "boot", "proc", "stub-state")
# Playbook waits for hosts whose stub services answer at once (seconds; the real defaults are 5-900 s).
FAST_VARS: dict[str, float] = {
    "poll_every": 0.05,  # between two looks of a polled check
    "stable_for": 0.3,  # pm2 restart counts must stay unchanged this long
    "health_wait": 2.0,  # for the backend / the compose services to answer after the restart
    "settle_wait": 2.0,  # for services to settle after an OS update
    "reboot_wait": 20.0,  # for the host to come back; the reboot fires 5 s after its step, so this outlasts it
    "channels_wait": 5.0,  # for the WhatsApp channels to be CONNECTED again (they reconnect 0.3 s after a restart)
}
DPKG_LOCK_FILES = (
    "var/lib/dpkg/lock-frontend",
    "var/lib/dpkg/lock",
    "var/lib/apt/lists/lock",
    "var/cache/apt/archives/lock",
)
BOOT_ID_FILE = "proc/sys/kernel/random/boot_id"
PROC_STAT_FILE = "proc/stat"  # its btime line: the boot time the audit reads (a stubbed reboot rewrites it)
BOOTED_AGO = 3 * 86400.0  # a freshly laid-out host booted this long ago
LAID_OUT_AGO = 10 * 86400.0  # ... and every file of its layout was last changed this long ago
_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._+-]+$")
_START_TIMEOUT = 10.0


class SandboxError(RuntimeError):
    """The sandbox hosts could not be set up or started (the message carries sshd's own words)."""


@dataclass(frozen=True)
class SessionRecord:
    """One SSH session a sandbox host received: when, the session's pid, and its full command line."""

    time: float
    pid: int
    command: str

    @property
    def is_sftp(self) -> bool:
        """Return whether this session was an SFTP transfer (which can write any file)."""
        return self.command == SFTP_SERVER


def read_sessions(path: Path) -> list[SessionRecord]:
    """Given a host's session record (written by the session recorder), return its sessions, oldest first."""
    if not path.exists():
        return []
    records = []
    for entry in path.read_bytes().split(b"\0"):
        if not entry.strip():
            continue
        stamp, pid, command = entry.lstrip(b"\n").split(b" ", 2)
        records.append(SessionRecord(float(stamp), int(pid), command.decode("utf-8", errors="surrogateescape")))
    return records


@dataclass
class SandboxHost:
    """One loopback sshd host."""

    name: str
    address: str
    port: int
    root: Path  # the host's directory: keys, config, stubs-bin, journal, layout
    journal_path: Path
    pid: int  # the sshd listener
    role: str = "zpro"  # "zpro" | "integrations": picks the layout and the stub defaults

    def path(self, *parts: str) -> Path:
        """Given path parts, return that path inside this host's root."""
        return self.root.joinpath(*parts)

    @property
    def sessions_path(self) -> Path:
        """The record of every SSH session's command line (written by the session recorder)."""
        return self.root / "sessions.log"


class SandboxHosts:
    """Start, reset and stop the loopback sshd hosts; read their journals; set stub answers."""

    def __init__(
        self,
        base_dir: Path,
        hosts: Sequence[tuple[str, str]] = DEFAULT_HOSTS,
        port: int | None = None,
        *,
        roles: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
        record_sessions: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.known_hosts = self.base_dir / "known_hosts"
        self.client_key = self.base_dir / "client_ed25519"
        self.user = getpass.getuser()
        self.hosts: dict[str, SandboxHost] = {}
        self._specs = list(hosts)
        if not self._specs:
            raise ValueError("SandboxHosts needs at least one (name, address) host")
        self._port = port
        self._roles = dict(DEFAULT_ROLES if roles is None else roles)
        self._die_with_parent = die_with_parent
        # Off only for benchmarks of the per-step cost: the recorder adds ~3 ms to every command.
        self._record_sessions = record_sessions
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._pm2_daemon: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Generate keys and configs, lay out each host's files, start one sshd per host and wait until each accepts TCP.

        Raise SandboxError (with sshd's stderr) if sshd is missing or a host fails to start.
        """
        if self._processes:
            raise SandboxError("sandbox hosts are already started")
        if not SSHD.is_file():
            raise SandboxError(f"{SSHD} is missing: install openssh-server (make test does it)")
        if not _SAFE_PATH.match(str(self.base_dir)):
            raise SandboxError(
                f"{self.base_dir}: choose a base directory whose path has no spaces or special characters"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _ensure_privsep_dir()
        port = self._port or _free_port([address for _, address in self._specs])
        client_public = _ensure_key(self.client_key)
        (self.base_dir / "authorized_keys").write_text(client_public + "\n")
        stub = self._install_stub()
        recorder = self.base_dir / "session-recorder"
        _write_atomically(recorder, SESSION_RECORDER)
        recorder.chmod(0o755)
        known_lines = []
        for name, address in self._specs:
            root = self.base_dir / "hosts" / name
            root.mkdir(parents=True, exist_ok=True)
            host = SandboxHost(name, address, port, root, root / "journal.jsonl", 0, self._roles.get(name, "zpro"))
            self.hosts[name] = host
            host_public = _ensure_key(root / "ssh_host_ed25519_key")
            known_lines.append(f"[{address}]:{port} {host_public}")
            self._install_links(host, stub)
            self._reset_host(host)
        self.known_hosts.write_text("\n".join(known_lines) + "\n")
        extra = self._supported_extras(next(iter(self.hosts.values())))
        try:
            for host in self.hosts.values():
                config = host.root / "sshd_config"
                config.write_text(self._sshd_config(host, extra))
                self._spawn(host, config)
            for host in self.hosts.values():
                self._wait_ready(host)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every sshd started here (listeners and their open sessions), by PID; safe to call twice."""
        for name, process in list(self._processes.items()):
            sessions = _child_pids(process.pid)
            if process.poll() is None:
                process.terminate()
            for pid in sessions:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self._processes[name]
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        if self._pm2_daemon is not None:
            self._pm2_daemon.kill()
            self._pm2_daemon.wait()
            self._pm2_daemon = None

    def __enter__(self) -> SandboxHosts:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def running(self, name: str) -> bool:
        """Given a host name, return True if its sshd listener is alive."""
        process = self._processes.get(name)
        return process is not None and process.poll() is None

    def reset(self, name: str | None = None) -> None:
        """Given a host name (or None for all), empty its journal, restore default stub answers and rebuild its layout."""
        for host in self._selected(name):
            self._reset_host(host)

    # -- journals and stub answers ----------------------------------------------------------------
    def journal(self, name: str) -> list[dict[str, Any]]:
        """Given a host name, return the parsed records of its stub calls, oldest first."""
        path = self.host(name).journal_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def commands(self, name: str) -> list[list[str]]:
        """Given a host name, return the argv of each stub call, oldest first."""
        return [record["argv"] for record in self.journal(name)]

    def sessions(self, name: str) -> list[SessionRecord]:
        """Given a host name, return every SSH session it received (its full command line), oldest first."""
        return read_sessions(self.host(name).sessions_path)

    def set_responses(self, name: str, responses: Mapping[str, Any]) -> None:
        """Given a host name and {"rules": [...], "profile"?: ...}, make that host's stubs answer by those rules.

        Rules are matched in order (see opsguard/sandbox/stubs/rules.py for the keys). Raise
        ValueError for an unknown key or a bad rule, so a typo in a test cannot silently match nothing.
        """
        host = self.host(name)
        unknown = set(responses) - {"rules", "profile"}
        if unknown:
            raise ValueError(f"set_responses: unknown keys {sorted(unknown)} (expected rules, profile)")
        rules = list(responses.get("rules", []))
        for index, rule in enumerate(rules):
            _check_rule(index, rule)
        document = {"profile": responses.get("profile", host.role), "rules": rules}
        _write_atomically(host.root / "responses.json", json.dumps(document, indent=1))
        # The stub reads this copy: marshal loads without importing json (stub start-up time).
        _write_atomically(host.root / "responses.marshal", marshal.dumps(document))
        (host.root / "responses.counts").unlink(missing_ok=True)

    def set_stub_state(self, name: str, key: str, value: Any) -> None:
        """Given a host, a stub-state key ("containers", "pm2", "channels"; see stub.py and stubs/channels.py) and plain data, script that
        part of the host's history as the stubs will report it."""
        directory = self.host(name).root / "stub-state"
        directory.mkdir(exist_ok=True)
        _write_atomically(directory / key, marshal.dumps(value))

    def set_channels(
        self,
        name: str,
        *,
        table: str | None = None,
        reconnect_seconds: float | None = None,
        lose_session: Sequence[str] | None = None,
    ) -> None:
        """Given a Zpro host, set its WhatsApp channel knobs (stubs/channels.py); a reset restores the defaults.

        ``table``: the name the channel table answers under (a renamed model); ``reconnect_seconds``: how long a
        Baileys channel stays OPENING after a backend restart; ``lose_session``: channel names that end in
        ``qrcode`` instead of CONNECTED (their session is lost).
        """
        host = self.host(name)
        state = host.root / "stub-state"
        state.mkdir(parents=True, exist_ok=True)
        path = state / "channels-config"
        config: dict[str, Any] = marshal.loads(path.read_bytes()) if path.exists() else {}
        if table is not None:
            config["table"] = table
        if reconnect_seconds is not None:
            config["reconnect_seconds"] = float(reconnect_seconds)
        if lose_session is not None:
            config["lose_session"] = list(lose_session)
        _write_atomically(path, marshal.dumps(config))

    def set_stack_images(
        self,
        name: str,
        *,
        running: Mapping[str, str] | None = None,
        local: Mapping[str, str] | None = None,
        registry: Mapping[str, str] | None = None,
    ) -> None:
        """Given an integrations host, set its image knobs (stubs/containers.py): ``running`` {service: the reference
        its container runs}, ``local`` {reference: the version of the local image}, ``registry`` {reference: the
        version `docker compose pull` fetches}. A reset restores the defaults (each service runs its configured tag)."""
        state = self.host(name).root / "stub-state"
        state.mkdir(parents=True, exist_ok=True)
        document = {"running": dict(running or {}), "local": dict(local or {}), "registry": dict(registry or {})}
        _write_atomically(state / "stack-images", marshal.dumps(document))

    # -- inventory --------------------------------------------------------------------------------
    def host(self, name: str) -> SandboxHost:
        """Given a host name, return its SandboxHost; raise KeyError naming the sandbox hosts if unknown."""
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(
                f"no sandbox host {name!r} (hosts: {', '.join(self.hosts) or 'none; start() first'})"
            ) from None

    def host_vars(self, name: str) -> dict[str, Any]:
        """Given a host name, return the playbook vars: every path points into that host's root, waits are short.

        Path vars are strings or lists of strings; the waits (FAST_VARS) are numbers of seconds.
        ``remote_lock`` is here for callers, but it is a host key of the inventory, not a playbook var.
        """
        root = self.host(name).root
        return {
            "deploy_user": DEPLOY_USER,
            "app_dir": str(root / "home" / DEPLOY_USER / "zpro.io"),
            "backup_dir": str(root / "var" / "backups" / "opsguard"),
            "nginx_sites_dir": str(root / "etc" / "nginx" / "sites-enabled"),
            "compose_dir": str(root / "opt" / "stack"),
            "reboot_required_file": str(root / "var" / "run" / "reboot-required"),
            "pm2_log_dir": str(root / "home" / DEPLOY_USER / ".pm2" / "logs"),
            "disk_paths": [f"{root}/", str(root / "var")],  # the host's / and /var
            "boot_dir": str(root / "boot"),
            "boot_id_file": str(root / BOOT_ID_FILE),
            "dpkg_lock_files": [str(root / path) for path in DPKG_LOCK_FILES],
            # What the audit reads (opsguard/audit.py VARS).
            "apt_log_dir": str(root / "var" / "log" / "apt"),
            "dpkg_log": str(root / "var" / "log" / "dpkg.log"),
            "proc_stat_file": str(root / PROC_STAT_FILE),
            "cron_paths": [str(root / "etc" / "crontab"), str(root / "etc" / "cron.d"),
                           str(root / "var" / "spool" / "cron" / "crontabs")],
            "ssh_key_dirs": [str(root / "root" / ".ssh"), str(root / "home") + "/*/.ssh"],
            "apt_conf_dir": str(root / "etc" / "apt" / "apt.conf.d"),
            "needrestart_conf_dir": str(root / "etc" / "needrestart"),
            "os_release_file": str(root / "etc" / "os-release"),
            # health: the sandbox's public names do not resolve; a test names its own TLS server (tls_names, tls_address).
            "tls_from_env": False,
            **FAST_VARS,
            "remote_lock": str(root / "run" / "lock" / "opsguard"),
        }

    def inventory_text(
        self,
        providers: Mapping[str, tuple[str, str | int | None]] | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> str:
        """Given name -> (provider, instance) for the hosts to include (default: all, no instance ids), return inventory TOML.

        Settings point at the sandbox known_hosts and client key and use short test durations;
        ``settings`` overrides any of them. Each host's remote_lock and vars point into its root.
        """
        if providers is None:
            providers = {name: (DEFAULT_PROVIDERS.get(name, "hostinger"), None) for name in self.hosts}
        values = {
            "state_dir": str(self.base_dir / "state"),
            "known_hosts": str(self.known_hosts),
            "identity_file": str(self.client_key),
            "user": self.user,
            "snapshot_timeout": "10s",
            "snapshot_poll": "0.2s",
            "receipt_ttl": "30m",
        }
        values.update(settings or {})
        lines = [
            "# opsguard sandbox inventory: loopback sshd hosts (generated by opsguard.sandbox.hosts)",
            "[settings]",
        ]
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        for name, (provider, instance) in providers.items():
            host = self.host(name)
            host_vars = self.host_vars(name)
            # remote_lock is a host key of the inventory, not a playbook var.
            lock_dir = host_vars.pop("remote_lock")
            lines += ["", f"[hosts.{name}]", f"address = {_toml(host.address)}", f"port = {host.port}"]
            lines += [f"provider = {_toml(provider)}"]
            if instance is not None:
                lines.append(f"instance = {instance if isinstance(instance, int) else _toml(instance)}")
            remote_state = str(host.root / "var" / "lib" / "opsguard")
            lines += [f"roles = [{_toml(host.role)}]", f"remote_lock = {_toml(lock_dir)}",
                      f"remote_state = {_toml(remote_state)}"]
            schedule, max_age = ("daily", "26h") if provider == "vultr" else ("weekly", "8d")
            lines += [f"[hosts.{name}.backups]", f"schedule = {_toml(schedule)}", f"max_age = {_toml(max_age)}"]
            lines += [f"[hosts.{name}.vars]"] + [f"{key} = {_toml(value)}" for key, value in host_vars.items()]
        return "\n".join(lines) + "\n"

    def write_inventory(
        self, path: Path | None = None, providers: Mapping[str, tuple[str, str | int | None]] | None = None
    ) -> Path:
        """Given a path (default base_dir/inventory.toml) and providers as for inventory_text, write the inventory and return its path."""
        target = Path(path) if path else self.base_dir / "inventory.toml"
        target.write_text(self.inventory_text(providers))
        return target

    def inventory(self, providers: Mapping[str, tuple[str, str | int | None]] | None = None) -> Inventory:
        """Given providers as for inventory_text, write base_dir/inventory.toml and return it loaded and validated."""
        from opsguard.inventory import load_inventory

        return load_inventory(self.write_inventory(providers=providers))

    # -- internals --------------------------------------------------------------------------------
    def _selected(self, name: str | None) -> Iterator[SandboxHost]:
        if name is None:
            yield from self.hosts.values()
        else:
            yield self.host(name)

    def _install_stub(self) -> Path:
        return install_stub(self.base_dir)

    def _install_links(self, host: SandboxHost, stub: Path) -> None:
        install_links(host.root / "stubs-bin", stub)

    def _reset_host(self, host: SandboxHost) -> None:
        host.journal_path.write_text("")
        host.sessions_path.write_text("")
        self.set_responses(host.name, {"rules": []})
        # A started pm2 daemon is the stand-in process: fake_pm2 reads its pid here.
        (host.root / "pm2-daemon.pid").write_text(f"{self.pm2_daemon_pid}\n")
        _layout(host, self.pm2_daemon_pid)

    @property
    def pm2_daemon_pid(self) -> int:
        """The pid of the process that stands in for every host's pm2 daemon (started on first use, stopped by stop)."""
        if self._pm2_daemon is None or self._pm2_daemon.poll() is not None:
            self._pm2_daemon = _spawn_pm2_daemon(die_with_parent=self._die_with_parent)
        return self._pm2_daemon.pid

    def _sshd_config(self, host: SandboxHost, extra: Sequence[str]) -> str:
        root = host.root
        path = f"{root}/stubs-bin:/usr/local/bin:/usr/bin:/bin"
        lines = [
            f"ListenAddress {host.address}:{host.port}",
            f"HostKey {root}/ssh_host_ed25519_key",
            f"PidFile {root}/sshd.pid",
            f"AuthorizedKeysFile {self.base_dir}/authorized_keys",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitTunnel no",
            "PermitUserEnvironment no",
            "MaxStartups 100",
            "MaxSessions 50",
            "LogLevel ERROR",
            f"Subsystem sftp {SFTP_SERVER}",
            *([f"ForceCommand {self.base_dir}/session-recorder"] if self._record_sessions else []),
            # The stubs come first in PATH. HOME is an empty per-host directory so the login
            # shell reads no rc file (root's real ~/.bashrc may put other directories first).
            f"SetEnv PATH={path} HOME={root}/root OPSGUARD_SANDBOX_ROOT={root}",
            *extra,
        ]
        return "\n".join(lines) + "\n"

    def _supported_extras(self, host: SandboxHost) -> list[str]:
        # OpenSSH >= 9.8 penalises sources whose sessions crash or fail auth; the drop and
        # bad-key tests do both on purpose, so turn it off where the option exists.
        probe = host.root / "sshd_config.probe"
        probe.write_text(self._sshd_config(host, ["PerSourcePenalties no"]))
        try:
            result = subprocess.run([str(SSHD), "-t", "-f", str(probe)], capture_output=True, timeout=10, check=False)
        finally:
            probe.unlink(missing_ok=True)
        return ["PerSourcePenalties no"] if result.returncode == 0 else []

    def _spawn(self, host: SandboxHost, config: Path) -> None:
        (host.root / "sshd.pid").unlink(missing_ok=True)
        log = open(host.root / "sshd.log", "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self._logs[host.name] = log
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            close_fds=True,
            preexec_fn=_die_with_parent if self._die_with_parent else None,
        )
        self._processes[host.name] = process
        host.pid = process.pid

    def _wait_ready(self, host: SandboxHost) -> None:
        process = self._processes[host.name]
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if process.poll() is not None:
                log = (host.root / "sshd.log").read_text(errors="replace").strip()
                raise SandboxError(
                    f"sshd for {host.name} ({host.address}:{host.port}) exited with {process.returncode}: {log}"
                )
            if _pid_file_matches(host) and _accepts(host.address, host.port):
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"sshd for {host.name} ({host.address}:{host.port}) did not accept connections within {_START_TIMEOUT:g}s"
                )
            time.sleep(0.02)


# -- the stubs -------------------------------------------------------------------------------------


def install_stub(base_dir: Path) -> Path:
    """Given the sandbox base directory, install the stub package and its launcher there; return the launcher.

    The launcher imports the package from a private copy (<base>/stublib), compiled here, so every
    call loads cached bytecode (compiling on every call would cost milliseconds) and imports only
    the core and the fake of the command called. It runs with this interpreter: -I ignores the
    caller's environment, -S skips site-packages for a faster start. Raise SandboxError if a
    module of the stub package does not compile.
    """
    library = base_dir / "stublib"
    if library.exists():
        shutil.rmtree(library)
    package = library / STUB_PACKAGE
    package.mkdir(parents=True)
    for source in sorted(STUBS_DIR.glob("*.py")):
        shutil.copyfile(source, package / source.name)
    # Plain timestamp-checked .pyc files, whatever SOURCE_DATE_EPOCH or -O this process runs with:
    # the launcher (no -O) must find them, and checking them must not read the sources.
    timestamp = py_compile.PycInvalidationMode.TIMESTAMP
    if not compileall.compile_dir(package, quiet=2, optimize=0, invalidation_mode=timestamp):
        raise SandboxError(f"the sandbox stubs in {STUBS_DIR} do not compile (python -m compileall {STUBS_DIR})")
    launcher = base_dir / "stub.py"
    _write_atomically(
        launcher,
        f"#!{sys.executable} -IS\nimport sys\nsys.path.insert(0, {str(library)!r})\n"
        f"from {STUB_PACKAGE}.dispatch import run\nrun()\n",
    )
    launcher.chmod(0o755)
    return launcher


def install_links(directory: Path, stub: Path) -> None:
    """Given a host's stubs-bin directory and the launcher, (re)create it with one link per name in STUB_NAMES."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()
    for name in STUB_NAMES:
        (directory / name).symlink_to(stub)


# -- layout ----------------------------------------------------------------------------------------


def _layout(host: SandboxHost, pm2_daemon_pid: int) -> None:
    """(Re)create the host's real-ish filesystem: what the playbooks read and change, inside its root.

    On a Zpro host the deploy user's pm2 daemon runs (the stand-in process ``pm2_daemon_pid``): remove
    its pm2.pid (or rpc.sock) and the host has none; a pm2 command would then start one, as the real pm2 does.
    """
    root = host.root
    for part in _LAYOUT_DIRS:
        target = root / part
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    for directory in ("root", "tmp", "run/lock", "var/run", "var/backups/opsguard", "etc/nginx/sites-enabled",
                      "etc/nginx/sites-available", "opt/stack", f"home/{DEPLOY_USER}/.pm2/logs", "boot",
                      "var/lib/dpkg", "var/lib/apt/lists", "var/cache/apt/archives"):  # fmt: skip
        (root / directory).mkdir(parents=True, exist_ok=True)
    # What every Debian/Ubuntu host has: the dpkg/apt lock files (nobody holds them: fuser answers 1)
    # and a boot id (a stubbed `systemctl reboot` replaces it, as a real reboot would).
    common: dict[str, str | bytes] = {path: "" for path in DPKG_LOCK_FILES}
    common[BOOT_ID_FILE] = str(uuid.UUID(bytes=os.urandom(16), version=4)) + "\n"
    now = time.time()
    common.update(_audited_files(now))
    _write_files(root, common)
    for directory in ("etc/cron.d", "var/spool/cron/crontabs"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    if host.role == "integrations":
        _write_files(root, _integrations_files(host))
    else:
        _write_files(root, _zpro_files(host))
        write_daemon_files(str(root / "home" / DEPLOY_USER / ".pm2"), pm2_daemon_pid)
    # A host left alone: nothing of its layout changed recently (the audit reports recent changes).
    for part in _LAYOUT_DIRS:
        _age(root / part, now - LAID_OUT_AGO)


def _age(top: Path, when: float) -> None:
    """Given a directory and a time, set the mtime (and atime) of it and everything under it to that time."""
    if not top.is_dir():
        return
    for directory, _, files in os.walk(top):
        for name in files:
            with suppress(OSError):
                os.utime(os.path.join(directory, name), (when, when), follow_symlinks=False)
        os.utime(directory, (when, when))


def _audited_files(now: float) -> dict[str, str | bytes]:
    """Given the time of the layout, return what the audit reads on an Ubuntu 24.04 host that was last changed days ago."""
    installed = time.localtime(now - LAID_OUT_AGO)  # logs are written in local time, without a zone
    day, clock = time.strftime("%Y-%m-%d", installed), time.strftime("%H:%M:%S", installed)
    return {
        PROC_STAT_FILE: f"cpu  1000 0 500 90000 10 0 5 0 0 0\nbtime {int(now - BOOTED_AGO)}\nprocesses 4242\n",
        "var/log/apt/history.log": (f"\nStart-Date: {day}  {clock}\nCommandline: apt-get install -y nginx\n"
                                    f"Install: nginx:amd64 (1.24.0-2ubuntu7)\nEnd-Date: {day}  {clock}\n"),
        "var/log/dpkg.log": f"{day} {clock} install nginx:amd64 <none> 1.24.0-2ubuntu7\n",
        "etc/apt/apt.conf.d/20auto-upgrades": 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
        "etc/needrestart/needrestart.conf": "# Restart mode: (l)ist only, (i)nteractive or (a)utomatically.\n#$nrconf{restart} = 'i';\n",
        "etc/os-release": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n',
        "etc/crontab": "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n",
        "root/.ssh/authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsguardSandboxOperatorKeyxxxxxxxxxxxxxxxxxx ops@laptop\n",
        f"home/{DEPLOY_USER}/.ssh/authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsguardSandboxDeployKeyxxxxxxxxxxxxxxxxxxxx deploy\n",
    }


def _zpro_files(host: SandboxHost) -> dict[str, str | bytes]:
    app = f"home/{DEPLOY_USER}/zpro.io"
    api, web = f"https://api.{host.name}.sandbox.test", f"https://{host.name}.sandbox.test"
    env = "\n".join(
        [
            "NODE_ENV=production", f"BACKEND_URL={api}", f"FRONTEND_URL={web}", "PROXY_PORT=443", "PORT=3000",
            "DB_DIALECT=postgres", "DB_PORT=5432", "POSTGRES_HOST=localhost", "POSTGRES_USER=zpro",
            "POSTGRES_PASSWORD=sandbox-not-a-secret", "POSTGRES_DB=zpro", "JWT_SECRET=sandbox-not-a-secret",
            "JWT_REFRESH_SECRET=sandbox-not-a-secret", "IO_REDIS_SERVER=localhost", "IO_REDIS_PORT=6379",
            "IO_REDIS_DB_SESSION=2",
        ]
    )  # fmt: skip
    site = "server {{\n    server_name {name};\n    location / {{ proxy_pass http://127.0.0.1:{port}; }}\n}}\n"
    return {
        f"{app}/backend/.env": env + "\n",
        f"{app}/backend/package.json": json.dumps(
            {
                "name": "zpro-backend",
                "version": "2.4.0",
                "main": "dist/server.js",
                "scripts": {"build": "tsc", "start": "node dist/server.js"},
            }
        )
        + "\n",
        f"{app}/backend/dist/server.js": "// sandbox backend\n",
        **{
            f"{app}/backend/dist/database/migrations/{name}": "module.exports = { up: async () => {}, down: async () => {} };\n"
            for name in MIGRATIONS
        },
        f"{app}/backend/public/1700000000000-logo.jpg": b"\xff\xd8\xff\xe0" + b"sandbox media" * 32,
        f"{app}/backend/node_modules/placeholder/index.js": "module.exports = {};\n",
        f"{app}/frontend/.env": f"VUE_URL_API={api}\n",
        f"{app}/frontend/package.json": json.dumps(
            {
                "name": "zpro-frontend",
                "version": "2.4.0",
                "scripts": {"build": "quasar build", "start": "node server.js"},
            }
        )
        + "\n",
        f"{app}/frontend/server.js": "// sandbox frontend server\n",
        f"{app}/frontend/dist/spa/index.html": "<!doctype html><title>Zpro</title>\n",
        f"{app}/frontend/node_modules/placeholder/index.js": "module.exports = {};\n",
        f"home/{DEPLOY_USER}/.pm2/logs/zpro-backend-error.log": "",
        f"home/{DEPLOY_USER}/.pm2/logs/zpro-backend-out.log": "Server started on port: 3000\n",
        "etc/nginx/sites-available/zpro-backend": site.format(name=f"api.{host.name}.sandbox.test", port=3000),
        "etc/nginx/sites-available/zpro-frontend": site.format(name=f"{host.name}.sandbox.test", port=4444),
        "etc/nginx/sites-enabled/zpro-backend": site.format(name=f"api.{host.name}.sandbox.test", port=3000),
        "etc/nginx/sites-enabled/zpro-frontend": site.format(name=f"{host.name}.sandbox.test", port=4444),
    }


COMPOSE_FILE = """\
services:
  typebot-db:
    image: postgres:16.4
    restart: always
    environment:
      - POSTGRES_DB=typebot
      - POSTGRES_PASSWORD=sandbox-not-a-secret
    volumes:
      - typebot-db:/var/lib/postgresql/data
  typebot-builder:
    image: baptistearno/typebot-builder:2.27.0
    restart: always
    depends_on:
      - typebot-db
  typebot-viewer:
    image: baptistearno/typebot-viewer:2.27.0
    restart: always
  n8n:
    image: n8nio/n8n:1.64.3
    restart: always
volumes:
  typebot-db: {}
"""


N8N_CONFIG = "volumes/n8n/home/node/.n8n/config"  # inside the n8n container: /home/node/.n8n/config


def _integrations_files(host: SandboxHost) -> dict[str, str | bytes]:
    site = "server {{\n    server_name {name};\n    location / {{ proxy_pass http://127.0.0.1:{port}; }}\n}}\n"
    return {
        "opt/stack/docker-compose.yml": COMPOSE_FILE,
        "opt/stack/.env": "TYPEBOT_VERSION=2.27.0\nN8N_VERSION=1.64.3\n",
        # n8n generated its encryption key on first start, into its data volume (no N8N_ENCRYPTION_KEY set).
        N8N_CONFIG: '{\n\t"encryptionKey": "sandbox-n8n-encryption-key"\n}',
        "etc/nginx/sites-enabled/typebot": site.format(name=f"typebot.{host.name}.sandbox.test", port=8080),
        "etc/nginx/sites-enabled/n8n": site.format(name=f"n8n.{host.name}.sandbox.test", port=5678),
    }


def _write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


# -- helpers ---------------------------------------------------------------------------------------


def _check_rule(index: int, rule: Any) -> None:
    where = f"set_responses: rule {index}"
    if not isinstance(rule, Mapping):
        raise ValueError(f"{where}: must be a dict")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (expected some of {sorted(RULE_KEYS)})")
    prefix = rule.get("prefix")
    if prefix is not None and (
        not isinstance(prefix, list | tuple) or not all(isinstance(word, str) for word in prefix)
    ):
        raise ValueError(f"{where}: prefix must be a list of strings")
    if "regex" in rule:
        re.compile(rule["regex"])
    if "exit" in rule and not isinstance(rule["exit"], int):
        raise ValueError(f"{where}: exit must be an integer")


def _toml(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML for what we write (paths, names, seconds).
    if not isinstance(value, str | bool | int | float | list | tuple):
        raise TypeError(f"cannot write {type(value).__name__} into the sandbox inventory")
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _write_atomically(path: Path, content: str | bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    if isinstance(content, bytes):
        partial.write_bytes(content)
    else:
        partial.write_text(content)
    os.replace(partial, path)


def _ensure_key(path: Path) -> str:
    """Given a private key path, create an ed25519 key there unless one exists; return the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = path.with_name(path.name + ".pub")
    if path.exists() and public_path.exists():
        return public_path.read_text().strip()
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    path.write_bytes(private)
    path.chmod(0o600)
    public_path.write_text(public + "\n")
    return public


def _ensure_privsep_dir() -> None:
    privsep = Path("/run/sshd")
    if not privsep.is_dir():
        try:
            privsep.mkdir(mode=0o755, parents=True)
        except OSError as error:
            raise SandboxError(f"sshd needs {privsep} and it cannot be created: {error.strerror}") from None


def _free_port(addresses: Sequence[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_can_bind(address, port) for address in addresses):
            return port
    raise SandboxError(f"no TCP port is free on all of {', '.join(addresses)}")


def _can_bind(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as connection:
            connection.settimeout(2)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _pid_file_matches(host: SandboxHost) -> bool:
    try:
        return int((host.root / "sshd.pid").read_text().split()[0]) == host.pid
    except (OSError, ValueError, IndexError):
        return False


def _child_pids(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            children.append(int(entry.name))
    return children


# The real daemon's process title, which opsguard's pm2 probe looks for in /proc/PID/cmdline.
PM2_DAEMON_TITLE = "PM2 v5.3.0: God Daemon (sandbox)"


def _spawn_pm2_daemon(*, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start the process that stands in for the sandbox's pm2 daemons: a sleep whose command line is the daemon's title."""
    return subprocess.Popen(
        [PM2_DAEMON_TITLE, "infinity"],
        executable=shutil.which("sleep") or "/bin/sleep",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        preexec_fn=_die_with_parent if die_with_parent else None,
    )


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process dies, the kernel sends sshd SIGTERM,
    # so no sshd is left running as root after a crashed test session.
    PR_SET_PDEATHSIG = 1
    with suppress(Exception):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
