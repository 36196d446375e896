"""Wall time of `opsguard backup-check` against the provider simulator. Not a test.

    .venv/bin/python bench/bench_backup_check.py [--runs 7] [--case small|large|all]

Cases (each sample is one fresh `python -m opsguard backup-check --json` process, timed from
spawn to exit, against a simulator started in this process on 127.0.0.1):

- small: the three hosts of the default scenario, every API request delayed 200 ms
  (target <= 1.0 s);
- large: 300 hosts (100 Vultr instances, 200 Hostinger VMs), 200 ms per request, every 25th
  request answered 429 with Retry-After 0.2 s, default concurrency (8 hosts at a time, each
  host's 2-3 reads in parallel) (target <= 10 s). Each run must exit 0 with every host ok: a
  429 left unhandled would make a host unreachable (exit 4).

``--concurrency N`` passes the CLI option of that name to every run.

Prints median and min-max per case, requests and 429s per run, and a Markdown section for
BENCHMARKS.md; exits 1 when a run did not end ok.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from opsguard.sandbox.simulator import BACKUP_CHECK_INVENTORY, Simulator, load_scenario, merge_scenario  # noqa: E402

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
LATENCY = 0.2
TARGETS = {"small": 1.0, "large": 10.0}


@dataclass
class Case:
    name: str
    description: str
    scenario: dict[str, Any]
    inventory: str
    hosts: int
    args: list[str] = field(default_factory=list)


def small_case() -> Case:
    scenario = merge_scenario(
        load_scenario(),
        {"vultr": {"faults": {"latency": LATENCY}}, "hostinger": {"faults": {"latency": LATENCY}}},
    )
    inventory = BACKUP_CHECK_INVENTORY
    return Case("small", f"3 hosts, {LATENCY * 1000:.0f} ms per API request", scenario, inventory, 3)


def large_case(vultr_hosts: int = 100, hostinger_hosts: int = 200) -> Case:
    faults = {"latency": LATENCY, "rate_limit_every": 25, "retry_after": "0.2"}
    instances, vms, lines = [], [], []
    for number in range(vultr_hosts):
        instance_id = str(uuid.UUID(int=number + 1))
        instances.append(
            {
                "id": instance_id,
                "label": f"v{number:03d}",
                "main_ip": f"10.1.{number // 250}.{number % 250 + 1}",
                "features": ["auto_backups"],
                "backup_schedule": {"enabled": True, "type": "daily", "hour": 3},
                "backups": ["5h", "29h"],
            }
        )
        lines += _host_toml(
            f"v{number:03d}", f"10.1.{number // 250}.{number % 250 + 1}", "vultr", f'"{instance_id}"', "daily", "26h"
        )
    for number in range(hostinger_hosts):
        vm_id = 5000 + number
        address = f"10.2.{number // 250}.{number % 250 + 1}"
        vms.append({"id": vm_id, "hostname": f"h{number:03d}", "ipv4": [address], "backups": ["2d", "9d"]})
        lines += _host_toml(f"h{number:03d}", address, "hostinger", str(vm_id), "weekly", "8d")
    scenario = {
        "vultr": {"token": "bench-vultr-token", "page_size": 100, "faults": dict(faults), "instances": instances},
        "hostinger": {"token": "bench-hostinger-token", "page_size": 25, "faults": dict(faults), "vms": vms},
    }
    description = (
        f"{vultr_hosts + hostinger_hosts} hosts ({vultr_hosts} Vultr, {hostinger_hosts} Hostinger), "
        f"{LATENCY * 1000:.0f} ms per request, every 25th request 429 + Retry-After 0.2 s"
    )
    return Case("large", description, scenario, "\n".join(lines), vultr_hosts + hostinger_hosts)


def _host_toml(name: str, address: str, provider: str, instance: str, schedule: str, max_age: str) -> list[str]:
    return [
        f"[hosts.{name}]",
        f'address = "{address}"',
        f'provider = "{provider}"',
        f"instance = {instance}",
        f"[hosts.{name}.backups]",
        f'schedule = "{schedule}"',
        f'max_age = "{max_age}"',
    ]


def run_case(case: Case, runs: int, workdir: Path) -> dict[str, Any]:
    inventory = workdir / f"{case.name}.toml"
    inventory.write_text(case.inventory, encoding="utf-8")
    samples: list[float] = []
    requests: list[int] = []
    throttled: list[int] = []
    failures: list[str] = []
    for run in range(runs):
        with Simulator(case.scenario) as sim:
            env = {
                **os.environ,
                **sim.env(),
                "OPSGUARD_INVENTORY": str(inventory),
                "OPSGUARD_STATE_DIR": str(workdir / "state"),
            }
            command = [PYTHON, "-m", "opsguard", "backup-check", "--json", *case.args]
            started = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
            elapsed = time.perf_counter() - started
            journal = sim.journal()
        samples.append(elapsed)
        requests.append(len(journal))
        throttled.append(sum(1 for entry in journal if entry["status"] == 429))
        report = json.loads(result.stdout) if result.stdout.strip() else {}
        statuses = {host["status"] for host in report.get("hosts", [])}
        if result.returncode != 0 or statuses != {"ok"} or len(report.get("hosts", [])) != case.hosts:
            failures.append(
                f"run {run + 1}: exit {result.returncode}, statuses {sorted(statuses)}: {result.stderr[:300]}"
            )
        if any(entry["method"] != "GET" for entry in journal):
            failures.append(f"run {run + 1}: a non-GET request reached the simulator")
    return {
        "case": case.name,
        "description": case.description,
        "runs": runs,
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "target_s": TARGETS[case.name],
        "requests_per_run": statistics.median(requests),
        "throttled_429_per_run": statistics.median(throttled),
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--case", choices=["small", "large", "all"], default="all")
    parser.add_argument("--concurrency", type=int, default=None, help="pass --concurrency N (default: the CLI's)")
    options = parser.parse_args()
    cases = [case for case in (small_case(), large_case()) if options.case in ("all", case.name)]
    if options.concurrency:
        for case in cases:
            case.args += ["--concurrency", str(options.concurrency)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-backup-check-") as directory:
        for case in cases:
            results.append(run_case(case, max(1, options.runs), Path(directory)))

    print(
        f"## backup-check wall time ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})"
    )
    print()
    extra = f" --concurrency {options.concurrency}" if options.concurrency else ""
    print(
        f"Reproduce: `.venv/bin/python bench/bench_backup_check.py --runs {options.runs} --case {options.case}{extra}`"
    )
    print()
    print("| case | runs | median | min-max | target | requests/run | 429s/run | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        ok = "yes" if not result["failures"] and result["median_s"] <= result["target_s"] else "NO"
        print(
            f"| {result['description']} | {result['runs']} | {result['median_s']:.2f} s | "
            f"{result['min_s']:.2f}-{result['max_s']:.2f} s | <= {result['target_s']:.1f} s | "
            f"{result['requests_per_run']:.0f} | {result['throttled_429_per_run']:.0f} | {ok} |"
        )
    for result in results:
        for failure in result["failures"]:
            print(f"FAILED {result['case']}: {failure}", file=sys.stderr)
    print()
    timed = [".venv/bin/python", "-m", "opsguard", "backup-check", "--json", *(cases[0].args if cases else [])]
    print("command timed: " + shlex.join(timed))
    return 1 if any(result["failures"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
