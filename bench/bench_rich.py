"""What rich costs on a terminal: its import, and `opsguard hosts` / `opsguard ledger` as shipped vs as rich tables. Not a test.

Run from anywhere:

    .venv/bin/python bench/bench_rich.py [--runs 15] [--warmup 2]

rich is imported only when a terminal is attached (opsguard/tables.py), so off a terminal nothing
changes; this measures what a person at a terminal would pay. Each sample is one fresh process of
`python -c`, its stdout and stderr on a pseudo-terminal (120×40, TERM=xterm-256color), timed from
outside until it exits and its output is read. Three ways for each command:

- "as shipped": `opsguard.cli.main(ARGS)` — plain aligned lines on the terminal too;
- "as a rich table": the same command's output captured, split into its columns and printed with
  opsguard.tables.print_table (rich imported, the table drawn to the terminal's width): what the
  command would cost had it used rich;
- "plain, same path": the same capture, printed back as plain lines — the control for the capture.

The ledger holds 50 records (10 runs of 5 events) in a scratch state dir; `hosts` reads the shipped
inventory.toml. The import figure is `-X importtime`'s cumulative time of the rich modules
opsguard imports (top-level entries only).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common

RICH_MODULES = ("rich.console", "rich.table", "rich.text", "rich.box", "rich.live", "rich.spinner")
_SHIPPED = "from opsguard.cli import main\nmain({args!r})\n"
_CAPTURED = """import contextlib, io, re
from opsguard.cli import main
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    try:
        main({args!r})
    except SystemExit:
        pass
lines = buffer.getvalue().splitlines()
if {rich!r}:
    from opsguard.tables import Table, print_table
    rows = [re.split(r"\\s{{2,}}", line.strip(), maxsplit={columns} - 1) for line in lines]
    header = {header!r} or rows.pop(0)
    print_table(Table(header, rows))
else:
    print("\\n".join(lines))
"""
# command -> (its arguments, its columns, its header when its plain output has none)
CASES: dict[str, tuple[list[str], int, list[str] | None]] = {
    "opsguard hosts": (["hosts"], 6, None),
    "opsguard ledger (50 records)": (["ledger"], 4, ["TIME", "HOST", "RUN", "EVENT"]),
}
MODES = ("off a terminal, as shipped", "terminal, as shipped", "terminal, plain, same path", "terminal, as a rich table")


# A 5-second snapshot wait with a poll a second, on the terminal: the live display's own CPU cost.
_WAIT = """import sys, time
if {block!r}:
    sys.modules["rich"] = None
from opsguard.progress import SnapshotWaitReporter
reporter = SnapshotWaitReporter("chat")
reporter("requested", 0.0)  # starts the display (and imports rich): counted in the import figure, not here
cpu, started = time.process_time(), time.monotonic()
while time.monotonic() - started < {seconds}:
    reporter("pending", time.monotonic() - started)
    time.sleep(1.0)
