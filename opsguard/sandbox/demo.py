"""`make demo`: the whole guarded upgrade against the built-in sandbox, in under a minute.

It brings the sandbox up (simulated Vultr + Hostinger on 127.0.0.1, three real sshd hosts on
127.0.0.2-4 whose system commands are recording stubs), runs the real `opsguard` CLI the way an
operator would, checks that each command ended as it should, and tears everything down even on
failure. Scenario: chat's upgrade succeeds; ia's provider backups are stale (backup-check fails);
chat2's snapshot never completes (the update is refused and the host's journal shows nothing changed).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from opsguard.ledger import Ledger
from opsguard.output import is_terminal, paint
from opsguard.sandbox.hosts import read_sessions
from opsguard.sandbox.journal import session_problem

# What the demo changes in the default scenario, and why.
DEMO_SCENARIO = {
    "vultr": {"snapshot_seconds": 2.0},  # long enough to see the live wait
    "hostinger": {
        "snapshot_seconds": 1.5,
        "faults": {"snapshot": {"1001": "stuck"}},  # chat2: the snapshot never completes -> refusal
        "vms": [{"id": 1002, "backups": ["9d", "16d"]}],  # ia: newest backup older than max_age 8d
    },
}
# Short snapshot waits; the playbook waits (stable_for, poll_every...) are short in the sandbox inventory's vars.
DEMO_SETTINGS = {"snapshot_timeout": "6s", "snapshot_poll": "0.5s"}


def heading(text: str) -> None:
    """Given a heading, print it so it stands out between commands."""
    print("\n" + paint(f"== {text}", "bold"), flush=True)


def make_release(directory: Path) -> Path:
    """Given a directory, write a sample Zpro release archive (update.zip) there and return its path."""
    path = directory / "update.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("backend/package.json", json.dumps(
            {"name": "zpro-backend", "version": "2.0.0", "scripts": {"build": "tsc", "start": "node dist/server.js"}}))
        archive.writestr("backend/dist/server.js", "console.log('zpro backend 2.0.0')\n")
        archive.writestr("backend/dist/database/migrations/20250101000000-add-flow-builder.js",
                         "module.exports = { up: async () => {}, down: async () => {} };\n")
        archive.writestr("frontend/package.json", json.dumps(
            {"name": "zpro-frontend", "version": "2.0.0", "scripts": {"build": "quasar build"}}))
        archive.writestr("frontend/src/main.js", "export default 'zpro frontend 2.0.0'\n")
    return path


class Demo:
    """One run of the demo."""

    def __init__(self, base_dir: Path) -> None:
        from opsguard.sandbox.environment import Sandbox

        self.sandbox = Sandbox(base_dir / "sandbox")
        self.base_dir = base_dir
        self.environment: dict[str, str] = {}
        self.problems: list[str] = []

    def opsguard(self, *args: str, expect: int) -> int:
        """Given CLI arguments and the expected exit code, run the real CLI, show it, and record surprises."""
        print(paint("$ opsguard " + " ".join(shlex.quote(a) for a in args), "blue"), flush=True)
        environment = dict(os.environ)
        environment.update(self.environment)
        code = subprocess.run([sys.executable, "-m", "opsguard", *args], env=environment, check=False,
                              stdin=subprocess.DEVNULL).returncode
        verdict = "as expected" if code == expect else f"EXPECTED {expect}"
        print(paint(f"(exit {code}: {verdict})", "green" if code == expect else "red"), flush=True)
        if code != expect:
            self.problems.append(f"opsguard {' '.join(args)} exited {code}, expected {expect}")
        return code

    def run(self) -> int:
        """Run the whole demo; return 0 when every command ended as it should."""
        from opsguard.sandbox.simulator import load_scenario, merge_scenario

        started = time.monotonic()
        heading("bringing the sandbox up: provider simulator on 127.0.0.1, sshd hosts on 127.0.0.2-4")
        self.sandbox.up(merge_scenario(load_scenario(), DEMO_SCENARIO), settings=DEMO_SETTINGS)
        self.environment = self.sandbox.environment()
        package = make_release(self.base_dir)

        heading("1. the hosts opsguard knows (a sandbox copy of inventory.toml)")
        self.opsguard("hosts", expect=0)

        heading("2. what the Zpro upgrade of chat would run — nothing is contacted")
        self.opsguard("plan", "chat", "upgrade", "--package", str(package), expect=0)

        heading("3. the guarded upgrade: preflight, snapshot VERIFIED, staged build, short downtime, verify")
        self.opsguard("upgrade", "chat", "--package", str(package), "--yes", expect=0)
        self._show_order("chat")

        heading("4. the nightly backup-check: ia's newest provider backup is too old")
        self.opsguard("backup-check", expect=1)

        heading("5. a refusal: chat2's snapshot never completes, so the update must not start")
        self.opsguard("update", "chat2", "--yes", expect=3)
        self._show_journal("chat2")

        heading("6. the audit ledger")
        self.opsguard("ledger", "--last", "30", expect=0)

        elapsed = time.monotonic() - started
        if self.problems:
            heading(f"demo FAILED after {elapsed:.0f}s:")
            for problem in self.problems:
                print(f"  {problem}")
            return 1
        heading(f"demo ok in {elapsed:.0f}s: snapshot verified before the first change, backup-check failure reported, "
                "refusal changed nothing")
        return 0

    def _records(self, host: str) -> list[dict[str, Any]]:
        return Ledger(Path(self.environment["OPSGUARD_STATE_DIR"])).records(host)

    def _show_order(self, host: str) -> None:
        records = self._records(host)
        verified = [r for r in records if r["event"] == "snapshot-verified"]
        steps = [r for r in records if r["event"] == "step" and r.get("phase") == "started"]
        if not verified or not steps:
            self.problems.append(f"{host}: the ledger does not show a verified snapshot followed by change steps")
            return
        first = steps[0]
        ok = verified[-1]["epoch"] < first["epoch"]
        print(paint(f"{host}: snapshot {verified[-1]['receipt']['snapshot_id']} verified at {verified[-1]['time']}; "
                    f"first change step ({first['step']}) started at {first['time']}", "green" if ok else "red"))
        if not ok:
            self.problems.append(f"{host}: a change step started before the snapshot was verified")

    def _show_journal(self, host: str) -> None:
        # Every command line the host received (the session recorder's record, stubbed tools or not),
        # judged by opsguard's read-only vocabulary: anything it does not know counts as a change.
        root = self.sandbox.base_dir / "hosts" / "hosts" / host
        writable = (str(root / "run" / "lock" / "opsguard"), str(root / "var" / "lib" / "opsguard"))
        sessions = read_sessions(root / "sessions.log")
        changed = [session.command for session in sessions if session_problem(session, writable=writable)]
        print(f"{host}: every command line the host received: {len(sessions)}")
        for session in sessions:
            mark = "CHANGE" if session_problem(session, writable=writable) else "read  "
            print(f"  {mark}  {' '.join(session.command.split())[:110]}")
        verdict = "nothing was changed" if not changed else f"{len(changed)} CHANGING COMMANDS"
        print(paint(f"{host}: {verdict}", "green" if not changed else "red"))
        if changed:
            self.problems.append(f"{host}: refused, yet the host received {changed}")


def main() -> int:
    """Run the demo in a fresh temp dir and always tear the sandbox down; return the exit code."""
    base_dir = Path(tempfile.mkdtemp(prefix="opsguard-demo-"))
    demo = Demo(base_dir)
    if not is_terminal():
        print("(not a terminal: plain output with timestamps)")
    try:
        return demo.run()
    finally:
        demo.sandbox.down()
        heading("sandbox down")


if __name__ == "__main__":
    sys.exit(main())
