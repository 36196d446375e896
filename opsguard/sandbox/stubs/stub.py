#!/usr/bin/env python3
"""opsguard sandbox stub: stands in for one system command on a loopback test host.

opsguard/sandbox/hosts.py installs this file as <base>/stub.py with the test interpreter in its
shebang and links it as <root>/stubs-bin/NAME for every name in ``hosts.STUB_NAMES``; that
directory comes first in the sandbox sshd's PATH. Each call:

1. appends one JSON line to <root>/journal.jsonl under an exclusive lock, fsynced:
   {"time", "argv", "cwd", "user", "stdin_bytes", "pid", "session", "env"} (env: the apt
   variables DEBIAN_FRONTEND, NEEDRESTART_MODE, UCF_FORCE_CONFFOLD when set);
2. answers per the first matching rule in <root>/responses.json, else with a default that looks
   like a healthy real host (so a playbook run succeeds).

The defaults keep a little state in <root>/stub-state/ (wiped by a reset), so a run reads back
what it did, as on a real host: ``pm2 stop`` leaves the app stopped in ``pm2 jlist`` (and its port
refuses curl) until ``pm2 restart`` (which counts a restart); ``sequelize db:migrate`` applies the
migration files of the backend it runs in, and ``db:migrate:status`` shows them up; ``systemctl
reboot`` gives the host a new boot id and boot time (``btime`` in <root>/proc/stat); ``npm install`` / ``npm run build`` leave node_modules and the
build output behind. Containers, images and their digests are derived from the compose file (or the
Zpro containers), so ``docker inspect`` / ``docker compose ps -q`` agree with each other. A test
scripts a host's history through stub-state: "containers" ({name: {"Created", "StartedAt",
"Image" (a reference), "Status", "Health", "RestartCount"}}), "pm2" ({name: [status, restarts,
pm_uptime ms]}; a pm2 restart sets the uptime to now) and "whatsapps" ([[name, status, type]...],
the rows psql answers for the Zpro channel table).

A rule: {"prefix": [argv...]} and/or {"regex": "..."} (searched in the space-joined argv), an
optional "times": N (the rule applies N times, then is skipped), and what to do: "write_file"
{path, text} (or a list), "stdout", "stdout_file", "stderr", "sleep" (seconds), "default": true (then answer as by default), "drop": true (or "all": every connection of the host, as a reboot)
(SIGKILL this SSH session's sshd processes, so the client sees the connection die mid-command),
"exit". Rules never match a `sudo` call unless their prefix starts with "sudo": sudo runs the
inner command, which is matched on its own.

SAFETY: this never runs the real command and writes files only under <root>. stdlib only, and
few imports, so a call costs a few milliseconds.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import sys
import time

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PG_DUMP_BYTES = b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01" + b"opsguard sandbox dump\n" * 64
MIGRATIONS = (
    "20240101000000-create-tenants.js",
    "20240315120000-add-campaigns.js",
    "20240610090000-add-whatsapp-sessions.js",
)
PM2_APPS = (("zpro-backend", "3000", "backend", "dist/server.js"), ("zpro-frontend", "4444", "frontend", "server.js"))
ZPRO_CONTAINERS = (("postgresql", "postgres:14.11"), ("redis-zpro", "redis:7.2.4"))
DATABASE_BYTES = 183_500_800  # what pg_database_size answers: a ~175 MiB Zpro database
COMPOSE_DIR = ("opt", "stack")  # the integrations host's compose project, inside the root
MIGRATIONS_DIR = ("dist", "database", "migrations")  # where a Zpro backend keeps its compiled migrations
ENV_RECORDED = ("DEBIAN_FRONTEND", "NEEDRESTART_MODE", "UCF_FORCE_CONFFOLD")  # journaled with each call
# df: mount -> (device, type, size KiB, used KiB); both 40 % used, /boot has 528 MiB free.
FILESYSTEMS = {"/": ("/dev/vda1", "ext4", 83886080, 33554432), "/boot": ("/dev/vda16", "ext4", 901120, 360448)}
# free: MiB (total, used, free, shared, buff/cache, available); 8 GiB RAM + 4 GiB swap.
MEMORY = {"Mem:": (8192, 2210, 3120, 61, 2862, 5600), "Swap:": (4096, 0, 4096)}
REFUSED_OUTSIDE = 97  # exit status when a call would write outside the sandbox root


class Call:
    """One invocation: argv (argv[0] is the command name), the host's sandbox root and profile."""

    def __init__(self, root: str, argv: list[str], stdin_bytes: int, profile: str) -> None:
        self.root = root
        self.argv = argv
        self.args = argv[1:]
        self.stdin_bytes = stdin_bytes
        self.profile = profile
        self.user = os.environ.get("USER", "")

    def inside_root(self, path: str) -> bool:
        """Given a path, return True if it resolves inside the sandbox root."""
        full = os.path.realpath(os.path.join(current_directory(), path))
        return full == os.path.realpath(self.root) or full.startswith(os.path.realpath(self.root) + os.sep)

    def host_path(self, path: str) -> str:
        """Given a path, return it as the host sees it: relative to the sandbox root when inside it."""
        full = os.path.normpath(os.path.join(current_directory(), path))
        root = os.path.normpath(self.root)
        if full == root:
            return "/"
        return full[len(root) :] if full.startswith(root + os.sep) else full


# -- state the defaults keep between calls ---------------------------------------------------------


def load_state(call: Call, name: str, default: Any) -> Any:
    """Given a state name, return what an earlier call saved under <root>/stub-state/, else the default."""
    try:
        with open(os.path.join(call.root, "stub-state", name), "rb") as source:
            return marshal.load(source)
    except (OSError, EOFError, ValueError, TypeError):
        return default


def save_state(call: Call, name: str, value: Any) -> None:
    """Given a state name and plain data, save it under <root>/stub-state/ (atomically: calls may overlap)."""
    directory = os.path.join(call.root, "stub-state")
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{name}.{os.getpid()}")
    with open(partial, "wb") as target:
        marshal.dump(value, target)
    os.replace(partial, os.path.join(directory, name))


def out(text: str) -> None:
    sys.stdout.write(text)


def err(text: str) -> None:
    sys.stderr.write(text)


def main() -> int:
    script = os.path.abspath(sys.argv[0])
    name = os.path.basename(script)
    root = os.path.dirname(os.path.dirname(script))
    argv = [name, *sys.argv[1:]]
    if os.path.basename(os.path.dirname(script)) != "stubs-bin" or not os.path.isfile(
        os.path.join(root, "responses.json")
    ):
        err(f"sandbox stub: {script} is not inside a sandbox host's stubs-bin directory; nothing done\n")
        return REFUSED_OUTSIDE
    # sudo hands its stdin to the command it runs, so it must not consume it.
    stdin_bytes = 0 if name == "sudo" else read_stdin()
    session_pids = sshd_session_pids(root)
    record(
        root,
        {
            "time": time.time(),
            "argv": argv,
            "cwd": current_directory(),
            "user": os.environ.get("USER"),
            "stdin_bytes": stdin_bytes,
            "pid": os.getpid(),
            "session": session_pids[0] if session_pids else None,
            "env": {key: os.environ[key] for key in ENV_RECORDED if key in os.environ},
            # pm2 starts its daemon (writing ~/.pm2) when none runs: the oracle must know which it was.
            **({"pm2_daemon": pm2_daemon_running()} if name == "pm2" else {}),
        },
    )
    config = load_responses(root)
    call = Call(root, argv, stdin_bytes, str(config.get("profile", "zpro")))
    rule = select_rule(root, config.get("rules", []), argv)
    if rule is not None:
        status = apply_rule(call, rule, session_pids)
        # "default": true — the rule only adds its effects (e.g. a sleep that scales a real
        # duration for benchmarks); the command then answers as a healthy host would.
        if not rule.get("default") or status != 0:
            return status
    handler = DEFAULTS.get(name)
    return handler(call) if handler else 0


