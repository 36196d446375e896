"""Wall time of the nightly `opsguard audit` + `opsguard health` on the sandbox's sshd hosts. Not a test.

    .venv/bin/python bench/bench_nightly.py [--runs 5] [--case small|large|all] [--concurrency N]

Cases (each sample is one fresh `python -m opsguard audit --json` process followed by one fresh
`python -m opsguard health --json` process, each timed from spawn to exit; the sample is their sum):

- small: the three sandbox hosts (chat, chat2 Zpro; ia integrations) on 127.0.0.2-4, with the
  provider simulator answering every API request after 200 ms (target <= 2 s). audit and health
  make no provider API request: the simulator's journal is checked to be empty.
- large: 100 sandbox hosts on 127.0.0.10-109 (every third an integrations host) (target <= 20 s).

Every run must exit 0 (warnings only: the sandbox hosts are Ubuntu 24.04 defaults with two pending
security updates), send each host exactly one probe session per command, and none of those
sessions may change a host (the sandbox's record of every command line, judged by the oracle).
The sandbox's system tools are Python stubs (~20 ms of CPU per call, several calls per probe):
on a real host the same tools are native and the probe is cheaper.

Prints median and min-max per case and command, and a Markdown section for BENCHMARKS.md; exits 1
when a run failed or a target was missed (with "MISSED" on stderr).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO_ROOT))

from common import CommandFailed, machine_lines, run_timed  # noqa: E402

from opsguard.sandbox.hosts import SandboxHosts  # noqa: E402
from opsguard.sandbox.journal import changing_sessions  # noqa: E402
from opsguard.sandbox.simulator import Simulator, load_scenario, merge_scenario  # noqa: E402

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
LATENCY = 0.2
TARGETS = {"small": 2.0, "large": 20.0}


@dataclass
class Case:
    name: str
    description: str
    hosts: list[tuple[str, str]]
    roles: dict[str, str]
    args: list[str] = field(default_factory=list)


def small_case() -> Case:
    return Case("small", f"3 hosts (chat, chat2, ia), {LATENCY * 1000:.0f} ms per provider API request",
                [("chat", "127.0.0.2"), ("chat2", "127.0.0.3"), ("ia", "127.0.0.4")], {"ia": "integrations"})


def large_case(count: int = 100) -> Case:
    hosts = [(f"h{number:03d}", f"127.0.0.{10 + number}") for number in range(count)]
    roles = {name: "integrations" for index, (name, _) in enumerate(hosts) if index % 3 == 2}
    return Case("large", f"{count} hosts ({count - len(roles)} Zpro, {len(roles)} integrations) on 127.0.0.10-{9 + count}",
                hosts, roles)


def run_case(case: Case, runs: int, workdir: Path) -> dict[str, Any]:
    base = workdir / case.name
    hosts = SandboxHosts(base, case.hosts, roles=case.roles)
    scenario = merge_scenario(load_scenario(), {"vultr": {"faults": {"latency": LATENCY}},
                                                "hostinger": {"faults": {"latency": LATENCY}}})
    samples: dict[str, list[float]] = {"audit": [], "health": [], "both": []}
    failures: list[str] = []
    with hosts, Simulator(scenario) as sim:
        inventory = base / "inventory.toml"
        inventory.write_text(hosts.inventory_text({name: ("hostinger", None) for name, _ in case.hosts},
                                                  settings={"state_dir": str(base / "state")}), encoding="utf-8")
        env = {**os.environ, **sim.env(), "OPSGUARD_INVENTORY": str(inventory), "OPSGUARD_STATE_DIR": str(base / "state")}
        for run in range(runs):
            before = {name: len(hosts.sessions(name)) for name, _ in case.hosts}
            total = 0.0
            for command in ("audit", "health"):
                try:
                    elapsed, _, _ = run_timed([PYTHON, "-m", "opsguard", command, "--json", *case.args], env=env, timeout=600)
                except CommandFailed as error:
                    failures.append(f"run {run + 1}: {command}: {error}")
                    continue
                samples[command].append(elapsed / 1000)
                total += elapsed / 1000
            samples["both"].append(total)
            for name, _ in case.hosts:
                sessions = hosts.sessions(name)[before[name]:]
                if len(sessions) != 2:
                    failures.append(f"run {run + 1}: {name} received {len(sessions)} sessions, expected 2 (one per command)")
                if changing_sessions(sessions):
                    failures.append(f"run {run + 1}: {name} received a command that may change it")
        if sim.journal():
            failures.append(f"{len(sim.journal())} provider API requests (expected none)")
    return {"case": case.name, "description": case.description, "hosts": len(case.hosts), "runs": runs,
            "target_s": TARGETS[case.name], "failures": failures,
            **{f"{key}_s": samples[key] for key in samples}}


def _cell(values: list[float]) -> tuple[str, str]:
    if not values:
        return "–", "–"
    return f"{statistics.median(values):.2f} s", f"{min(values):.2f}–{max(values):.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", choices=["small", "large", "all"], default="all")
    parser.add_argument("--concurrency", type=int, default=None, help="pass --concurrency N (default: the CLI's)")
    options = parser.parse_args()
    cases = [case for case in (small_case(), large_case()) if options.case in ("all", case.name)]
    for case in cases:
        if options.concurrency:
            case.args += ["--concurrency", str(options.concurrency)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as directory:
        for case in cases:
            results.append(run_case(case, max(1, options.runs), Path(directory)))

    print(f"## audit + health wall time ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})")
    print()
    print(*machine_lines(), sep="\n")
    print()
    extra = f" --concurrency {options.concurrency}" if options.concurrency else ""
    print(f"Command: `.venv/bin/python bench/bench_nightly.py --runs {options.runs} --case {options.case}{extra}`")
    print()
    print("| case | audit median | health median | audit + health median | min–max | target |")
    print("|---|---:|---:|---:|---:|---:|")
    missed = False
    for result in results:
        both, spread = _cell(result["both_s"])
        met = bool(result["both_s"]) and statistics.median(result["both_s"]) <= result["target_s"] and not result["failures"]
        missed = missed or not met
        print(f"| {result['description']} | {_cell(result['audit_s'])[0]} | {_cell(result['health_s'])[0]} | **{both}** | "
              f"{spread} | ≤ {result['target_s']:g} s — {'met' if met else 'MISSED'} |")
    for result in results:
        for failure in result["failures"]:
            print(f"{result['case']}: {failure}", file=sys.stderr)
    if missed:
        print("MISSED: a target was missed or a run failed", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
