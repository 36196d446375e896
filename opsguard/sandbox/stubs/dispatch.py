"""The entry point: record the call, apply the first matching rule, else answer with the command's fake.

``run()`` is what the launcher calls. The command is argv[0]'s name (the link in stubs-bin);
``FAKES`` names the module and function that answer it, imported only when that command runs.
A name in hosts.STUB_NAMES that has no fake (reboot, certbot, apt-mark, ...) is journaled and
exits 0 silently, as its real program does on a healthy host; so does a fake for a subcommand it
does not model.

A fake module may also define:

- ``CONSUMES_STDIN = False``: leave stdin unread, for a command that hands it on (sudo);
- ``journal_fields() -> dict``: fields added to the call's journal record (pm2: its daemon).
"""

from __future__ import annotations

import os
import sys
import time

from .core import REFUSED_OUTSIDE, Call, current_directory, err
from .recording import ENV_RECORDED, read_stdin, record, sshd_session_pids
from .rules import apply_rule, load_responses, select_rule

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# command name -> (module in this package, function): the fake that answers when no rule does.
FAKES: dict[str, tuple[str, str]] = {
    "apt-get": ("fake_apt", "apt"),
    "apt": ("fake_apt", "apt"),
    "dpkg": ("fake_apt", "dpkg"),
    "needrestart": ("fake_apt", "needrestart"),
    "systemctl": ("fake_systemctl", "systemctl"),
    "pm2": ("fake_pm2", "pm2"),
    "docker": ("fake_docker", "docker"),
    "docker-compose": ("fake_compose", "docker_compose"),
    "npm": ("fake_node", "npm"),
    "npx": ("fake_node", "npx"),
    "node": ("fake_node", "node"),
    "nginx": ("fake_nginx", "nginx"),
    "redis-cli": ("fake_redis", "redis_cli"),
    "psql": ("fake_postgres", "psql"),
    "pg_dump": ("fake_postgres", "pg_dump"),
    "pg_restore": ("fake_postgres", "pg_restore"),
    "curl": ("fake_curl", "curl"),
    "ufw": ("fake_ufw", "ufw"),
    "df": ("fake_df_free", "df"),
    "free": ("fake_df_free", "free"),
    "fuser": ("fake_processes", "nothing_found"),
    "lsof": ("fake_processes", "nothing_found"),
    "pkill": ("fake_processes", "nothing_found"),
    "killall": ("fake_processes", "nothing_found"),
    "sudo": ("fake_sudo", "sudo"),
    "unzip": ("fake_unzip", "unzip"),
    "base64": ("fake_base64", "base64"),
}


def fake_module(name: str) -> ModuleType | None:
    """Given a command name, import and return the module of its fake; return None if it has none."""
    entry = FAKES.get(name)
    if entry is None:
        return None
    # A relative import by the builtin (level 1: this package): importlib itself would cost start-up time.
    return __import__(entry[0], globals(), None, (entry[1],), 1)


def main() -> int:
    """Record this call, then answer it by the first matching rule or the command's fake; return the exit status."""
    script = os.path.abspath(sys.argv[0])
    name = os.path.basename(script)
    root = os.path.dirname(os.path.dirname(script))
    argv = [name, *sys.argv[1:]]
    if os.path.basename(os.path.dirname(script)) != "stubs-bin" or not os.path.isfile(
        os.path.join(root, "responses.json")
    ):
        err(f"sandbox stub: {script} is not inside a sandbox host's stubs-bin directory; nothing done\n")
        return REFUSED_OUTSIDE
    module = fake_module(name)
    stdin_bytes = read_stdin() if getattr(module, "CONSUMES_STDIN", True) else 0
    session_pids = sshd_session_pids(root)
    journal_fields = getattr(module, "journal_fields", None)
    entry: dict[str, Any] = {
        "time": time.time(),
        "argv": argv,
        "cwd": current_directory(),
        "user": os.environ.get("USER"),
        "stdin_bytes": stdin_bytes,
        "pid": os.getpid(),
        "session": session_pids[0] if session_pids else None,
        "env": {key: os.environ[key] for key in ENV_RECORDED if key in os.environ},
    }
    record(root, {**entry, **(journal_fields() if journal_fields else {})})
    config = load_responses(root)
    call = Call(root, argv, stdin_bytes, str(config.get("profile", "zpro")))
    rule = select_rule(root, config.get("rules", []), argv)
    if rule is not None:
        status = apply_rule(call, rule, session_pids)
        # "default": true — the rule only adds its effects (e.g. a sleep that scales a real
        # duration for benchmarks); the command then answers as a healthy host would.
        if not rule.get("default") or status != 0:
            return status
    if module is None:
        return 0
    status = getattr(module, FAKES[name][1])(call)
    return int(status)


def run() -> None:
    """Entry point: run the stub for sys.argv and exit with its status."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        status = 141
    sys.exit(status)