# -- recording -------------------------------------------------------------------------------------


def read_stdin(idle: float = 0.5) -> int:
    """Count stdin bytes until EOF, or until no data came for ``idle`` seconds (an open, silent pipe)."""
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
        total += len(data)


def current_directory() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "?"


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


# -- rules -----------------------------------------------------------------------------------------


def to_json(value: Any, compact: bool = False) -> str:
    """Given plain data (dict, list, str, int, float, bool, None), return JSON text, without importing json.

    ``compact`` leaves out the spaces after ',' and ':' (as Go and docker's ``{{json}}`` write it).
    """
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # not CPython: the slow, sure way
        import json

        return json.dumps(value, separators=(",", ":") if compact else None)
    comma, colon = (",", ":") if compact else (", ", ": ")
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return str(quote(value))
    if isinstance(value, list | tuple):
        return "[" + comma.join(to_json(item, compact) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + comma.join(f"{quote(str(key))}{colon}{to_json(item, compact)}" for key, item in value.items()) + "}"
        )
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def load_responses(root: str) -> dict[str, Any]:
    """Read the rules: hosts.py writes responses.json and a marshal copy that loads without importing json."""
    readable, fast = os.path.join(root, "responses.json"), os.path.join(root, "responses.marshal")
    try:
        readable_mtime = os.stat(readable).st_mtime_ns
    except FileNotFoundError:
        return {}
    try:
        if os.stat(fast).st_mtime_ns >= readable_mtime:
            with open(fast, "rb") as source:
                loaded = marshal.load(source)
            return loaded if isinstance(loaded, dict) else {}
    except (OSError, EOFError, ValueError, TypeError):
        pass
    import json  # responses.json edited by hand after set_responses: read it the slow way

    with open(readable, encoding="utf-8") as source:
        loaded = json.load(source)
    return loaded if isinstance(loaded, dict) else {}


def rule_matches(rule: dict[str, Any], argv: list[str]) -> bool:
    prefix = rule.get("prefix")
    if prefix is not None and argv[: len(prefix)] != list(prefix):
        return False
    if argv[0] == "sudo" and not (prefix and prefix[0] == "sudo"):
        return False
    regex = rule.get("regex")
    if regex is not None:
        import re

        if not re.search(regex, " ".join(argv)):
            return False
    return True


def select_rule(root: str, rules: list[dict[str, Any]], argv: list[str]) -> dict[str, Any] | None:
    for index, rule in enumerate(rules):
        if rule_matches(rule, argv) and (rule.get("times") is None or consume(root, index, int(rule["times"]))):
            return rule
    return None


