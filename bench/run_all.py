"""Run every benchmark script in bench/ (bench_*.py), one after another, each as its own process. Not a test.

    .venv/bin/python bench/run_all.py [--only NAME,...] [--timeout 900]

`make bench` calls this. Each script runs with its default options and the repo venv's Python;
its Markdown report (stdout) is saved to bench/results/<script>.md (git-ignored) and its
stderr to bench/results/<script>.log, so the figures can be pasted into BENCHMARKS.md. A
script that runs longer than --timeout seconds is stopped (by its own process id).

Exit status: 0 when every script exited 0; 1 when any missed a target (its exit 1 with "MISSED"
on stderr) or failed. The summary at the end says which.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def scripts(only: str) -> list[Path]:
    """Given a comma-separated filter (substrings of file names, or empty), return the bench scripts to run, sorted."""
    found = sorted(BENCH_DIR.glob("bench_*.py"))
    wanted = [part.strip() for part in only.split(",") if part.strip()]
    return [path for path in found if not wanted or any(part in path.name for part in wanted)]


def run(script: Path, timeout: float) -> tuple[str, float]:
    """Given a script, run it with its defaults, save its output under bench/results/; return (verdict, seconds)."""
    RESULTS.mkdir(exist_ok=True)
    report = RESULTS / f"{script.stem}.md"
    log = RESULTS / f"{script.stem}.log"
    print(f"== {script.name}", flush=True)
    started = time.monotonic()
    with report.open("w") as stdout, log.open("w") as stderr:
        process = subprocess.Popen([PYTHON, str(script)], cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=stderr)  # fmt: skip
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # this script's own process, by its pid
            process.wait()
            return f"STOPPED after {timeout:g} s", time.monotonic() - started
    elapsed = time.monotonic() - started
    print(report.read_text(), flush=True)
    if code == 0:
        return "ok", elapsed
    if code == 1 and "MISSED" in log.read_text(errors="replace"):
        return "target MISSED (see its report)", elapsed
    return f"FAILED (exit {code}; see {log.relative_to(REPO_ROOT)})", elapsed


def main() -> int:
    """Run the selected scripts; print a summary; return 1 if any missed a target or failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated substrings of script names")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a script is stopped")
    options = parser.parse_args()
    selected = scripts(options.only)
    if not selected:
        parser.error(f"no bench script matches {options.only!r}")
    verdicts = [(script.name, *run(script, options.timeout)) for script in selected]
    print("== summary")
    for name, verdict, elapsed in verdicts:
        print(f"{name:34} {elapsed:7.1f} s  {verdict}")
    return 0 if all(verdict == "ok" for _, verdict, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
