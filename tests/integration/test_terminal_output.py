"""What a person at a terminal sees, through the real CLI on a pseudo-terminal: rich where it pays, plain where it does not.

The snapshot wait is a live spinner whose clock ticks between polls and the run's summary a table
(rich, lazily imported); `hosts` and `ledger` stay plain lines (rich would add 50-70 % to their run
time, BENCHMARKS.md); NO_COLOR turns colour off. Off a terminal every other test reads the plain
lines as before.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import REPO_ROOT
from tests.integration.guard_support import GuardWorld, GuardWorlds

pytestmark = pytest.mark.integration

TASKS = Path(__file__).resolve().parent / "data" / "deploy_tasks.py"
SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SLOW_SNAPSHOT = {"vultr": {"snapshot_seconds": 1.5}}
_REPORT_RICH = "\nimport json, sys\nprint('RICH_LOADED', json.dumps('rich' in sys.modules))\n"


def on_terminal(code: str, env: Mapping[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Given Python code, run it with stdout and stderr on a new pseudo-terminal (120 columns); return (exit code, output)."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", **env}
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                               env=full_env, cwd=REPO_ROOT)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if process.poll() is None:
            process.kill()  # our own child, by its pid
        code_returned = process.wait()
        os.close(master)
    return code_returned, b"".join(chunks).decode(errors="replace")


def cli_code(*args: str, report_rich: bool = False) -> str:
    """Given CLI arguments, return Python code that runs the real CLI (optionally saying at exit whether rich was loaded)."""
    code = f"from opsguard.cli import main\ntry:\n    main({list(args)!r})\nexcept SystemExit as stop:\n    code = stop.code\n"
    return code + (_REPORT_RICH if report_rich else "") + "raise SystemExit(code)\n"


def fab_on_terminal(world: GuardWorld, *env_items: tuple[str, str]) -> tuple[int, str]:
    root = str(world.hosts.host("chat").root)
    code = cli_code("fab", "chat", f"{TASKS}:deploy", "--yes", "--", "--root", root, "--version", "2.1")
    return on_terminal(code, {**world.env(), **dict(env_items)})


def test_fab_on_a_terminal_shows_a_live_wait_and_a_summary_table(worlds: GuardWorlds,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    world = worlds(SLOW_SNAPSHOT)

    code, output = fab_on_terminal(world)

    assert code == 0, output
    assert any(frame in output for frame in SPINNER_FRAMES), output
    waited = {value for value in re.findall(r"waiting for the snapshot, ([\d.]+m?s)", output)}
    assert len(waited) >= 2, waited  # the clock moved while the provider worked
    assert "summary of task deploy" in output and "─" in output and "RESULT" in output
    assert "\x1b[32mok" in output  # a result coloured
    assert (world.hosts.host("chat").root / "home/deployzdg/zpro.io/DEPLOYED").read_text() == "2.1\n"


def test_fab_on_a_terminal_with_no_color_shows_no_colour(worlds: GuardWorlds) -> None:
    world = worlds(SLOW_SNAPSHOT)

    code, output = fab_on_terminal(world, ("NO_COLOR", "1"))

    assert code == 0, output
    assert "summary of task deploy" in output
    assert not re.search(r"\x1b\[(3\d|9\d)(;\d+)*m", output), "a foreground colour despite NO_COLOR"


@pytest.mark.parametrize("args", [("hosts",), ("ledger",)])
def test_quick_views_on_a_terminal_stay_plain_and_never_import_rich(worlds: GuardWorlds, args: tuple[str, ...]) -> None:
    world = worlds()
    world.cli("snapshot", "chat")  # something in the ledger

    code, output = on_terminal(cli_code(*args, report_rich=True), world.env())
    piped = world.cli(*args)

    assert code == 0, output
    shown = output.replace("\r\n", "\n").split("RICH_LOADED")
    assert json.loads(shown[1]) is False
    assert shown[0] == piped.stdout  # the same lines as off a terminal
