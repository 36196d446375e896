"""Rules: the answers a test sets with ``SandboxHosts.set_responses``, tried before any fake answers.

The rules live in <root>/responses.json (and a marshal copy that loads without importing json);
the first rule that matches the call applies. A rule: {"prefix": [argv...]} and/or {"regex": "..."}
(searched in the space-joined argv), an optional "times": N (the rule applies N times, then is
skipped), and what to do:

- "write_file": {path, text} (or a list of them), only inside the sandbox root;
- "stdout_file" (a file whose bytes are printed), "stdout", "stderr";
- "sleep": seconds;
- "drop": true SIGKILLs this SSH session's sshd processes, so the client sees the connection die
  mid-command; "drop": "all" ends every connection of the host, as a reboot does;
- "exit": the status (default 0);
- "default": true: the rule only adds its effects (a sleep that scales a real duration, say), then
  the command answers as its fake does.

Rules never match a `sudo` call unless their prefix starts with "sudo": sudo runs the inner
command, which is matched on its own. hosts.RULE_KEYS lists these keys; set_responses refuses others.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import sys
import time

from .core import REFUSED_OUTSIDE, Call, err, out, out_bytes
from .recording import sshd_all_session_pids

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
    """Given a rule and the call's argv, return whether the rule's prefix and regex both match."""
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
    """Given the rules and the call's argv, return the first rule that matches and has uses left, else None."""
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
    """Given a call, its rule and this session's sshd pids, do what the rule says; return the exit status."""
    files = rule.get("write_file")
    if rule.get("drop") == "all":
        # Like a reboot: /run is a tmpfs, so the host comes back without opsguard's remote lock (the
        # files a rule writes land on the fresh /run, as if written after the host came back).
        import shutil

        run_lock = os.path.join(call.root, "run", "lock")
        for entry in os.listdir(run_lock) if os.path.isdir(run_lock) else []:
            shutil.rmtree(os.path.join(run_lock, entry), ignore_errors=True)
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
            out_bytes(source.read())
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