reporter.done("chat: snapshot verified")
print("CPU_MS", (time.process_time() - cpu) * 1000 / {seconds})
"""
WAIT_SECONDS = 5


def wait_cpu(env: dict[str, str], *, block: bool, runs: int) -> float:
    """Given the environment, return the median CPU ms per second of a snapshot wait shown on a terminal."""
    samples = []
    for _ in range(runs):
        _, output = run_on_terminal([common.PYTHON, "-c", _WAIT.format(block=block, seconds=WAIT_SECONDS)], env)
        samples.append(float(output.rsplit("CPU_MS", 1)[1].split()[0]))
    return statistics.median(samples)


def runner(mode: str, args: list[str], columns: int, header: list[str] | None) -> str:
    """Given a mode and a command, return the `python -c` code of one sample."""
    if mode.endswith("as shipped"):
        return _SHIPPED.format(args=args)
    return _CAPTURED.format(args=args, rich=mode.endswith("rich table"), columns=columns, header=header)


def run_on_terminal(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Given argv, run it with stdout/stderr on a new pseudo-terminal; return (wall ms until exit and drained, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=common.REPO_ROOT)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            process.kill()  # our own child, by its pid
            raise SystemExit(f"{argv} wrote nothing for 30 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = process.wait()
    elapsed = (time.perf_counter() - start) * 1000
    os.close(master)
    output = b"".join(chunks).decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{argv} exited {code}: {output[-400:]}")
    return elapsed, output


def write_ledger(state_dir: Path) -> None:
    """Given a state dir, write a ledger of 50 records (10 runs), as opsguard would."""
    from opsguard import ledger as events
    from opsguard.ledger import Ledger

    book = Ledger(state_dir)
    for index in range(10):
        run_id = f"20261203T1000{index:02d}Z-bench{index}"
        book.append(events.RUN_STARTED, run_id=run_id, host="chat", command="update", reason="nightly OS update",
                    user="ana", machine="laptop")
        book.append(events.SNAPSHOT_REQUESTED, run_id=run_id, host="chat", snapshot_id=f"snap-{index}")
        book.append(events.SNAPSHOT_VERIFIED, run_id=run_id, host="chat",
                    receipt={"snapshot_id": f"snap-{index}", "created_at": "2026-12-03T10:00:00Z"})
        book.append(events.STEP, phase="ended", result="ok", run_id=run_id, host="chat",
                    step="apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade", exit_status=0)
        book.append(events.RUN_ENDED, run_id=run_id, host="chat", outcome="ok")


def import_ms(runs: int) -> float:
    """Return the median cumulative import time (ms) of the rich modules opsguard uses, in a fresh interpreter."""
    samples = []
    code = "import " + ", ".join(RICH_MODULES)
    for _ in range(runs):
        completed = subprocess.run([common.PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True,
                                   check=True)
        total = 0
        for line in completed.stderr.splitlines():
            parts = line.split("|")
            # Top-level imports only ("| name"; a nested one is indented further): nothing is counted twice.
            if len(parts) == 3 and parts[2].strip() in RICH_MODULES and not parts[2].startswith("  "):
                total += int(parts[1].strip())  # its cumulative µs
        samples.append(total / 1000)
    return statistics.median(samples)


def main() -> int:
    """Measure; print the Markdown section."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    options = parser.parse_args()
    common.check_runs(options.runs)
    with tempfile.TemporaryDirectory(prefix="bench-rich-") as directory:
        state = Path(directory) / "state"
        write_ledger(state)
        env = common.clean_environment({"OPSGUARD_STATE_DIR": str(state), "TERM": "xterm-256color"})
        env.pop("NO_COLOR", None)
        samples: dict[tuple[str, str], list[float]] = {(case, mode): [] for case in CASES for mode in MODES}
        drew_table: dict[str, bool] = {}
        for round_number in range(options.warmup + options.runs):
            for case, (args, columns, header) in CASES.items():
                for mode in MODES:
                    argv = [common.PYTHON, "-c", runner(mode, args, columns, header)]
                    if mode.startswith("off a terminal"):
                        elapsed = common.time_command(argv, env=env)
                    else:
                        elapsed, output = run_on_terminal(argv, env)
                        if mode.endswith("rich table"):
                            drew_table[case] = "─" in output
                    if round_number >= options.warmup:
                        samples[(case, mode)].append(elapsed)
        imported = import_ms(options.runs)
        wait_rich, wait_plain = wait_cpu(env, block=False, runs=5), wait_cpu(env, block=True, runs=5)
    rows = []
    for case in CASES:
        medians = [statistics.median(samples[(case, mode)]) for mode in MODES]
        spread = common.Series("", samples[(case, MODES[-1])]).spread(1)
        added = medians[3] - medians[2]
        rows.append([case, *(f"{value:.1f}" for value in medians[:3]), f"**{medians[3]:.1f}**", spread,
                     f"{added:+.1f} ({added / medians[2] * 100:+.0f} %)", "yes" if drew_table.get(case) else "NO"])
    lines = [
        "## rich on a terminal",
        "",
        f"Command: `.venv/bin/python bench/bench_rich.py --runs {options.runs} --warmup {options.warmup}`",
        "",
        f"Import of {', '.join(f'`{name}`' for name in RICH_MODULES)} in a fresh interpreter: **{imported:.1f} ms** "
        f"(median of {options.runs}, `-X importtime` cumulative).",
        "",
        *common.markdown_table(
            ["command", *(f"{mode} ms" for mode in MODES[:3]), f"{MODES[3]} ms", "min–max",
             "rich adds (vs same path)", "rich table drawn"],
            rows, [False, True, True, True, True, True, True, False],
        ),
        "",
        f"The snapshot wait's live display (a {WAIT_SECONDS} s wait, one poll a second, on the terminal; median of 5): "
        f"**{wait_rich:.2f} ms of CPU per second** with rich (spinner and clock redrawn 4 times a second) vs "
        f"{wait_plain:.2f} ms without (one line rewritten per poll), the display once started (its import aside).",
    ]
    print("\n".join(["Machine:", "", *common.machine_lines(), "", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
