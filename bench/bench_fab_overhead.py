"""Per-call cost of a Fabric task under the guard (`opsguard fab`, `change.fabric()`) vs opsguard's own step and plain Fabric.

Not a test. Run from anywhere:

    .venv/bin/python bench/bench_fab_overhead.py [--runs 5] [--warmup 1] [--calls 100] [--only NAME,...]
    .venv/bin/python bench/bench_fab_overhead.py --profile     # cProfile of 500 change.fabric() calls

Method (as bench/bench_step_overhead.py): each sample is ONE fresh process timed from outside, wall
clock; every round runs each tool with 1 call and with 1 + CALLS calls, and per-call ms =
(T(1 + CALLS) − T(1)) / CALLS, which removes start-up, imports, connecting, the snapshot and every
other once-per-run cost. Rounds are interleaved across tools; one warm-up round is not recorded.
Each call is timed inside the process too (perf_counter around the call), a cross-check free of the
subtraction's noise.

The same task file (bench/fab_bench_tasks.py, plain Fabric: ``@task def changes(c, count)``) runs
under every tool. Its calls are ``: > bench-marker`` (a write: opsguard records it as a mutating
step, two fsync'ed ledger records) or ``true`` (a read: one record). The host is one SandboxHosts
sshd on 127.0.0.2 WITHOUT the session recorder (record_sessions=False, as a real sshd), the provider
the in-process simulator with snapshots that complete at once; every opsguard run takes the
snapshot, both locks, the host record and writes its ledger (a fresh state dir per process).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common

TASKS = Path(__file__).resolve().parent / "fab_bench_tasks.py"
HOST_NAME = "chat"  # the simulator's default scenario has this Vultr instance at 127.0.0.2
HOST_ADDRESS = "127.0.0.2"
TARGET_RATIO = 1.5  # a task's per-call cost within 1.5x of opsguard's own per-step cost
CHANGE_PEER = "opsguard ChangeSession.run, write"
READ_PEER = "opsguard ChangeSession.run, read"


@dataclass
class Setup:
    """Where the host, the simulator and the inventory are (JSON for the workers)."""

    address: str
    port: int
    user: str
    client_key: str
    known_hosts: str
    inventory: str
    workdir: str
    env: dict[str, str]

    @classmethod
    def load(cls, path: str) -> Setup:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Tool:
    """One way of making N calls of the task; ``peer`` names the opsguard row its ratio is taken against."""

    name: str
    how: str
    command: Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]
    peer: str | None = None
    samples: dict[int, list[float]] = field(default_factory=dict)
    inside_median: list[float] = field(default_factory=list)

    def per_call(self, calls: int) -> common.Series:
        """Given the call count, return the per-round per-call figures (T(1+calls) - T(1)) / calls."""
        pairs = zip(self.samples[1], self.samples[1 + calls], strict=True)
        return common.Series(self.name, [(big - small) / calls for small, big in pairs])


def _environment(setup: Setup, run_dir: Path) -> dict[str, str]:
    # A fresh state dir per process: every run reads and appends to a ledger of the same (small) size.
    return common.clean_environment({**setup.env, "OPSGUARD_INVENTORY": setup.inventory,
                                     "OPSGUARD_STATE_DIR": str(run_dir / "state")})


def worker(name: str) -> Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]:
    def command(setup: Setup, calls: int, run_dir: Path) -> tuple[list[str], dict[str, str]]:
        argv = [common.PYTHON, str(Path(__file__).resolve()), "--worker", name, "--calls", str(calls),
                "--setup", str(Path(setup.workdir) / "setup.json")]
        return argv, _environment(setup, run_dir)

    return command


def fab_cli(task: str) -> Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]:
    def command(setup: Setup, calls: int, run_dir: Path) -> tuple[list[str], dict[str, str]]:
        argv = [common.OPSGUARD, "fab", HOST_NAME, f"{TASKS}:{task}", "--yes", "--", "--count", str(calls)]
        return argv, _environment(setup, run_dir)

    return command


def tools() -> list[Tool]:
    """Return every tool measured: opsguard's own step first, then the task under the guard, then plain Fabric."""
    return [
        Tool(CHANGE_PEER, "`with snapshot_guard(...) as change:` `change.run(\": > bench-marker\")` × N",
             worker("session-change")),
        Tool("opsguard fab CLI, task of c.run writes", "`opsguard fab chat fab_bench_tasks.py:changes --yes -- --count N`",
             fab_cli("changes"), peer=CHANGE_PEER),
        Tool("opsguard change.fabric(), task of c.run writes", "`changes(change.fabric(), count=N)` inside snapshot_guard",
             worker("api-change"), peer=CHANGE_PEER),
        Tool(READ_PEER, "`change.run(\"true\", mutates=False)` × N inside snapshot_guard", worker("session-read")),
        Tool("opsguard change.fabric(), task of c.run reads", "`reads(change.fabric(), count=N)` inside snapshot_guard",
             worker("api-read"), peer=READ_PEER),
        Tool("Fabric Connection, TCP_NODELAY socket, same task", "`changes(fabric.Connection(..., connect_kwargs="
             "{\"sock\": nodelay}), count=N)`, strict host keys", worker("fabric-nodelay")),
        Tool("Fabric Connection, default socket, same task", "`changes(fabric.Connection(...), count=N)`, strict host keys",
             worker("fabric")),
    ]  # fmt: skip


