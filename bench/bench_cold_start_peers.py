"""Cold start side by side: `opsguard --help` / `opsguard hosts` vs `ansible-playbook --version`, `pyinfra --version`, `import fabric`.

Not a test. Run from anywhere:

    .venv/bin/python bench/bench_cold_start_peers.py [--runs 15] [--warmup 2]

Each sample is one fresh process, wall clock (`time.perf_counter` around `subprocess.run`), cwd =
repo root (so `opsguard hosts` loads and validates the shipped inventory.toml). Rounds are
interleaved: every command once, then every command again, so drift hits all alike; the warm-up
rounds are not recorded. Ansible and pyinfra run from .venv/bench-peers (bench/common.py says why),
installed there on first use. bench/bench_startup.py has the import-time breakdown of opsguard.

Targets: opsguard's median <= 150 ms and <= 0.5 x `python -c "import fabric"`. Exits 1 if missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

TARGET_MS = 150.0
TARGET_RATIO = 0.5
FABRIC = 'python -c "import fabric"'


def cases() -> dict[str, list[str]]:
    """Return label -> argv for every command measured, ours first."""
    return {
        "opsguard --help": [common.OPSGUARD, "--help"],
        "opsguard hosts": [common.OPSGUARD, "hosts"],
        "ansible-playbook --version": [str(common.PEERS_BIN / "ansible-playbook"), "--version"],
        "pyinfra --version": [str(common.PEERS_BIN / "pyinfra"), "--version"],
        FABRIC: [common.PYTHON, "-c", "import fabric"],
        'python -c "pass"': [common.PYTHON, "-c", "pass"],  # the interpreter alone: the floor under every row
    }


def measure(commands: dict[str, list[str]], runs: int, warmup: int) -> dict[str, common.Series]:
    """Given label -> argv, run interleaved rounds (warm-up rounds unrecorded); return label -> ms samples."""
    env = common.clean_environment()
    series = {label: common.Series(label) for label in commands}
    for round_number in range(warmup + runs):
        for label, argv in commands.items():
            elapsed = common.time_command(argv, env=env, cwd=common.REPO_ROOT, timeout=60)
            if round_number >= warmup:
                series[label].samples.append(elapsed)
    return series


def report(series: dict[str, common.Series], runs: int, warmup: int) -> tuple[list[str], list[str]]:
    """Given the samples, return (the Markdown section, the targets missed)."""
    fabric = series[FABRIC].median
    ansible = series["ansible-playbook --version"].median
    pyinfra = series["pyinfra --version"].median
    rows = [
        [f"`{label}`", f"**{item.median:.1f}**", item.spread(), common.ratio(item.median, fabric),
         common.ratio(item.median, pyinfra), common.ratio(item.median, ansible)]
        for label, item in series.items()
    ]  # fmt: skip
    lines = [
        "## Cold start vs peers",
        "",
        f"Command: `.venv/bin/python bench/bench_cold_start_peers.py --runs {runs} --warmup {warmup}` (from the repo "
        "root).",
        "",
        "Each sample is one fresh process, wall clock (`time.perf_counter` around `subprocess.run`, output to pipes), "
        f"cwd = repo root (so `opsguard hosts` reads and validates the shipped inventory.toml). {warmup} warm-up "
        f"rounds unrecorded, then {runs} rounds; each round runs every command once, in the order of the table, so "
        "drift hits all alike. opsguard is the venv's console script `.venv/bin/opsguard`; Ansible and pyinfra are "
        "their console scripts in `.venv/bench-peers` (same CPython build). Ratios are of medians from this same run.",
        "",
        *common.markdown_table(
            ["command", "median ms", "min–max ms", "ratio to `import fabric`", "ratio to `pyinfra --version`",
             "ratio to `ansible-playbook --version`"],
            rows, [False, True, True, True, True, True],
        ),
        "",
        "Result against the targets:",
        "",
    ]
    missed = []
    for label in ("opsguard --help", "opsguard hosts"):
        median = series[label].median
        under = median <= TARGET_MS
        share = median / fabric
        lines.append(
            f"- `{label}` {median:.1f} ms: ≤ {TARGET_MS:.0f} ms {'met' if under else 'MISSED'}; "
            f"{share:.2f}× `import fabric` (target ≤ {TARGET_RATIO}×: {'met' if share <= TARGET_RATIO else 'MISSED'}); "
            f"{common.times_faster(median, pyinfra):.1f}× faster than `pyinfra --version`, "
            f"{common.times_faster(median, ansible):.1f}× faster than `ansible-playbook --version`."
        )
        missed += [] if under else [f"{label} over {TARGET_MS:.0f} ms"]
        missed += [] if share <= TARGET_RATIO else [f"{label} over {TARGET_RATIO}x import fabric"]
    return lines, missed


def main() -> int:
    """Measure and print the Markdown section; return 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-install", action="store_true", help="do not install the peer tools when missing")
    options = parser.parse_args()
    common.check_runs(options.runs)
    common.ensure_peer_tools(install=not options.no_install)
    machine = common.machine_lines(["ansible-core", "pyinfra"])
    series = measure(cases(), options.runs, options.warmup)
    lines, missed = report(series, options.runs, options.warmup)
    print("\n".join(["Machine:", "", *machine, "", *lines]))
    if missed:
        print(f"MISSED: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
