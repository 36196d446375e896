"""Upgrade downtime (opsguard's staged order vs the vendor's) and the way back (opsguard rollback vs a provider restore).

Not a test. In the sandbox (one real sshd host on 127.0.0.2, the provider simulator), the stub
commands sleep for real durations divided by --scale:

    backend npm install ~2 min, frontend npm install ~2 min, frontend build ~5 min,
    db:migrate ~20 s, pm2 restart ~10 s, Baileys channels reconnect ~30 s after the backend restarts,
    pg_restore of the ~175 MiB database ~60 s, a Vultr snapshot restore ~20 min (the issue: 10-60 min)

--part downtime: both runs execute the SAME steps of opsguard/playbooks/platform_upgrade.py through
opsguard's own runner (preflight, verified snapshot, change, verify). Only the order differs:

- opsguard: stage + install + build while the old version serves; stop; migrate; swap; restart;
- vendor:   stop everything first; then stage, install, migrate, build; swap; restart.

Two downtimes, the runner's own measurements: from the start of the first service-stopping step to
the first passing HTTP health check (RunSummary.downtime), and to the moment every WhatsApp channel
CONNECTED before is CONNECTED again (RunSummary.channels_downtime: what the clients feel).

--part rollback: an upgrade fails its verification after the migrate and the swap; then the way back,
timed from the start of the command until it is done (every channel back, pm2 stable): `opsguard
rollback` (its plan through the runner under rollback_guard: stop, pg_restore, trees back, restart,
verify) vs a provider restore of the run's snapshot (opsguard's restore_snapshot against the
simulator, whose restore takes the scaled 20 min), plus what a restore then still needs and the
sandbox cannot run: the boot (60 s), the apps starting (20 s) and the channels reconnecting (30 s),
added as scaled constants and shown apart.

    .venv/bin/python bench/bench_downtime.py --runs 5 --scale 30 --part all
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table

from opsguard.errors import StepFailed
from opsguard.inventory import Inventory, load_inventory
from opsguard.plan import Plan, Step
from opsguard.playbooks import build_plan
from opsguard.runner import PlanRunner
from opsguard.sandbox.hosts import SandboxHosts
from opsguard.sandbox.simulator import Simulator, load_scenario

T = TypeVar("T")
VULTR_ID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
# Real durations in seconds (the team's figures for a Zpro upgrade), divided by the scale at run time.
REAL_SECONDS = {"backend npm install": 120.0, "frontend npm install": 120.0, "frontend build": 300.0,
                "migrate": 20.0, "restart": 10.0}
CHANNEL_RECONNECT = 30.0  # real seconds a Baileys channel stays OPENING after the backend restarts
PG_RESTORE = 60.0  # real seconds for pg_restore --clean of the ~175 MiB Zpro database
PROVIDER_RESTORE = 1200.0  # real seconds for a Vultr snapshot restore (the issue: 10-60 minutes)
AFTER_RESTORE = {"boot": 60.0, "apps start": 20.0, "channels reconnect": CHANNEL_RECONNECT}  # not run in the sandbox
# pm2 says it restarted the apps but does not: the upgrade fails its verification after the migrate and the swap.
CHANNEL_STEP = "WhatsApp channels back (CONNECTED)"
RESTART_SAYS_OK = {"prefix": ["pm2", "restart"], "stdout": "[PM2] Applying action restartProcessId on app\n"}


def stub_rules(scale: float) -> dict[str, list[dict[str, object]]]:
    """Given the time scale, return stub rules that sleep the scaled durations, then answer as usual."""

    def sleep(key: str) -> float:
        return REAL_SECONDS[key] / scale

    return {"rules": [
        {"regex": r"^npm install", "sleep": sleep("backend npm install"), "default": True},
        {"regex": r"^npm run build", "sleep": sleep("frontend build"), "default": True},
        {"regex": r"^npx --no-install sequelize db:migrate$", "sleep": sleep("migrate"), "default": True},
        {"regex": r"^pm2 restart", "sleep": sleep("restart"), "default": True},
    ]}


def vendor_order(plan: Plan) -> Plan:
    """Given opsguard's plan, return the same steps in the vendor's order: stop first, then everything."""
    change = list(plan.change)
    names = [step.name for step in change]
    stop_index = next(i for i, step in enumerate(change) if step.downtime == "starts")
    first_stage = next(i for i, name in enumerate(names) if name.startswith("stage:"))
    migrate = next(i for i, name in enumerate(names) if name.startswith("migrate"))
    before = change[:first_stage]  # create dir, upload, checksum, backups: not service-affecting
    dump = [step for step in change[first_stage:stop_index] if not step.name.startswith("stage:")]
    stage = [step for step in change[first_stage:stop_index] if step.name.startswith("stage:")]
    installs = [step for step in stage if "backend" in step.name or "copy" in step.name or "unpack" in step.name]
    frontend = [step for step in stage if step not in installs]
    after_migrate = change[migrate + 1:]
    reordered: list[Step] = [*before, *dump, change[stop_index], *installs, change[migrate], *frontend, *after_migrate]
    assert sorted(s.name for s in reordered) == sorted(names), "the vendor order must hold the same steps"
    return dataclasses.replace(plan, change=tuple(reordered), playbook=plan.playbook + " (vendor order)")


def make_release(directory: Path) -> Path:
    """Given a directory, write a small Zpro release archive there and return its path."""
    from opsguard.sandbox.demo import make_release as demo_release

    return demo_release(directory)


def quiet(action: Callable[[], T]) -> T:
    """Given an action, run it with stderr sent to /dev/null (the runner's progress lines) and return its result."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 (kept open for the run; closed below)
    saved = sys.stderr
    sys.stderr = devnull
    try:
        return action()
    finally:
        sys.stderr = saved
        devnull.close()


def measure_downtime(hosts: SandboxHosts, inventory: Inventory, release: Path, runs: int, scale: float) -> list[str]:
    """Given the started sandbox, run both orders ``runs`` times each, alternating; return the Markdown report lines."""
    host = inventory.host("chat")
    results: dict[str, list[tuple[float, float]]] = {"opsguard": [], "vendor": []}
    for run in range(runs):
        for order in ("opsguard", "vendor"):
            hosts.reset("chat")
            hosts.set_responses("chat", stub_rules(scale))
            hosts.set_channels("chat", reconnect_seconds=CHANNEL_RECONNECT / scale)
            plan = build_plan("platform_upgrade", host, {"package": str(release), "channels_wait": 600.0})
            if order == "vendor":
                plan = vendor_order(plan)
            runner = PlanRunner(plan, host, inventory, reason=f"bench downtime {order}", stream=False)
            summary = quiet(runner.run)
            assert summary.downtime is not None and summary.channels_downtime is not None, f"{order}: no downtime measured"
            results[order].append((summary.downtime, summary.channels_downtime))
            print(f"run {run + 1} {order:8}: downtime {summary.downtime:.3f} s, channels back after "
                  f"{summary.channels_downtime:.3f} s", file=sys.stderr, flush=True)
    scaled_target = (REAL_SECONDS["migrate"] + REAL_SECONDS["restart"] + 10.0) / scale
    medians = {order: (statistics.median(d for d, _ in samples), statistics.median(c for _, c in samples))
               for order, samples in results.items()}  # fmt: skip
    # The stub sleeps scale; opsguard's own per-step cost does not: report it apart, honestly.
    slept = {"opsguard": (REAL_SECONDS["migrate"] + REAL_SECONDS["restart"]) / scale,
             "vendor": sum(REAL_SECONDS.values()) / scale}
    rows = []
    for label, order in (("opsguard (staged)", "opsguard"), ("vendor order", "vendor")):
        samples = results[order]
        http, channels = medians[order]
        overhead = http - slept[order]
        real_http = slept[order] * scale + overhead
        real_channels = real_http + CHANNEL_RECONNECT + (channels - http - CHANNEL_RECONNECT / scale)
        rows.append([label, f"{http:.2f}", f"{min(d for d, _ in samples):.2f}–{max(d for d, _ in samples):.2f}",
                     f"{channels:.2f}", f"{min(c for _, c in samples):.2f}–{max(c for _, c in samples):.2f}",
                     f"{overhead:.2f}", f"{real_http:.0f}", f"{real_channels:.0f}",
                     f"{medians['vendor'][1] / channels:.1f}x shorter" if order == "opsguard" else "1.0x"])
    lines = [f"scale {scale:g} (real seconds per benchmark second), {runs} runs each, alternating", ""]
    lines += markdown_table(
        ["order", "HTTP downtime median s", "min–max s", "channels-back median s", "min–max s", "not-scaled overhead s",
         "≈ real HTTP downtime s", "≈ real until channels back s", "channels vs vendor"],
        rows, [False, True, True, True, True, True, True, True, False])
    ours, theirs = medians["opsguard"][0], medians["vendor"][0]
    lines += ["", f"target: opsguard HTTP downtime <= migrate + restart + 10 s = {scaled_target:.2f} s scaled "
              f"({'met' if ours <= scaled_target else 'MISSED'}); >= 5x shorter than the vendor's order "
              f"({'met' if theirs / ours >= 5 else 'MISSED'})"]
    return lines


def measure_rollback(hosts: SandboxHosts, simulator: Simulator, inventory: Inventory, release: Path, runs: int,
                     scale: float) -> list[str]:
    """Given the started sandbox, fail an upgrade after its migrate, then time `rollback` and a provider restore of
    its snapshot, ``runs`` times; return the Markdown report lines."""
    from opsguard.ledger import Ledger
    from opsguard.playbooks.rollback import rollback_source
    from opsguard.restore import restore_snapshot

    host = inventory.host("chat")
    rollbacks: list[float] = []
    restores: list[float] = []
    for run in range(runs):
        hosts.reset("chat")
        hosts.set_responses("chat", {"rules": [RESTART_SAYS_OK]})
        hosts.set_channels("chat", reconnect_seconds=CHANNEL_RECONNECT / scale)
        failing = PlanRunner(build_plan("platform_upgrade", host, {"package": str(release)}), host, inventory,
                             reason="bench rollback: the upgrade that fails", stream=False)
        try:
            quiet(failing.run)
            raise AssertionError("the upgrade was meant to fail its verification")
        except StepFailed:
            pass
        hosts.set_responses("chat", {"rules": [
            {"regex": r"pg_restore --clean", "sleep": PG_RESTORE / scale, "default": True},
            {"regex": r"^pm2 restart", "sleep": REAL_SECONDS["restart"] / scale, "default": True},
        ]})  # fmt: skip
        source = rollback_source(Ledger(inventory.settings.state_dir), "chat")
        plan = build_plan("rollback", host, {"rolled_back": json.dumps(source)})
        runner = PlanRunner(plan, host, inventory, reason="bench rollback", stream=False, rollback_of=source["run"])
        started = time.monotonic()
        summary = quiet(runner.run)
        total = time.monotonic() - started
        # Until every channel is back: the steps after the channel check (pm2 held stable, migrations) do not count.
        names = [record.name for record in summary.steps]
        after_channels = sum(record.duration for record in summary.steps[names.index(CHANNEL_STEP) + 1 :])
        rollbacks.append(total - after_channels)
        started = time.monotonic()
        outcome = quiet(functools.partial(restore_snapshot, inventory, host, str(source["snapshot_id"]), typed_host="chat"))
        restore_seconds = time.monotonic() - started
        assert outcome == "completed", outcome
        restores.append(restore_seconds)
        print(f"run {run + 1}: rollback {total:.3f} s ({rollbacks[-1]:.3f} s until every channel was back), provider "
              f"restore {restore_seconds:.3f} s", file=sys.stderr, flush=True)
    after = sum(AFTER_RESTORE.values())
    slept = {"rollback": (PG_RESTORE + REAL_SECONDS["restart"] + CHANNEL_RECONNECT) / scale,
             "restore": PROVIDER_RESTORE / scale}
    rows = []
    medians = {"rollback": statistics.median(rollbacks), "restore": statistics.median(restores)}
    for label, key, samples, not_run in (
        ("`opsguard rollback` (stop, pg_restore, trees back, restart, channels)", "rollback", rollbacks, 0.0),
        ("provider restore of the run's snapshot (Vultr 20 min) + boot 60 s, apps 20 s, channels 30 s", "restore",
         restores, after),
    ):
        overhead = medians[key] - slept[key]
        real = slept[key] * scale + overhead + not_run
        medians[key + " real"] = real
        rows.append([label, f"{medians[key]:.2f}", f"{min(samples):.2f}–{max(samples):.2f}", f"{slept[key]:.2f}",
                     f"{overhead:.2f}", f"{not_run / scale:.2f}", f"{real / 60:.1f}"])
    rows[0].append("1.0x")
    rows[1].append(f"{medians['restore real'] / medians['rollback real']:.0f}x longer")
    lines = [f"scale {scale:g}, {runs} runs, each: a failed upgrade (after the migrate), its rollback, a restore of its "
             "snapshot", ""]
    lines += markdown_table(
        ["way back, until every channel is back", "measured median s", "min–max s", "of which scaled sleeps s",
         "not-scaled overhead s", "not run: scaled constants s", "≈ real minutes", "vs rollback"],
        rows, [False, True, True, True, True, True, True, False])
    return lines


def main() -> int:
    """Run the chosen parts --runs times each and print their Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=30.0, help="real seconds per benchmark second")
    parser.add_argument("--part", choices=("downtime", "rollback", "all"), default="all")
    arguments = parser.parse_args()
    if arguments.runs < 5:
        parser.error("--runs must be >= 5 (medians with min-max over >= 5 runs)")
    base = Path(tempfile.mkdtemp(prefix="opsguard-bench-downtime-"))
    release = make_release(base)
    scenario = load_scenario()
    scenario["vultr"]["snapshot_seconds"] = 0.2
    scenario["vultr"]["restore_seconds"] = PROVIDER_RESTORE / arguments.scale
    with Simulator(scenario) as simulator, SandboxHosts(base / "hosts", hosts=(("chat", "127.0.0.2"),)) as hosts:
        os.environ.update(simulator.env())
        os.environ["OPSGUARD_STATE_DIR"] = str(base / "state")
        inventory_path = base / "inventory.toml"
        # The restore waits for the simulated provider as long as a snapshot may take: the scaled restore must fit.
        timeout = f"{max(600, int(PROVIDER_RESTORE / arguments.scale * 4))}s"
        inventory_path.write_text(hosts.inventory_text({"chat": ("vultr", VULTR_ID)}, settings={"snapshot_timeout": timeout}),
                                  encoding="utf-8")
        inventory = load_inventory(inventory_path)
        if arguments.part in ("downtime", "all"):
            report = ["## Upgrade downtime", "", *measure_downtime(hosts, inventory, release, arguments.runs, arguments.scale), ""]
            print("\n".join(report), flush=True)
        if arguments.part in ("rollback", "all"):
            report = ["## Rollback vs provider restore", "",
                      *measure_rollback(hosts, simulator, inventory, release, arguments.runs, arguments.scale), ""]
            print("\n".join(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