# -- workers (each in a fresh process) --------------------------------------------------------------


def _load_tasks() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fab_bench_tasks", TASKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session_calls(setup: Setup, calls: int, command: str, mutates: bool) -> None:
    import time

    from opsguard.guard import snapshot_guard

    with snapshot_guard(HOST_NAME, reason="bench", inventory=setup.inventory) as change:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            result = change.run(command, mutates=mutates)
            times.append((time.perf_counter() - start) * 1000)
            if result.exit_status != 0:
                raise SystemExit(f"{command} exited {result.exit_status}")
    print(json.dumps({"step_ms": times}))


def _api_task(setup: Setup, calls: int, task: str) -> None:
    from opsguard.guard import snapshot_guard

    tasks = _load_tasks()
    with snapshot_guard(HOST_NAME, reason="bench", inventory=setup.inventory) as change:
        getattr(tasks, task)(change.fabric(task=task), count=calls)


def _fabric_task(setup: Setup, calls: int, nodelay: bool) -> None:
    import fabric
    import paramiko

    connect_kwargs: dict[str, Any] = {"key_filename": setup.client_key, "look_for_keys": False, "allow_agent": False}
    if nodelay:
        sock = socket.create_connection((setup.address, setup.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connect_kwargs["sock"] = sock
    connection = fabric.Connection(setup.address, user=setup.user, port=setup.port, connect_kwargs=connect_kwargs)
    # Strict host keys, as opsguard: only the sandbox known_hosts, unknown keys refused.
    connection.client.load_host_keys(setup.known_hosts)
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with connection:
        connection.open()
        _load_tasks().changes(connection, count=calls)


WORKERS: dict[str, Callable[[Setup, int], None]] = {
    "session-change": lambda setup, calls: _session_calls(setup, calls, ": > bench-marker", mutates=True),
    "session-read": lambda setup, calls: _session_calls(setup, calls, "true", mutates=False),
    "api-change": lambda setup, calls: _api_task(setup, calls, "changes"),
    "api-read": lambda setup, calls: _api_task(setup, calls, "reads"),
    "fabric": lambda setup, calls: _fabric_task(setup, calls, nodelay=False),
    "fabric-nodelay": lambda setup, calls: _fabric_task(setup, calls, nodelay=True),
}


# -- set-up, measuring, report ----------------------------------------------------------------------


@contextlib.contextmanager
def sandbox(workdir: Path) -> Iterator[Setup]:
    """Given a scratch dir, start one sshd without the session recorder and the simulator; yield the setup."""
    from opsguard.sandbox.environment import SANDBOX_HOSTS
    from opsguard.sandbox.hosts import SandboxHosts
    from opsguard.sandbox.simulator import Simulator, load_scenario, merge_scenario

    scenario = merge_scenario(load_scenario(), {"vultr": {"snapshot_seconds": 0.0}})
    hosts = SandboxHosts(workdir / "sandbox", hosts=[(HOST_NAME, HOST_ADDRESS)], record_sessions=False)
    simulator = Simulator(scenario).start()
    try:
        with hosts:
            host = hosts.host(HOST_NAME)
            inventory = workdir / "inventory.toml"
            settings = {"snapshot_poll": "0.05s", "snapshot_timeout": "30s", "state_dir": str(workdir / "state")}
            inventory.write_text(hosts.inventory_text({HOST_NAME: SANDBOX_HOSTS[HOST_NAME]}, settings=settings))
            setup = Setup(host.address, host.port, hosts.user, str(hosts.client_key), str(hosts.known_hosts),
                          str(inventory), str(workdir), {**simulator.env(), "OPSGUARD_HTTP_RETRY_WAIT_MAX": "0.02"})
            (workdir / "setup.json").write_text(json.dumps(vars(setup)))
            yield setup
    finally:
        simulator.stop()


def measure(selected: list[Tool], setup: Setup, calls: int, runs: int, warmup: int) -> None:
    """Given tools, run every round (warm-up rounds unrecorded) and fill each tool's samples."""
    sizes = (1, 1 + calls)
    for tool in selected:
        tool.samples = {size: [] for size in sizes}
    for round_number in range(warmup + runs):
        recorded = round_number >= warmup
        for tool in selected:
            for size in sizes:
                run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=setup.workdir))
                argv, env = tool.command(setup, size, run_dir)
                try:
                    elapsed, stdout, _ = common.run_timed(argv, env=env, cwd=run_dir, timeout=600)
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
                step_ms = json.loads(stdout.strip().splitlines()[-1])["step_ms"]
                if len(step_ms) != size:
                    raise SystemExit(f"{tool.name} made {len(step_ms)} calls, not {size}")
                if recorded:
                    tool.samples[size].append(elapsed)
                    if size == 1 + calls:
                        tool.inside_median.append(statistics.median(step_ms))
        label = "warm-up" if not recorded else f"run {round_number - warmup + 1}/{runs}"
        print(f"  {label} done", file=sys.stderr, flush=True)


