"""Cold start of the CLI: `opsguard --help` and `opsguard hosts`, against `python -c "import fabric"`.

Not a test. Run from anywhere (it changes to the repo root):

    .venv/bin/python bench/bench_startup.py [--runs 15] [--warmup 2]

Each sample is one fresh process (the venv's console script .venv/bin/opsguard, cwd = repo root, so
`hosts` reads the shipped inventory.toml). Prints the machine, the figures and an import check as a
Markdown section for BENCHMARKS.md, and exits 1 if `--help` or `hosts` imports requests, fabric or
paramiko (a lazy import was lost).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = REPO_ROOT / ".venv" / "bin"
OPSGUARD = str(VENV_BIN / "opsguard")
PYTHON = str(VENV_BIN / "python")
HEAVY_MODULES = ("requests", "fabric", "paramiko")
TARGET_MS = 150.0

CASES: dict[str, list[str]] = {
    "opsguard --help": [OPSGUARD, "--help"],
    "opsguard hosts": [OPSGUARD, "hosts"],
    'python -c "import fabric"': [PYTHON, "-c", "import fabric"],
    'python -c "pass"': [PYTHON, "-c", "pass"],  # the interpreter alone: the floor under every row
}
PEER = 'python -c "import fabric"'


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one command, in milliseconds."""

    label: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def environment() -> dict[str, str]:
    """Return a clean environment: no inventory override, no bytecode writes, no import profiling."""
    env = dict(os.environ)
    for name in ("OPSGUARD_INVENTORY", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def time_once(argv: list[str], env: dict[str, str]) -> float:
    """Given argv, run it once and return its wall-clock time in ms; raise if it fails."""
    start = time.perf_counter()
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if completed.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {completed.returncode}: {completed.stderr.decode()[-500:]}")
    return elapsed


def measure(label: str, argv: list[str], runs: int, warmup: int, env: dict[str, str]) -> Timing:
    """Given a command, run it warmup times unrecorded, then runs times; return the samples."""
    for _ in range(warmup):
        time_once(argv, env)
    return Timing(label, [time_once(argv, env) for _ in range(runs)])


def imported_modules(argv: list[str], env: dict[str, str]) -> set[str]:
    """Given a Python command, return the top-level names of every module it imported (-X importtime)."""
    completed = subprocess.run(
        argv, cwd=REPO_ROOT, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True, check=False
    )
    names = set()
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            if module != "package":  # the header line
                names.add(module.split(".")[0])
    return names


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def python_version(python: str) -> str:
    """Given a Python executable, return its version line."""
    return subprocess.run([python, "-VV"], capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    """Measure, print the Markdown report; return 1 if a heavy module is imported at start-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    options = parser.parse_args()
    if options.runs < 5:
        parser.error("--runs must be at least 5")
    env = environment()

    timings = [measure(label, argv, options.runs, options.warmup, env) for label, argv in CASES.items()]
    peer = next(timing for timing in timings if timing.label == PEER)
    ours = [label for label in CASES if label.startswith("opsguard")]
    heavy = {label: sorted(set(HEAVY_MODULES) & imported_modules(CASES[label], env)) for label in ours}
    peer_heavy = sorted(set(HEAVY_MODULES) & imported_modules(CASES[PEER], env))

    out = [
        "## Machine",
        "",
        f"- CPU: {cpu_model()}, nproc = {len(os.sched_getaffinity(0))}",
        f"- Python: {python_version(PYTHON)}",
        f"- OS: {platform.system()} {platform.release()}",
        "",
        "## Cold start",
        "",
        f"Command: `.venv/bin/python bench/bench_startup.py --runs {options.runs} --warmup {options.warmup}` "
        "(from the repo root). Each sample is a fresh process of the venv's console script "
        f"`.venv/bin/opsguard`, cwd = repo root; {options.warmup} warm-up runs, then {options.runs} timed runs "
        f"(wall clock, `time.perf_counter` around `subprocess.run`). Target: median below {TARGET_MS:.0f} ms.",
        "",
        "| command | median ms | min–max ms | ratio to `import fabric` |",
        "|---|---:|---:|---:|",
    ]
    for timing in timings:
        out.append(
            f"| `{timing.label}` | {timing.median:.1f} | {min(timing.samples):.1f}–{max(timing.samples):.1f} "
            f"| {timing.median / peer.median:.2f} |"
        )
    out += ["", "Heavy modules imported at start-up (`-X importtime`, via `PYTHONPROFILEIMPORTTIME=1`):", ""]
    for label, found in heavy.items():
        out.append(f"- `{label}`: {', '.join(found) if found else 'none of ' + ', '.join(HEAVY_MODULES)}")
    out.append(f"- `{PEER}` (the peer, for comparison): {', '.join(peer_heavy) or 'none'}")
    print("\n".join(out))

    slow = [timing.label for timing in timings if timing.label in ours and timing.median > TARGET_MS]
    if slow:
        print(f"\nABOVE TARGET: {', '.join(slow)} (profile with -X importtime)", file=sys.stderr)
    return 1 if any(heavy.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