def consume(root: str, index: int, times: int) -> bool:
    """Count one use of rule ``index``; return False once it has been used ``times`` times."""
    with open(os.path.join(root, "responses.lock"), "a+", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(root, "responses.counts")
        try:
            with open(path, "rb") as counts_file:
                counts = marshal.load(counts_file)
        except (OSError, EOFError, ValueError, TypeError):
            counts = {}
        used = int(counts.get(index, 0))
        if used >= times:
            return False
        counts[index] = used + 1
        with open(path, "wb") as counts_file:
            marshal.dump(counts, counts_file)
        return True


def apply_rule(call: Call, rule: dict[str, Any], session_pids: list[int]) -> int:
    files = rule.get("write_file")
    for spec in files if isinstance(files, list) else [files] if files else []:
        if not call.inside_root(spec["path"]):
            err(f"sandbox stub: refusing to write {spec['path']} outside the sandbox root {call.root}\n")
            return REFUSED_OUTSIDE
        directory = os.path.dirname(os.path.abspath(spec["path"]))
        os.makedirs(directory, exist_ok=True)
        with open(spec["path"], "w", encoding="utf-8") as target:
            target.write(spec.get("text", ""))
    if "stdout_file" in rule:
        with open(rule["stdout_file"], "rb") as source:
            sys.stdout.flush()
            sys.stdout.buffer.write(source.read())
    out(rule.get("stdout", ""))
    err(rule.get("stderr", ""))
    sys.stdout.flush()
    sys.stderr.flush()
    if rule.get("sleep"):
        time.sleep(float(rule["sleep"]))
    if rule.get("drop") == "all":
        # "all": like a reboot, every connection of this host dies, not only the caller's.
        session_pids = sshd_all_session_pids(call.root)
    if rule.get("drop"):
        import contextlib
        import signal

        # Kill the session's sshd processes: the TCP connection dies with no exit status sent,
        # exactly what a client sees when a VPS reboots or the network drops mid-command.
        for pid in session_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not session_pids:
            err("sandbox stub: drop rule, but no sandbox sshd session found to kill\n")
        return 255
    return int(rule.get("exit", 0))


# -- defaults that look like a healthy host --------------------------------------------------------


def options_and_words(args: list[str], with_value: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Split args into options and positional words, skipping the value of each option in with_value."""
    options: list[str] = []
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("-") and arg != "-":
            options.append(arg)
            skip = arg in with_value
        else:
            words.append(arg)
    return options, words


def pm2_apps(call: Call) -> dict[str, list[Any]]:
    """Return {app name: [status, restart count, pm_uptime ms]} of the deploy user's pm2 apps, as the last call left them.

    Apps nobody touched were started 30 s after the host booted (btime in <root>/proc/stat).
    """
    started = int((boot_time(call) + 30) * 1000)
    apps: dict[str, list[Any]] = {name: ["online", 0, started] for name, *_ in PM2_APPS}
    saved = load_state(call, "pm2", {})
    if isinstance(saved, dict):
        for name, value in saved.items():
            if name in apps:
                apps[name] = [*list(value)[:3], *apps[name][len(list(value)[:3]):]]
    return apps


def boot_time(call: Call) -> float:
    """Return the host's boot time (btime of <root>/proc/stat), else ten days ago."""
    try:
        with open(os.path.join(call.root, "proc", "stat"), encoding="utf-8") as source:
            for line in source:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return time.time() - 10 * 86400


def pm2_pid_file() -> str:
    """Return the pm2 daemon's pid file of the calling user (HOME is the user's home, as sudo -i sets it)."""
    return os.path.join(os.environ.get("HOME", ""), ".pm2", "pm2.pid")


def pm2_daemon_running() -> bool:
    """Return whether the calling user's pm2 daemon runs (its pid file names a live process)."""
    try:
        with open(pm2_pid_file()) as source:
            return os.path.isdir(f"/proc/{int(source.read().strip())}")
    except (OSError, ValueError):
        return False


def pm2(call: Call) -> int:
    if not call.args:
        return 0
    action = call.args[0]
    if not pm2_daemon_running():
        # Like the real pm2: any command starts the daemon first, writing ~/.pm2 (pid 1 stands in for it).
        os.makedirs(os.path.dirname(pm2_pid_file()), exist_ok=True)
        with open(pm2_pid_file(), "w") as target:
            target.write("1\n")
    # Like the real hosts: pm2 apps belong to the deploy user; root's pm2 list is empty.
    mine = call.profile == "zpro" and call.user not in ("", "root")
    apps = pm2_apps(call) if mine else {}
    if action in ("jlist", "prettylist"):
        listed = [app for app in PM2_APPS if app[0] in apps and apps[app[0]][0] != "deleted"]
        out(to_json([pm2_process(call, index, app, apps[app[0]]) for index, app in enumerate(listed)]) + "\n")
        return 0
    if action in ("stop", "restart", "reload", "start", "delete", "describe"):
        names = [name for name in call.args[1:] if not name.startswith("-")]
        for name in names:
            if name != "all" and (name not in apps or apps[name][0] == "deleted"):
                err(f"[PM2][ERROR] Process or Namespace {name} not found\n")
                return 1
        chosen = [name for name in apps if apps[name][0] != "deleted"] if "all" in names else names
        for name in chosen:
            if action == "stop":
                apps[name][0] = "stopped"
            elif action in ("restart", "reload"):
                apps[name] = ["online", int(apps[name][1]) + 1, int(time.time() * 1000)]
            elif action == "start":
                apps[name][0] = "online"
                apps[name][2] = int(time.time() * 1000)
            elif action == "delete":
                apps[name][0] = "deleted"
        if action != "describe":
            save_state(call, "pm2", apps)
        out(f"[PM2] Applying action {action}ProcessId on app [{' '.join(names)}]\n")
        out("".join(f"[PM2] [{name}] \u2713\n" for name in chosen))
        return 0
    if action == "save":
        out("[PM2] Saving current process list...\n[PM2] Successfully saved\n")
    return 0


def pm2_process(call: Call, index: int, app: tuple[str, str, str, str], state: list[Any]) -> dict[str, Any]:
    name, port, directory, script = app
    status, restarts, uptime = str(state[0]), int(state[1]), int(state[2])
    cwd = os.path.join(call.root, "home", "deployzdg", "zpro.io", directory)
    return {
        "pid": 4100 + index + 100 * restarts if status == "online" else 0,
        "name": name,
        "pm_id": index,
        "monit": {"memory": 180_000_000 if status == "online" else 0, "cpu": 1 if status == "online" else 0},
        "pm2_env": {
            "name": name,
            "status": status,
            "restart_time": restarts,
            "unstable_restarts": 0,
            "pm_uptime": uptime,
            "pm_cwd": cwd,
            "pm_exec_path": os.path.join(cwd, script),
            "exec_mode": "fork_mode",
            "PORT": port,
            "username": call.user,
        },
    }


def app_listening(call: Call, port: str) -> bool:
    """Given a TCP port on localhost, return whether something answers there (a Zpro app only while pm2 runs it)."""
    if call.profile != "zpro":
        return True
    names = [name for name, app_port, *_ in PM2_APPS if app_port == port]
    if not names:
        return True
    apps = pm2_apps(call)
    return all(apps[name][0] == "online" for name in names)


def block_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    text = text.upper().rstrip("B").rstrip("I") or "1"
    if text[-1] in units:
        return int(text[:-1] or "1") * units[text[-1]]
    return int(text)


def human(size_bytes: float, base: int = 1024) -> str:
    value = float(size_bytes)
    for unit in ("", "K", "M", "G", "T"):
        if value < base or unit == "T":
            return f"{value:.1f}{unit}" if unit and value < 10 else f"{value:.0f}{unit}"
        value /= base
    return str(size_bytes)


def df(call: Call) -> int:
    size_unit, human_base, posix, fields, paths = 1024, 0, False, None, []
    show_type = False
    index = 0
    while index < len(call.args):
        arg = call.args[index]
        if arg.startswith("--output"):
            every = "source,fstype,itotal,iused,iavail,ipcent,size,used,avail,pcent,file,target"
            fields = (arg.split("=", 1)[1] if "=" in arg else every).split(",")
        elif arg.startswith("--block-size="):
            size_unit = block_size(arg.split("=", 1)[1])
        elif arg == "-B" and index + 1 < len(call.args):
            index += 1
            size_unit = block_size(call.args[index])
        elif arg.startswith("-B"):
            size_unit = block_size(arg[2:])
        elif arg in ("--human-readable", "--si", "--portability", "--print-type"):
            human_base = {"--human-readable": 1024, "--si": 1000}.get(arg, human_base)
            posix = posix or arg == "--portability"
            show_type = show_type or arg == "--print-type"
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            for flag in arg[1:]:
                human_base = {"h": 1024, "H": 1000}.get(flag, human_base)
                size_unit = {"k": 1024, "m": 1024**2}.get(flag, size_unit)
                posix = posix or flag == "P"
                show_type = show_type or flag == "T"
        elif not arg.startswith("-"):
            paths.append(arg)
        index += 1
    chosen_fields = fields is not None
    if fields is None:
        fields = ["source", *(["fstype"] if show_type else []), "size", "used", "avail", "pcent", "target"]
    # A path inside the sandbox root is measured as the host sees it (<root>/boot is on /boot).
    missing = [path for path in paths if not os.path.exists(path)]
    for path in missing:
        err(f"df: {path}: No such file or directory\n")
    mounts = [(mount_of(call.host_path(path)), path) for path in paths if path not in missing]
    if not paths:
        mounts = [(mount, mount) for mount in FILESYSTEMS]
    elif not mounts:
        return 1
    if human_base:
        size_header = "Size"
    elif posix and size_unit == 1024:
        size_header = "1024-blocks"
    else:
        size_header = {1: "1B", 1024: "1K", 1024**2: "1M", 1024**3: "1G"}.get(size_unit, str(size_unit)) + "-blocks"
    headers = {
        "source": "Filesystem", "fstype": "Type", "size": size_header, "used": "Used",
        "avail": "Avail" if human_base or chosen_fields else "Available", "pcent": "Capacity" if posix else "Use%",
        "target": "Mounted on", "file": "File", "itotal": "Inodes", "iused": "IUsed", "iavail": "IFree", "ipcent": "IUse%",
    }  # fmt: skip
    rows = [[headers.get(field, field) for field in fields]]
    for mount, path in mounts:
        device, fstype, size_kib, used_kib = FILESYSTEMS[mount]
        amounts = {"size": size_kib * 1024, "used": used_kib * 1024, "avail": (size_kib - used_kib) * 1024}

        def show(amount: int) -> str:
            return human(amount, human_base) if human_base else str(-(-amount // size_unit))

        values = {
            "source": device, "fstype": fstype, "pcent": f"{-(-used_kib * 100 // size_kib)}%", "target": mount,
            "file": path, "itotal": "5242880", "iused": "524288", "iavail": "4718592", "ipcent": "10%",
            **{key: show(amount) for key, amount in amounts.items()},
        }  # fmt: skip
        rows.append([values.get(field, "-") for field in fields])
    widths = [max(len(row[column]) for row in rows) for column in range(len(fields))]
    left = {"source", "fstype", "target", "file"}  # like df: names left-aligned, numbers right-aligned
    for row in rows:
        cells = [
            cell.ljust(width) if field in left else cell.rjust(width)
            for cell, width, field in zip(row, widths, fields, strict=True)
        ]
        out(" ".join(cells).rstrip() + "\n")
    return 1 if missing else 0


def mount_of(path: str) -> str:
    """Given a host path, return the mount point of FILESYSTEMS it lies on."""
    return "/boot" if path == "/boot" or path.startswith("/boot/") else "/"


def free(call: Call) -> int:
    unit, human_readable, total_line = 1024, False, False
    for arg in call.args:
        flags = {"--bytes": "b", "--kibi": "k", "--mebi": "m", "--gibi": "g", "--human": "h", "--total": "t"}
        for flag in (
            [flags[arg]] if arg in flags else (arg[1:] if arg.startswith("-") and not arg.startswith("--") else "")
        ):
            unit = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}.get(flag, unit)
            human_readable = human_readable or flag == "h"
            total_line = total_line or flag == "t"

    def show(mebibytes: int) -> str:
        amount = mebibytes * 1024**2
        return (
            human(amount).replace("K", "Ki").replace("M", "Mi").replace("G", "Gi")
            if human_readable
            else str(amount // unit)
        )

    out(
        " " * 7
        + "".join(f"{title:>12}" for title in ("total", "used", "free", "shared", "buff/cache", "available"))
        + "\n"
    )
    for label, values in MEMORY.items():
        out(f"{label:<7}" + "".join(f"{show(value):>12}" for value in values) + "\n")
    if total_line:
        totals = [MEMORY["Mem:"][i] + MEMORY["Swap:"][i] for i in range(3)]
        out(f"{'Total:':<7}" + "".join(f"{show(value):>12}" for value in totals) + "\n")
    return 0


def compose_services(call: Call) -> list[tuple[str, str]]:
    """Return (service, image) pairs read from <root>/opt/stack/docker-compose.yml (the sandbox layout)."""
    services: list[tuple[str, str]] = []
    try:
        with open(os.path.join(call.root, *COMPOSE_DIR, "docker-compose.yml"), encoding="utf-8") as compose_file:
            lines = compose_file.read().splitlines()
    except OSError:
        return services
    in_services, current = False, None
    for line in lines:
        if line and not line[0].isspace():
            in_services = line.rstrip() == "services:"
            continue
        stripped = line.strip()
        if in_services and line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
            current = stripped[:-1]
            services.append((current, ""))
        elif in_services and current and stripped.startswith("image:"):
            services[-1] = (current, stripped.split(":", 1)[1].strip().strip("\"'"))
    return services


def digest(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def repository_of(reference: str) -> str:
    """Given an image reference, return it without tag or digest (a colon before the last '/' is a registry port)."""
    name = reference.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def image_id(reference: str) -> str:
    """Given an image reference, return the local image id it resolves to (sha256 of its config)."""
    return digest("image config " + reference)


def repo_digest(reference: str) -> str:
    """Given an image reference, return its registry digest reference (repository@sha256:...), unlike its id."""
    return f"{repository_of(reference)}@{digest('manifest ' + reference)}"


def has_healthcheck(reference: str) -> bool:
    return repository_of(reference).rsplit("/", 1)[-1] in ("postgres", "redis")


def containers(call: Call) -> list[tuple[str, str]]:
    """Return (container name, image reference) of every container on the host."""
    if call.profile == "zpro":
        return list(ZPRO_CONTAINERS)
    return [(f"{COMPOSE_DIR[-1]}-{service}-1", image) for service, image in compose_services(call)]


def container_records(call: Call) -> list[dict[str, Any]]:
    """Return what `docker inspect` shows of each container (the fields scripts read)."""
    project = COMPOSE_DIR[-1]
    working_dir = os.path.join(call.root, *COMPOSE_DIR)
    services = (
        {} if call.profile == "zpro" else {f"{project}-{service}-1": service for service, _ in compose_services(call)}
    )
    records = []
    overrides = load_state(call, "containers", {})
    for index, (name, reference) in enumerate(containers(call)):
        labels: dict[str, str] = {}
        if name in services:
            labels = {
                "com.docker.compose.config-hash": digest("config " + name)[7:], "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False", "com.docker.compose.project": project,
                "com.docker.compose.project.config_files": os.path.join(working_dir, "docker-compose.yml"),
                "com.docker.compose.project.working_dir": working_dir, "com.docker.compose.service": services[name],
            }  # fmt: skip
        state: dict[str, Any] = {
            "Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 3100 + index, "ExitCode": 0, "Error": "",
            "StartedAt": "2024-11-25T03:00:00.000000000Z", "FinishedAt": "0001-01-01T00:00:00Z",
        }  # fmt: skip
        if has_healthcheck(reference):
            state["Health"] = {"Status": "healthy", "FailingStreak": 0}
        container_id = digest("container " + name)[7:]
        record = {
            "Id": container_id, "Created": "2024-11-25T02:59:58.000000000Z", "Path": "docker-entrypoint.sh",
            "Name": "/" + name, "RestartCount": 0, "Image": image_id(reference), "State": state,
            "Config": {"Hostname": container_id[:12], "Image": reference, "Labels": labels},
            "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}},
        }  # fmt: skip
        records.append(scripted_container(record, overrides.get(name) if isinstance(overrides, dict) else None))
    return records


def scripted_container(record: dict[str, Any], changes: Any) -> dict[str, Any]:
    """Given a container record and a test's changes from stub-state "containers", return the record changed."""
    if not isinstance(changes, dict):
        return record
    if "Image" in changes:  # recreated from another image: new reference, new image id
        record["Config"]["Image"] = str(changes["Image"])
        record["Image"] = image_id(str(changes["Image"]))
    for key in ("Created", "RestartCount"):
        if key in changes:
            record[key] = changes[key]
    if "StartedAt" in changes:
        record["State"]["StartedAt"] = changes["StartedAt"]
    if "Status" in changes:
        record["State"]["Status"] = changes["Status"]
        record["State"]["Running"] = changes["Status"] == "running"
    if "Health" in changes:
        if changes["Health"] is None:
            record["State"].pop("Health", None)
        else:
            record["State"]["Health"] = {"Status": changes["Health"], "FailingStreak": 0 if changes["Health"] == "healthy" else 3}
    return record


def image_records(call: Call) -> list[dict[str, Any]]:
    """Return what `docker image inspect` shows of each image the containers run."""
    references = sorted({reference for _, reference in containers(call)})
    return [
        {"Id": image_id(reference), "RepoTags": [reference], "RepoDigests": [repo_digest(reference)],
         "Created": "2024-10-30T12:00:00.000000000Z", "Size": 250_000_000, "Architecture": "amd64", "Os": "linux"}
        for reference in references
    ]  # fmt: skip


def find_object(call: Call, target: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """Given a name, id (or a prefix of 4+ characters) or image reference, return the container or image it names."""
    if "container" in kinds:
        for record in container_records(call):
            if target in (record["Name"], record["Name"][1:]) or (len(target) >= 4 and record["Id"].startswith(target)):
                return record
    if "image" in kinds:
        bare = target[7:] if target.startswith("sha256:") else target
        for record in image_records(call):
            if target in record["RepoTags"] or target in record["RepoDigests"]:
                return record
            if len(bare) >= 4 and record["Id"][7:].startswith(bare):
                return record
    return None


def first_word(args: list[str], with_value: tuple[str, ...] = ()) -> int | None:
    """Return the index of the first positional argument, skipping options and the values of those in with_value."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return index + 1 if index + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return index
        index += 2 if arg in with_value else 1
    return None


def option_value(args: list[str], names: tuple[str, ...]) -> str | None:
    """Return the value of the first option in names (``--x VALUE`` or ``--x=VALUE``), else None."""
    for position, arg in enumerate(args):
        if arg in names and position + 1 < len(args):
            return args[position + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def has_flag(args: list[str], letter: str, long_name: str) -> bool:
    """Return whether a short flag (alone or in a cluster such as -aq) or its long form is given."""
    return any(
        arg == long_name or (arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]) for arg in args
    )


# -- Go templates (docker --format): fields, index, join, json -------------------------------------


def render_template(template: str, value: Any) -> str:
    """Given a docker --format template and an object, return the text; raise ValueError for a malformed one."""
    if template == "json":
        template = "{{json .}}"
    parts = []
    position = 0
    while True:
        start = template.find("{{", position)
        if start < 0:
            parts.append(template[position:])
            return "".join(parts)
        end = template.find("}}", start)
        if end < 0:
            raise ValueError("template: :1: unclosed action")
        parts.append(template[position:start])
        parts.append(template_action(template[start + 2 : end].strip("- \t"), value))
        position = end + 2


def template_action(action: str, value: Any) -> str:
    import shlex

    words = shlex.split(action)
    if not words:
        raise ValueError("template: :1: missing value for command")
    function, arguments = words[0], words[1:]
    if function.startswith("."):
        return go_text(field(value, function))
    if function == "json" and len(arguments) == 1:
        return to_json(field(value, arguments[0]), compact=True)
    if function == "join" and len(arguments) == 2:
        items = field(value, arguments[0])
        return arguments[1].join(go_text(item) for item in (items or []))
    if function == "index" and len(arguments) == 2:
        mapping = field(value, arguments[0])
        if isinstance(mapping, dict):
            return go_text(mapping.get(arguments[1], ""))  # Go: a missing map key gives the zero value, ""
        return go_text(None)
    if function in ("lower", "upper") and len(arguments) == 1:
        text = go_text(field(value, arguments[0]))
        return text.lower() if function == "lower" else text.upper()
    raise ValueError(f'template: :1: function "{function}" not defined')


def field(value: Any, path: str) -> Any:
    """Given an object and a path such as .Config.Image (or "."), return the value there (None when absent)."""
    for name in path.strip(".").split("."):
        if not name:
            continue
        value = value.get(name) if isinstance(value, dict) else None
    return value


def go_text(value: Any) -> str:
    """Given a value, return it as Go's text/template prints it."""
    if value is None:
        return "<no value>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(item)}" for key, item in sorted(value.items())) + "]"
    return str(value)


# -- commands inside containers --------------------------------------------------------------------


def inner_command(call: Call, command: list[str], stdin_bytes: int = 0) -> int:
    """Answer a command run inside a container (docker exec / docker compose exec) that got stdin_bytes on stdin."""
    if command[:1] in (["sh"], ["bash"]) and "-c" in command:
        import shlex

        command = shlex.split(command[command.index("-c") + 1]) if command.index("-c") + 1 < len(command) else []
    if not command:
        return 0
    name, options = command[0], command[1:]
    if name == "pg_isready":
        out("/var/run/postgresql:5432 - accepting connections\n")
    elif name == "pg_dump":
        sys.stdout.flush()
        sys.stdout.buffer.write(PG_DUMP_BYTES)
    elif name == "pg_restore":
        _, files = options_and_words(options, ("-U", "-d", "-f", "-h", "-p", "-n", "-t", "-j", "-L", "-F"))
        if not files and stdin_bytes == 0:
            # Nothing on stdin: `docker exec` without -i does not pass it on.
            err("pg_restore: error: input file is too short (read 0, expected 5)\n")
            return 1
        if "-l" in options or "--list" in options:
            out(pg_restore_listing())
    elif name == "psql":
        return psql_answer(call, options)
    elif name == "redis-cli":
        out("PONG\n" if any(word.lower() == "ping" for word in options) else "OK\n")
    return 0


def pg_restore_listing() -> str:
    return (
        ";\n; Archive created at 2024-11-27 03:00:00 UTC\n;     dbname: zpro\n;     Format: CUSTOM\n;\n"
        "215; 1259 16385 TABLE public Tenants zpro\n216; 1259 16392 TABLE public Contacts zpro\n"
        "3410; 0 16385 TABLE DATA public Tenants zpro\n3411; 0 16392 TABLE DATA public Contacts zpro\n"
    )


def psql_answer(call: Call, args: list[str]) -> int:
    """Answer psql: the database size, version(), SELECT 1 and the applied migrations (SequelizeMeta); others print nothing."""
    query, tuples_only, unaligned, index = None, False, False, 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--command="):
            query = arg.split("=", 1)[1]
        elif arg == "--command":
            index += 1
            query = args[index] if index < len(args) else ""
        elif arg in ("--tuples-only", "--no-align"):
            tuples_only = tuples_only or arg == "--tuples-only"
            unaligned = unaligned or arg == "--no-align"
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            letters = arg[1:]
            tuples_only = tuples_only or "t" in letters
            unaligned = unaligned or "A" in letters
            if letters[-1] in "cUdhpfovP":  # the option's value is the next word
                index += 1
                if letters[-1] == "c":
                    query = args[index] if index < len(args) else ""
        index += 1
    if query is None:
        return 0
    lowered = query.lower()
    if '"whatsapps"' in lowered:
        # The Zpro channel table: columns as the query names them (name, status, type), "|" between them.
        rows = load_state(call, "whatsapps", [["Atendimento", "CONNECTED", "baileys"], ["Vendas", "CONNECTED", "baileys"]])
        out("".join("|".join(str(value) for value in row) + "\n" for row in rows))
        return 0
    if '"sequelizemeta"' in lowered:
        # The applied migrations, as the stateful npx sequelize db:migrate left them.
        applied = list(load_state(call, "migrations", list(MIGRATIONS)))
        out("".join(f"{name}\n" for name in applied) if tuples_only else f"name\n{chr(10).join(applied)}\n")
        return 0
    if "pg_database_size" in lowered:
        column, answer = "pg_database_size", str(DATABASE_BYTES)
    elif "version()" in lowered:
        column, answer = (
            "version",
            "PostgreSQL 14.11 (Debian 14.11-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc",
        )
    elif lowered.strip().rstrip(";") == "select 1":
        column, answer = "?column?", "1"
    else:
        return 0
    if tuples_only:
        out(f"{answer}\n" if unaligned else f" {answer}\n\n")
    elif unaligned:
        out(f"{column}\n{answer}\n(1 row)\n")
    else:
        width = max(len(column), len(answer)) + 2
        out(f"{column.center(width)}\n{'-' * width}\n{answer.rjust(width - 1)} \n(1 row)\n\n")
    return 0


def psql(call: Call) -> int:
    return psql_answer(call, call.args)


# -- docker and docker compose ---------------------------------------------------------------------


def docker(call: Call) -> int:
    args = call.args
    if call.argv[0] == "docker-compose":
        return compose(call, args)
    if not args:
        return 0
    if args[0] == "exec":
        rest = args[1:]
        first = first_word(rest, ("-u", "--user", "-e", "--env", "-w", "--workdir", "--env-file", "--detach-keys"))
        if first is None:
            err('"docker exec" requires at least 2 arguments.\n')
            return 1
        if find_object(call, rest[first], ("container",)) is None:
            err(f"Error response from daemon: No such container: {rest[first]}\n")
            return 1
        # Without -i docker exec does not pass stdin on to the command.
        interactive = has_flag(rest[:first], "i", "--interactive")
        return inner_command(call, rest[first + 1 :], call.stdin_bytes if interactive else 0)
    if args[0] == "compose":
        return compose(call, args[1:])
    if args[0] == "ps" or args[:2] == ["container", "ls"]:
        return docker_ps(call, args[1:] if args[0] == "ps" else args[2:])
    if args[0] == "inspect":
        return docker_inspect(call, args[1:], ("container", "image"))
    if args[:2] == ["image", "inspect"]:
        return docker_inspect(call, args[2:], ("image",))
    if args[:2] == ["container", "inspect"]:
        return docker_inspect(call, args[2:], ("container",))
    if "prune" in args:
        out("Total reclaimed space: 0B\n")
    elif args[0] == "version":
        out("Client: Docker Engine - Community\n Version:           27.3.1\n")
    return 0


def ps_context(record: dict[str, Any]) -> dict[str, Any]:
    """Given a container record, return the fields `docker ps --format` offers."""
    health = record["State"].get("Health")
    return {
        "ID": record["Id"][:12], "Image": record["Config"]["Image"], "Command": '"docker-entrypoint.s\u2026"',
        "CreatedAt": "2024-11-25 02:59:58 +0000 UTC", "RunningFor": "3 days ago", "Ports": "",
        "State": record["State"]["Status"], "Status": "Up 3 days" + (f" ({health['Status']})" if health else ""),
        "Size": "0B", "Names": record["Name"][1:], "Mounts": "", "Networks": "bridge",
        "Labels": ",".join(f"{key}={value}" for key, value in sorted(record["Config"]["Labels"].items())),
    }  # fmt: skip


def docker_ps(call: Call, args: list[str]) -> int:
    records = container_records(call)  # every container runs: -a lists the same
    template = option_value(args, ("--format",))
    if has_flag(args, "q", "--quiet"):
        out("".join(record["Id"][:12] + "\n" for record in records))
        return 0
    if template:
        try:
            lines = [render_template(template, ps_context(record)) for record in records]
        except ValueError as error:
            err(f"{error}\n")
            return 1
        out("".join(line + "\n" for line in lines))
        return 0
    out("CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES\n")
    for record in records:
        context = ps_context(record)
        out(f"{context['ID']}   {context['Image']}   {context['Command']}   {context['RunningFor']}   "
            f"{context['Status']}      {context['Names']}\n")  # fmt: skip
    return 0


def docker_inspect(call: Call, args: list[str], kinds: tuple[str, ...]) -> int:
    template = option_value(args, ("-f", "--format")) or ""
    kind_option = option_value(args, ("--type",))
    if kind_option in ("container", "image"):
        kinds = (kind_option,)
    _, targets = options_and_words(args, ("-f", "--format", "--type"))
    found, missing = [], []
    for target in targets:
        record = find_object(call, target, kinds)
        if record is None:
            missing.append(target)
        else:
            found.append(record)
    try:
        if template:
            out("".join(render_template(template, record) + "\n" for record in found))
        else:
            import json

            out(json.dumps(found, indent=4) + "\n")
    except ValueError as error:
        err(f"{error}\n")
        return 1
    what = kinds[0] if len(kinds) == 1 else "object"
    for target in missing:
        err(f"Error: No such {what}: {target}\n")
    return 1 if missing else 0


def compose(call: Call, args: list[str]) -> int:
    global_options = (
        "-f",
        "--file",
        "-p",
        "--project-name",
        "--project-directory",
        "--env-file",
        "--profile",
        "--ansi",
        "--progress",
    )
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in global_options else 1
    if index >= len(args):
        return 0
    action, rest = args[index], args[index + 1 :]
    services = compose_services(call)
    names = [service for service, _ in services]
    project = COMPOSE_DIR[-1]
    as_json = "--format=json" in rest or any(
        option == "--format" and value == "json"
        for option, value in zip(rest, rest[1:], strict=False)  # noqa: RUF007 - no itertools import
    )
    if action == "config":
        if "--services" in rest:
            out("".join(f"{service}\n" for service in names))
        elif "--images" in rest:
            out("".join(f"{image}\n" for _, image in services))
        elif not ("-q" in rest or "--quiet" in rest):
            try:
                with open(os.path.join(call.root, *COMPOSE_DIR, "docker-compose.yml"), encoding="utf-8") as source:
                    text = source.read()
            except OSError:
                text = "services: {}\n"
            # Like the real command: the normalised model starts with the project name.
            out(("" if text.startswith("name:") else f"name: {project}\n") + text)
        return 0
    if action == "ps":
        project_containers = [record for record in container_records(call) if record["Config"]["Labels"]]
        if has_flag(rest, "q", "--quiet"):  # compose prints full ids
            out("".join(record["Id"] + "\n" for record in project_containers))
        elif as_json:  # docker compose v2.21+: one JSON object per line
            for record in project_containers:
                labels, health = record["Config"]["Labels"], record["State"].get("Health")
                status = "Up 3 days" + (f" ({health['Status']})" if health else "")
                out(to_json({"ID": record["Id"][:12], "Name": record["Name"][1:], "Service": labels["com.docker.compose.service"],
                             "Image": record["Config"]["Image"], "Project": project, "State": record["State"]["Status"],
                             "Health": health["Status"] if health else "", "ExitCode": 0, "Status": status}) + "\n")  # fmt: skip
        elif "--services" in rest:
            out("".join(f"{service}\n" for service in names))
        else:
            out("NAME   IMAGE   SERVICE   STATUS\n")
            out("".join(f"{project}-{service}-1   {image}   {service}   Up 3 days\n" for service, image in services))
        return 0
    if action == "images":
        records: list[dict[str, Any]] = []
        for service, image in services:
            repository, _, tag = image.partition(":")
            records.append({"ID": image_id(image), "ContainerName": f"{project}-{service}-1", "Repository": repository,
                            "Tag": tag or "latest", "Size": 250_000_000})  # fmt: skip
        if as_json:
            out(to_json(records) + "\n")
        else:
            out("CONTAINER   REPOSITORY   TAG   IMAGE ID   SIZE\n")
            out(
                "".join(
                    f"{r['ContainerName']}   {r['Repository']}   {r['Tag']}   {r['ID'][7:19]}   250MB\n"
                    for r in records
                )
            )
        return 0
    if action == "exec":
        first = first_word(rest, ("-u", "--user", "-e", "--env", "-w", "--workdir", "--index"))
        if first is None:
            err('"docker compose exec" requires at least 2 arguments\n')
            return 1
        if rest[first] not in names:
            err(f'service "{rest[first]}" is not running\n')
            return 1
        # -T only turns the TTY off: stdin is passed on.
        return inner_command(call, rest[first + 1 :], call.stdin_bytes)
    if action == "version":
        out("Docker Compose version v2.29.7\n")
        return 0
    _, chosen = options_and_words(rest, ("-t", "--timeout", "--wait-timeout", "--scale", "--pull"))
    unknown = [service for service in chosen if service not in names]
    if unknown:
        err(f"no such service: {unknown[0]}\n")
        return 1
    selected = [(service, image) for service, image in services if not chosen or service in chosen]
    if action == "pull":
        # compose v2 without a terminal: one line per service and step, on stderr.
        err("".join(f" {service} Pulling \n" for service, image in selected if image))
        err("".join(f" {service} Pulled \n" for service, image in selected if image))
    elif action == "up":
        err("".join(f" Container {project}-{service}-1  Running\n" for service, _ in selected))
    elif action in ("down", "restart", "stop", "start", "create", "rm"):
        verb = {"down": "Removed", "restart": "Started", "stop": "Stopped", "start": "Started", "create": "Created",
                "rm": "Removed"}[action]  # fmt: skip
        err("".join(f" Container {project}-{service}-1  {verb}\n" for service, _ in selected))
    return 0


def apt(call: Call) -> int:
    options, words = options_and_words(call.args, ("-o", "-c", "-t", "--option", "--config-file", "--target-release"))
    action = words[0] if words else ""
    simulate = any(
        option in ("--simulate", "--dry-run", "--just-print", "--no-act", "--recon")
        or (not option.startswith("--") and "s" in option[1:])
        for option in options
    )
    upgrades = (
        ("curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u8", "Debian-Security:12/stable-security"),
        ("libcurl4", "7.88.1-10+deb12u5", "7.88.1-10+deb12u8", "Debian-Security:12/stable-security"),
        ("openssl", "3.0.11-1~deb12u2", "3.0.15-1~deb12u1", "Debian:12.8/stable"),
    )
    if action == "update":
        out(
            "Hit:1 http://deb.debian.org/debian bookworm InRelease\nHit:2 http://deb.debian.org/debian-security bookworm-security InRelease\nReading package lists...\n"
        )
    elif action in ("upgrade", "dist-upgrade", "full-upgrade"):
        out(
            "Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n"
        )
        out("The following packages will be upgraded:\n  " + " ".join(name for name, *_ in upgrades) + "\n")
        out(f"{len(upgrades)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
        for name, old, new, origin in upgrades:
            out(f"Inst {name} [{old}] ({new} {origin} [amd64])\n" if simulate else f"Setting up {name} ({new}) ...\n")
        if simulate:
            out("".join(f"Conf {name} ({new} {origin} [amd64])\n" for name, _, new, origin in upgrades))
    elif action == "list" and "--upgradable" in options:
        out(
            "Listing...\n"
            + "".join(f"{n}/stable {new} amd64 [upgradable from: {old}]\n" for n, old, new, _ in upgrades)
        )
    return 0


def dpkg(call: Call) -> int:
    if "-l" in call.args or "--list" in call.args:
        out("Desired=Unknown/Install/Remove/Purge/Hold\n||/ Name Version Architecture Description\n")
        out("ii  openssl 3.0.11-1~deb12u2 amd64 Secure Sockets Layer toolkit\n")
    elif "--print-architecture" in call.args:
        out("amd64\n")
    return 0


def needrestart(call: Call) -> int:
    if "-b" in call.args:
        out(
            "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-28-amd64\nNEEDRESTART-KEXP: 6.1.0-28-amd64\nNEEDRESTART-KSTA: 1\n"
        )
    return 0


def systemctl(call: Call) -> int:
    options, words = options_and_words(call.args, ("-p", "--property", "--state", "-t", "--type"))
    action = words[0] if words else ""
    if action == "is-system-running":
        out("running\n")
    elif "--failed" in options or "--state=failed" in options or action == "--failed":
        if "--no-legend" not in options:  # with --no-legend and nothing failed, systemctl prints nothing
            out("  UNIT LOAD ACTIVE SUB DESCRIPTION\n\n0 loaded units listed.\n")
    elif action == "is-active":
        out("".join("active\n" for _ in words[1:]) or "active\n")
    elif action == "is-enabled":
        out("".join("enabled\n" for _ in words[1:]) or "enabled\n")
    elif action == "is-failed":
        out("active\n")
        return 1
    elif action == "show":
        # Every unit exists, is enabled and active, as on a stock host; one block per unit, blank line between.
        out("\n".join(f"Id={unit}\nUnitFileState=enabled\nActiveState=active\n" for unit in words[1:]))
    elif action == "status":
        for unit in words[1:]:
            out(
                f"* {unit} - {unit}\n     Loaded: loaded\n     Active: active (running) since Mon 2024-11-25 03:00:00 UTC\n"
            )
    elif action == "reboot":
        # The host "comes back" at once with a new boot id (it never goes down: sshd keeps running).
        boot_id = os.path.join(call.root, "proc", "sys", "kernel", "random", "boot_id")
        if os.path.exists(boot_id):
            hexits = os.urandom(16).hex()
            with open(boot_id, "w", encoding="utf-8") as target:
                target.write(f"{hexits[:8]}-{hexits[8:12]}-{hexits[12:16]}-{hexits[16:20]}-{hexits[20:]}\n")
        proc_stat = os.path.join(call.root, "proc", "stat")
        if os.path.exists(proc_stat):
            with open(proc_stat, "w", encoding="utf-8") as target:
                target.write(f"btime {int(time.time())}\n")
    return 0


def nginx(call: Call) -> int:
    if "-t" in call.args or "-T" in call.args:
        err("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n")
        err("nginx: configuration file /etc/nginx/nginx.conf test is successful\n")
    elif "-v" in call.args or "-V" in call.args:
        err("nginx version: nginx/1.22.1\n")
    return 0


CURL_VALUE_OPTIONS = (
    "-o", "--output", "-w", "--write-out", "-H", "--header", "-X", "--request", "-d", "--data", "-u", "--user",
    "-m", "--max-time", "--connect-timeout", "-A", "--user-agent", "-e", "--referer", "--retry", "-T", "-F",
)  # fmt: skip


def curl(call: Call) -> int:
    from urllib.parse import urlsplit

    options, words = options_and_words(call.args, CURL_VALUE_OPTIONS)
    write_out = option_value(call.args, ("-w", "--write-out"))
    output = option_value(call.args, ("-o", "--output"))
    silent = has_flag(options, "s", "--silent")
    show_error = has_flag(options, "S", "--show-error")
    url = urlsplit(words[0] if words and "://" in words[0] else "http://" + (words[0] if words else "localhost"))
    host = url.hostname or "localhost"
    port = url.port or (443 if url.scheme == "https" else 80)
    # A Zpro app's port answers only while pm2 runs it (after `pm2 stop` it refuses, as on a real host).
    listening = host not in ("localhost", "127.0.0.1", "::1") or app_listening(call, str(port))
    code = "200" if listening else "000"
    if listening and ("-I" in options or "--head" in options):
        out("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    elif listening and output is None:
        out('{"status":"ok"}\n')
    if write_out is not None:
        text = write_out.replace("%{http_code}", code).replace("%{response_code}", code)
        out(text.replace("\\n", "\n").replace("\\t", "\t"))
    if not listening:
        if not silent or show_error:
            err(f"curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n")
        return 7
    return 0


def migration_files() -> list[str]:
    """Return the migration files of the backend in the current directory (the defaults when it has none)."""
    try:
        return sorted(
            name for name in os.listdir(os.path.join(current_directory(), *MIGRATIONS_DIR)) if name.endswith(".js")
        )
    except OSError:
        return list(MIGRATIONS)


def npx(call: Call) -> int:
    if "sequelize" in call.args or "sequelize-cli" in call.args:
        out("\nSequelize CLI [Node: 20.18.0, CLI: 6.6.2, ORM: 6.37.3]\n\n")
        migrations = migration_files()
        applied = list(load_state(call, "migrations", list(MIGRATIONS)))
        if "db:migrate:status" in call.args:
            out('Loaded configuration file "dist/config/database.js".\nUsing environment "production".\n')
            out("".join(f"{'up' if name in applied else 'down'} {name}\n" for name in migrations))
        elif "db:migrate" in call.args:
            out('Loaded configuration file "dist/config/database.js".\nUsing environment "production".\n')
            pending = [name for name in migrations if name not in applied]
            if not pending:
                out("No migrations were executed, database schema was already up to date.\n")
            for name in pending:
                out(f"== {name[:-3]}: migrating =======\n== {name[:-3]}: migrated (0.031s)\n\n")
            save_state(call, "migrations", applied + pending)
    return 0


def read_package(directory: str) -> dict[str, Any] | None:
    """Return the package.json of a directory, or None when it has none (or it does not parse)."""
    import json

    try:
        with open(os.path.join(directory, "package.json"), encoding="utf-8") as source:
            package = json.load(source)
    except (OSError, ValueError):
        return None
    return package if isinstance(package, dict) else None


def write_inside(call: Call, path: str, text: str) -> None:
    """Write a file the real command would leave behind, only when it lies inside the sandbox root."""
    if call.inside_root(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as target:
            target.write(text)


def npm(call: Call) -> int:
    options, words = options_and_words(call.args, ("--prefix", "-w", "--workspace", "--loglevel"))
    directory = current_directory()
    package = read_package(directory)
    if "-v" in options or "--version" in options:
        out("10.8.2\n")
    elif words[:1] in (["install"], ["i"], ["ci"], ["update"]):
        if "--force" in options:
            err("npm warn using --force Recommended protections disabled.\n")
        if package is not None:
            write_inside(call, os.path.join(directory, "node_modules", ".package-lock.json"),
                         to_json({"name": package.get("name", ""), "lockfileVersion": 3, "packages": {}}) + "\n")  # fmt: skip
        out("\nadded 1180 packages, and audited 1181 packages in 3s\n\nfound 0 vulnerabilities\n")
    elif words[:1] in (["run"], ["run-script"]) and len(words) > 1:
        if package is None:
            err(f"npm error code ENOENT\nnpm error syscall open\nnpm error path {directory}/package.json\n"
                "npm error enoent Could not read package.json\n")  # fmt: skip
            return 254
        scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
        script = scripts.get(words[1]) if scripts else None
        if script is None:
            err(
                f'npm error Missing script: "{words[1]}"\nnpm error\nnpm error To see a list of scripts, run:\nnpm error   npm run\n'
            )
            return 1
        out(f"\n> {package.get('name', '')}@{package.get('version', '')} {words[1]}\n> {script}\n\n")
        if "quasar build" in str(script):
            index = f"<!doctype html><title>Zpro {package.get('version', '')}</title>\n"
            write_inside(call, os.path.join(directory, "dist", "spa", "index.html"), index)
            out(" Build succeeded\n")
    return 0


def node(call: Call) -> int:
    if "-v" in call.args or "--version" in call.args:
        out("v20.18.0\n")
    return 0


def redis_cli(call: Call) -> int:
    out("PONG\n" if any(word.lower() == "ping" for word in call.args) else "OK\n")
    return 0


def pg_dump(call: Call) -> int:
    target = None
    for position, arg in enumerate(call.args):
        if arg == "-f" and position + 1 < len(call.args):
            target = call.args[position + 1]
        elif arg.startswith("--file="):
            target = arg.split("=", 1)[1]
    if target is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(PG_DUMP_BYTES)
        return 0
    if not call.inside_root(target):
        err(f"sandbox stub: refusing to write {target} outside the sandbox root {call.root}\n")
        return REFUSED_OUTSIDE
    with open(target, "wb") as dump:
        dump.write(PG_DUMP_BYTES)
    return 0


def pg_restore(call: Call) -> int:
    return inner_command(call, ["pg_restore", *call.args], call.stdin_bytes)


def unzip(call: Call) -> int:
    import zipfile

    flags, archive, destination = "", None, None
    index = 0
    while index < len(call.args):
        arg = call.args[index]
        if arg == "-d" and index + 1 < len(call.args):
            index += 1
            destination = call.args[index]
        elif arg.startswith("-d") and len(arg) > 2:
            destination = arg[2:]
        elif arg.startswith("-") and archive is None:
            flags += arg[1:]
        elif archive is None:
            archive = arg
        index += 1
    if archive is None:
        err("UnZip 6.00 (sandbox stub): no archive given\n")
        return 10
    if not os.path.isfile(archive) and os.path.isfile(archive + ".zip"):
        archive += ".zip"
    try:
        bundle = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile):
        err(f"unzip:  cannot find or open {archive}, {archive}.zip or {archive}.ZIP.\n")
        return 9
    with bundle:
        if "l" in flags:
            out("".join(f"{info.file_size:>9}  {info.filename}\n" for info in bundle.infolist()))
            return 0
        if "t" in flags:
            out(f"No errors detected in compressed data of {archive}.\n")
            return 0
        target = destination or "."
        if not call.inside_root(target):
            err(f"sandbox stub: refusing to unpack into {target} outside the sandbox root {call.root}\n")
            return REFUSED_OUTSIDE
        if "q" not in flags:
            out(f"Archive:  {archive}\n")
        for info in bundle.infolist():
            if info.filename.startswith("/") or ".." in info.filename.split("/"):
                err(f"warning:  skipped {info.filename!r} (absolute or parent path)\n")
                continue
            bundle.extract(info, target)
            if "q" not in flags:
                out(f"  inflating: {os.path.join(target, info.filename)}\n")
    return 0


def ufw(call: Call) -> int:
    if call.args[:1] == ["status"]:
        out(
            "Status: active\n\nTo                         Action      From\n--                         ------      ----\n"
        )
        out("22/tcp                     ALLOW       Anywhere\n80,443/tcp                 ALLOW       Anywhere\n")
    return 0


def sudo(call: Call) -> int:
    """Run the command as if sudo had switched user: same uid (never switch), USER set to the target."""
    args, target, index = call.args, "root", 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-"):
            break
        if arg.startswith("--user="):
            target = arg.split("=", 1)[1]
        elif arg in ("-u", "--user") or (not arg.startswith("--") and arg.endswith("u")):
            index += 1
            target = args[index] if index < len(args) else target
        index += 1
    command = args[index:]
    if not command:
        return 0
    # sudo -i sets HOME to the target's home: inside the sandbox root, as the layout has it.
    home = os.path.join(call.root, "root") if target == "root" else os.path.join(call.root, "home", target)
    environment = dict(os.environ, USER=target, LOGNAME=target, HOME=home, SUDO_USER=call.user or "root")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, environment)
    except OSError as error:
        err(f"sudo: {command[0]}: {error.strerror}\n")
    return 127


def exit_one(call: Call) -> int:
    """fuser, lsof, pkill, killall: report "nothing found", as the real ones do on an idle host."""
    return 1


DEFAULTS = {
    "pm2": pm2,
    "df": df,
    "free": free,
    "docker": docker,
    "docker-compose": docker,
    "apt-get": apt,
    "apt": apt,
    "dpkg": dpkg,
    "needrestart": needrestart,
    "systemctl": systemctl,
    "nginx": nginx,
    "curl": curl,
    "npx": npx,
    "npm": npm,
    "node": node,
    "redis-cli": redis_cli,
    "pg_dump": pg_dump,
    "pg_restore": pg_restore,
    "psql": psql,
    "unzip": unzip,
    "ufw": ufw,
    "sudo": sudo,
    "fuser": exit_one,
    "lsof": exit_one,
    "pkill": exit_one,
    "killall": exit_one,
}


def run() -> None:
    """Entry point: run the stub for sys.argv and exit with its status."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        status = 141
    sys.exit(status)


if __name__ == "__main__":
    run()