def report(selected: list[Tool], calls: int, runs: int, warmup: int, argv: list[str]) -> tuple[list[str], list[str]]:
    """Given measured tools, return (the Markdown section with its verdict lines, the targets missed)."""
    by_name = {tool.name: tool for tool in selected}
    rows, verdict, missed = [], [], []
    for tool in selected:
        series = tool.per_call(calls)
        peer = by_name.get(tool.peer or "")
        peer_ms = peer.per_call(calls).median if peer else None
        inside = statistics.median(tool.inside_median)
        peer_inside = statistics.median(peer.inside_median) if peer else None
        rows.append([
            tool.name, f"**{series.median:.2f}**", series.spread(2),
            common.ratio(series.median, peer_ms) if peer_ms else "–",
            f"{statistics.median(tool.samples[1]):.0f}", f"{statistics.median(tool.samples[1 + calls]):.0f}",
            f"{inside:.2f}", common.ratio(inside, peer_inside) if peer_inside else "–",
        ])  # fmt: skip
        if peer_ms is not None and peer_inside is not None:
            worst = max(series.median / peer_ms, inside / peer_inside)
            met = worst <= TARGET_RATIO
            verdict.append(f"- {tool.name}: {series.median:.2f} ms per call vs {peer_ms:.2f} ms ({peer.name}): "
                           f"{series.median / peer_ms:.2f}× (in-process {inside / peer_inside:.2f}×); target ≤ "
                           f"{TARGET_RATIO}× {'met' if met else 'MISSED'}.")
            missed += [] if met else [tool.name]
    lines = [
        "## Fabric tasks under the guard: per-call cost",
        "",
        f"Command: `{' '.join(argv)}` (from the repo root).",
        "",
        *common.markdown_table(
            ["tool", "per call ms (median)", "min–max", "ratio to opsguard's own step", "T(1) ms", f"T({1 + calls}) ms",
             "in-process median call ms", "in-process ratio"],
            rows, [False, True, True, True, True, True, True, True],
        ),
        "",
        "What each row runs:",
        "",
        *[f"- {tool.name}: {tool.how}" for tool in selected],
    ]
    return [*lines, "", "Result against the target:", "", *verdict], missed


def profile(setup: Setup, calls: int) -> str:
    """Given the setup, run the write task through change.fabric() under cProfile; return the top of the profile."""
    env = _environment(setup, Path(tempfile.mkdtemp(prefix="profile-", dir=setup.workdir)))
    os.environ.update(env)
    profiler = cProfile.Profile()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        profiler.enable()
        _api_task(setup, calls, "changes")
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(40)
    return text.getvalue()


def main() -> int:
    """Measure (or run one worker, or profile); print the Markdown section; return 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--only", default="", help="comma-separated substrings of tool names to measure")
    parser.add_argument("--profile", action="store_true", help="cProfile 500 change.fabric() writes and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        WORKERS[options.worker](Setup.load(options.setup), options.calls)
        return 0
    common.check_runs(options.runs)
    selected = tools()
    if options.only:
        wanted = [part.strip().lower() for part in options.only.split(",") if part.strip()]
        selected = [tool for tool in selected if any(part in tool.name.lower() for part in wanted)]
    machine = common.machine_lines()
    with tempfile.TemporaryDirectory(prefix="bench-fab-") as directory, sandbox(Path(directory)) as setup:
        if options.profile:
            print(profile(setup, 500))
            return 0
        measure(selected, setup, options.calls, options.runs, options.warmup)
    shown = [".venv/bin/python", "bench/bench_fab_overhead.py", "--runs", str(options.runs), "--warmup",
             str(options.warmup), "--calls", str(options.calls)]  # fmt: skip
    if options.only:
        shown += ["--only", options.only]
    lines, missed = report(selected, options.calls, options.runs, options.warmup, shown)
    print("\n".join(["Machine:", "", *machine, "", *lines]))
    if missed:
        print(f"MISSED: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
