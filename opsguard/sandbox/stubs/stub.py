#!/usr/bin/env python3
"""opsguard sandbox stub: stands in for one system command on a loopback test host.

opsguard/sandbox/hosts.py installs this file as <base>/stub.py with the test interpreter in its
shebang and links it as <root>/stubs-bin/NAME for every name in ``hosts.STUB_NAMES``; that
directory comes first in the sandbox sshd's PATH. Each call:

1. appends one JSON line to <root>/journal.jsonl under an exclusive lock, fsynced:
   {"time", "argv", "cwd", "user", "stdin_bytes", "pid", "session"};
2. answers per the first matching rule in <root>/responses.json, else with a default that looks
   like a healthy real host (so a playbook run succeeds).

A rule: {"prefix": [argv...]} and/or {"regex": "..."} (searched in the space-joined argv), an
optional "times": N (the rule applies N times, then is skipped), and what to do: "write_file"
{path, text} (or a list), "stdout", "stdout_file", "stderr", "sleep" (seconds), "drop": true
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
        full = os.path.realpath(os.path.join(os.getcwd(), path))
        return full == os.path.realpath(self.root) or full.startswith(os.path.realpath(self.root) + os.sep)


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
        },
    )
    config = load_responses(root)
    call = Call(root, argv, stdin_bytes, str(config.get("profile", "zpro")))
    rule = select_rule(root, config.get("rules", []), argv)
    if rule is not None:
        return apply_rule(call, rule, session_pids)
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


# -- rules -----------------------------------------------------------------------------------------


def to_json(value: Any) -> str:
    """Given plain data (dict, list, str, int, float, bool, None), return JSON text, without importing json."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # not CPython: the slow, sure way
        import json

        return json.dumps(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return str(quote(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote(str(key))}: {to_json(item)}" for key, item in value.items()) + "}"
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


def pm2(call: Call) -> int:
    if not call.args:
        return 0
    action = call.args[0]
    # Like the real hosts: pm2 apps belong to the deploy user; root's pm2 list is empty.
    apps = PM2_APPS if call.profile == "zpro" and call.user not in ("", "root") else ()
    if action in ("jlist", "prettylist"):
        out(to_json([pm2_process(call, index, app) for index, app in enumerate(apps)]) + "\n")
        return 0
    if action in ("stop", "restart", "reload", "delete", "describe"):
        known = {app[0] for app in apps} | {"all"}
        for name in call.args[1:]:
            if not name.startswith("-") and name not in known:
                err(f"[PM2][ERROR] Process or Namespace {name} not found\n")
                return 1
        out(f"[PM2] Applying action {action}ProcessId on app [{' '.join(call.args[1:])}]\n")
        return 0
    if action == "save":
        out("[PM2] Saving current process list...\n[PM2] Successfully saved\n")
    return 0


def pm2_process(call: Call, index: int, app: tuple[str, str, str, str]) -> dict[str, Any]:
    name, port, directory, script = app
    cwd = os.path.join(call.root, "home", "deployzdg", "zpro.io", directory)
    return {
        "pid": 4100 + index,
        "name": name,
        "pm_id": index,
        "monit": {"memory": 180_000_000, "cpu": 1},
        "pm2_env": {
            "name": name,
            "status": "online",
            "restart_time": 0,
            "unstable_restarts": 0,
            "pm_uptime": int((time.time() - 86400) * 1000),
            "pm_cwd": cwd,
            "pm_exec_path": os.path.join(cwd, script),
            "exec_mode": "fork_mode",
            "PORT": port,
            "username": call.user,
        },
    }


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
    mounts = [("/boot" if path.startswith("/boot") else "/", path) for path in paths] or [(m, m) for m in FILESYSTEMS]
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
    return 0


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
        with open(os.path.join(call.root, "opt", "stack", "docker-compose.yml"), encoding="utf-8") as compose:
            lines = compose.read().splitlines()
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


def containers(call: Call) -> list[tuple[str, str]]:
    if call.profile == "zpro":
        return list(ZPRO_CONTAINERS)
    return [(f"stack-{service}-1", image) for service, image in compose_services(call)]


def inner_command(call: Call, command: list[str]) -> int:
    """Answer a command run inside a container (docker exec / docker compose exec)."""
    if command[:1] in (["sh"], ["bash"]) and "-c" in command:
        import shlex

        command = shlex.split(command[-1])
    if not command:
        return 0
    name, options = command[0], command[1:]
    if name == "pg_isready":
        out("/var/run/postgresql:5432 - accepting connections\n")
    elif name == "pg_dump":
        sys.stdout.flush()
        sys.stdout.buffer.write(PG_DUMP_BYTES)
    elif name == "pg_restore" and ("-l" in options or "--list" in options):
        out(pg_restore_listing())
    elif name == "redis-cli":
        out("PONG\n" if any(word.lower() == "ping" for word in options) else "OK\n")
    return 0


def pg_restore_listing() -> str:
    return (
        ";\n; Archive created at 2024-11-27 03:00:00 UTC\n;     dbname: zpro\n;     Format: CUSTOM\n;\n"
        "215; 1259 16385 TABLE public Tenants zpro\n216; 1259 16392 TABLE public Contacts zpro\n"
        "3410; 0 16385 TABLE DATA public Tenants zpro\n3411; 0 16392 TABLE DATA public Contacts zpro\n"
    )


def docker(call: Call) -> int:
    args = call.args
    if call.argv[0] == "docker-compose":
        return compose(call, args)
    if not args:
        return 0
    if args[0] == "exec":
        _, words = options_and_words(args[1:], ("-u", "--user", "-e", "--env", "-w", "--workdir", "--env-file"))
        return inner_command(call, args[args.index(words[0]) + 1 :] if words else [])
    if args[0] == "compose":
        return compose(call, args[1:])
    if args[0] == "ps":
        names = containers(call)
        if "--format" in " ".join(args):
            out("".join(f"{name}\n" for name, _ in names))
        else:
            out("CONTAINER ID   IMAGE   STATUS       NAMES\n")
            out("".join(f"{digest(name)[7:19]}   {image}   Up 3 days   {name}\n" for name, image in names))
        return 0
    if args[0] == "inspect" or args[:2] in (["image", "inspect"], ["container", "inspect"]):
        return docker_inspect(call, args[1:] if args[0] == "inspect" else args[2:])
    if "prune" in args:
        out("Total reclaimed space: 0B\n")
    return 0


def docker_inspect(call: Call, args: list[str]) -> int:
    _, targets = options_and_words(args, ("-f", "--format", "--type"))
    template = ""
    for position, arg in enumerate(args):
        if arg in ("-f", "--format") and position + 1 < len(args):
            template = args[position + 1]
        elif arg.startswith("--format="):
            template = arg.split("=", 1)[1]
    targets = [target for target in targets if target != template]
    images = dict(containers(call))
    for target in targets:
        image = images.get(target, target)
        if not template:
            state = {"Status": "running", "Running": True, "Health": {"Status": "healthy"}}
            out(to_json([{"Id": digest(target)[7:], "Name": "/" + target, "State": state,
                             "Config": {"Image": image}, "RepoDigests": [f"{image.split(':')[0]}@{digest(image)}"]}]) + "\n")  # fmt: skip
        elif "RepoDigests" in template:
            out(f"{image.split(':')[0]}@{digest(image)}\n")
        elif "Health" in template:
            out("healthy\n")
        elif "Status" in template:
            out("running\n")
        elif "Running" in template:
            out("true\n")
        elif "Image" in template or ".Id" in template:
            out(digest(image) + "\n")
        else:
            out("\n")
    return 0


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
    as_json = "--format=json" in rest or any(
        option == "--format" and value == "json"
        for option, value in zip(rest, rest[1:], strict=False)  # noqa: RUF007 - no itertools import
    )
    if action == "config":
        if "--services" in rest:
            out("".join(f"{service}\n" for service, _ in services))
        elif "--images" in rest:
            out("".join(f"{image}\n" for _, image in services))
        elif not ("-q" in rest or "--quiet" in rest):
            try:
                with open(os.path.join(call.root, "opt", "stack", "docker-compose.yml"), encoding="utf-8") as source:
                    out(source.read())
            except OSError:
                out("services: {}\n")
        return 0
    if action == "ps":
        if as_json:  # docker compose v2.21+: one JSON object per line
            for service, image in services:
                healthy = "healthy" if "postgres" in image else ""
                out(to_json({"ID": digest(service)[7:19], "Name": f"stack-{service}-1", "Service": service, "Image": image,
                                "Project": "stack", "State": "running", "Health": healthy, "ExitCode": 0,
                                "Status": "Up 3 days" + (" (healthy)" if healthy else "")}) + "\n")  # fmt: skip
        elif "--services" in rest:
            out("".join(f"{service}\n" for service, _ in services))
        else:
            out("NAME   IMAGE   SERVICE   STATUS\n")
            out("".join(f"stack-{service}-1   {image}   {service}   Up 3 days\n" for service, image in services))
        return 0
    if action == "images":
        records: list[dict[str, Any]] = []
        for service, image in services:
            repository, _, tag = image.partition(":")
            records.append({"ID": digest(image), "ContainerName": f"stack-{service}-1", "Repository": repository,
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
        _, words = options_and_words(rest, ("-u", "--user", "-e", "--env", "-w", "--workdir", "--index"))
        return inner_command(call, rest[rest.index(words[0]) + 1 :] if words else [])
    if action == "version":
        out("Docker Compose version v2.29.7\n")
    elif action in ("pull", "up", "down", "restart", "stop", "start", "create"):
        err("".join(f" Container stack-{service}-1  {action} done\n" for service, _ in services))
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
        out("  UNIT LOAD ACTIVE SUB DESCRIPTION\n\n0 loaded units listed.\n")
    elif action == "is-active":
        out("".join("active\n" for _ in words[1:]) or "active\n")
    elif action == "is-enabled":
        out("".join("enabled\n" for _ in words[1:]) or "enabled\n")
    elif action == "is-failed":
        out("active\n")
        return 1
    elif action == "status":
        for unit in words[1:]:
            out(
                f"* {unit} - {unit}\n     Loaded: loaded\n     Active: active (running) since Mon 2024-11-25 03:00:00 UTC\n"
            )
    return 0


def nginx(call: Call) -> int:
    if "-t" in call.args or "-T" in call.args:
        err("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n")
        err("nginx: configuration file /etc/nginx/nginx.conf test is successful\n")
    elif "-v" in call.args or "-V" in call.args:
        err("nginx version: nginx/1.22.1\n")
    return 0


def curl(call: Call) -> int:
    text = " ".join(call.args)
    if "%{http_code}" in text or "%{response_code}" in text:
        out("200")
    elif "-I" in call.args or "--head" in call.args:
        out("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    elif not ("-o" in call.args or "--output" in call.args):
        out('{"status":"ok"}\n')
    return 0


def npx(call: Call) -> int:
    if "sequelize" in call.args or "sequelize-cli" in call.args:
        out("\nSequelize CLI [Node: 20.18.0, CLI: 6.6.2, ORM: 6.37.3]\n\n")
        if "db:migrate:status" in call.args:
            out('Loaded configuration file "dist/config/database.js".\n')
            out("".join(f"up {migration}\n" for migration in MIGRATIONS))
        elif "db:migrate" in call.args:
            out("No migrations were executed, database schema was already up to date.\n")
    return 0


def npm(call: Call) -> int:
    options, words = options_and_words(call.args)
    if "-v" in options or "--version" in options:
        out("10.8.2\n")
    elif words[:1] in (["install"], ["i"], ["ci"]):
        out("\nup to date, audited 1180 packages in 3s\n")
    elif words[:1] == ["run"] and len(words) > 1:
        out(f"\n> {words[1]}\n> quasar build\n\n Build succeeded\n")
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
    if "-l" in call.args or "--list" in call.args:
        out(pg_restore_listing())
    return 0


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
    environment = dict(os.environ, USER=target, LOGNAME=target, SUDO_USER=call.user or "root")
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
