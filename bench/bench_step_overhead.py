"""Per-step overhead of a read-only plan of `true` over ONE loopback sshd: opsguard vs Ansible, pyinfra, Fabric, paramiko.

Not a test. Run from anywhere:

    .venv/bin/python bench/bench_step_overhead.py [--runs 5] [--warmup 1] [--steps 50] [--only NAME,...]
    .venv/bin/python bench/bench_step_overhead.py --profile      # cProfile of opsguard's runner, 500 steps

Method (the same for every tool): each sample is ONE fresh process (a CLI run or a small worker
of this script) timed from the outside, wall clock. Every round runs each tool twice, with 1 step
and with 1 + STEPS steps; per-step ms = (T(1 + STEPS) - T(1)) / STEPS, which removes interpreter
start-up, imports, connecting and authenticating, Ansible's interpreter discovery and every other
once-per-run cost. Rounds are interleaved across tools (tool A, B, C..., then again) so slow drift
of the machine hits all of them alike; one warm-up round is not recorded. The median and min-max
are over the per-round per-step figures.

The host is one SandboxHosts sshd on 127.0.0.2 (an empty per-host HOME; the stubs come first in
PATH, but `true` is not one of them: the script checks that `true` is the shell builtin, and with
strace that the session's bash reads no rc file but /etc/bash.bashrc, which returns at once for a
non-interactive shell). Ansible and pyinfra run from .venv/bench-peers (see bench/common.py), are
installed there on first use, and get the sandbox client key and known_hosts with strict checking.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common

TARGET_MS = 15.0
STRETCH_MS = 5.0
TARGET_VS_PYINFRA = 3.0
TARGET_VS_ANSIBLE = 14.0
OURS = "opsguard PlanRunner (read-only plan)"
HOST_NAME = "bench"
HOST_ADDRESS = "127.0.0.2"


# -- the tools --------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Where the sandbox host is and how to reach it (written to JSON for the workers)."""

    address: str
    port: int
    user: str
    client_key: str
    known_hosts: str
    inventory: str
    workdir: str

    @classmethod
    def load(cls, path: str) -> Setup:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Tool:
    """One way of running N `true` steps: build its command for N steps in a scratch dir, clean up after."""

    name: str
    how: str  # one line for the report: what exactly runs
    command: Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]
    cleanup: Callable[[Path], None] = lambda run_dir: None
    peer: bool = False  # needs the peer-tools venv
    # Given the run's output (a peer's stdout + stderr, a worker's stdout) and step count, return why it did not run every step (None = it did).
    expect: Callable[[str, int], str | None] = lambda stdout, steps: _expect_worker(stdout, steps)
    samples: dict[int, list[float]] = field(default_factory=dict)
    inside_median: list[float] = field(default_factory=list)  # per run: median step ms timed inside the worker
    inside_first: list[float] = field(default_factory=list)  # per run: the first step on the new connection, ms

    def per_step(self, steps: int) -> common.Series:
        """Given the step count, return the per-round per-step figures (T(1+steps) - T(1)) / steps."""
        pairs = zip(self.samples[1], self.samples[1 + steps], strict=True)
        return common.Series(self.name, [(big - small) / steps for small, big in pairs])


def _expect_worker(stdout: str, steps: int) -> str | None:
    lines = stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        return "the worker printed no step times"
    timed = len(json.loads(lines[-1])["step_ms"])
    return None if timed == steps else f"the worker timed {timed} steps, not {steps}"


def _expect_ansible(stdout: str, steps: int) -> str | None:
    recap = re.search(r"ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", stdout)
    if recap is None:
        return "no PLAY RECAP in its output"
    ok, unreachable, failed = (int(value) for value in recap.groups())
    return None if (ok, unreachable, failed) == (steps, 0, 0) else f"recap ok={ok} unreachable={unreachable} failed={failed}"


def _expect_pyinfra(stdout: str, steps: int) -> str | None:
    total = re.search(r"Grand total\s+(\d+)\s+(\d+)\s+(\S+)", stdout)
    if total is None:
        return "no results table in its output"
    operations, succeeded, errors = total.groups()
    return None if (int(operations), int(succeeded), errors) == (steps, steps, "-") else f"results {total.group(0)!r}"


def worker_command(name: str) -> Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]:
    def command(setup: Setup, steps: int, run_dir: Path) -> tuple[list[str], dict[str, str]]:
        setup_path = Path(setup.workdir) / "setup.json"
        argv = [common.PYTHON, str(Path(__file__).resolve()), "--worker", name, "--steps", str(steps)]
        return [*argv, "--setup", str(setup_path)], common.clean_environment()

    return command


def ansible_command(module: str, pipelining: bool) -> Callable[[Setup, int, Path], tuple[list[str], dict[str, str]]]:
    def command(setup: Setup, steps: int, run_dir: Path) -> tuple[list[str], dict[str, str]]:
        work = Path(setup.workdir) / "ansible"
        playbook = work / f"{module}-{steps}.yml"
        if not playbook.exists():
            tasks = "".join(f"    - name: true {index}\n      {module}: 'true'\n" for index in range(steps))
            playbook.write_text(f"- hosts: {HOST_NAME}\n  gather_facts: false\n  tasks:\n{tasks}")
        env = common.clean_environment(
            {
                "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
                "ANSIBLE_HOME": str(work / "home"),
                "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
                # A fresh ControlMaster directory per run: each run opens (and pays for) its own
                # master connection, as a cron job or an operator's first command of the day would.
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
                "ANSIBLE_PIPELINING": "True" if pipelining else "False",
                "ANSIBLE_NOCOLOR": "1",
            }
        )
        return [str(common.PEERS_BIN / "ansible-playbook"), "-i", str(work / "inventory.ini"), str(playbook)], env

    return command


def close_control_masters(run_dir: Path) -> None:
    """Given a run's scratch dir, ask every ssh ControlMaster left there to exit (Ansible's ControlPersist)."""
    control_dir = run_dir / "cp"
    if not control_dir.is_dir():
        return
    for control in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={control}", "-O", "exit", "bench-host"], capture_output=True, check=False
        )


def pyinfra_command(setup: Setup, steps: int, run_dir: Path) -> tuple[list[str], dict[str, str]]:
    work = Path(setup.workdir) / "pyinfra"
    env = common.clean_environment({"BENCH_STEPS": str(steps), "PYINFRA_PROGRESS": "off"})
    argv = [str(common.PEERS_BIN / "pyinfra"), "-y", str(work / "inventory.py"), str(work / "deploy.py")]
    return argv, env


def tools() -> list[Tool]:
    """Return every tool measured, ours first."""
    return [
        Tool(OURS, "`PlanRunner(Plan(kind=\"read-only\", preflight=N × Step(\"true\")), ...).run()`, stream off",
             worker_command("opsguard-runner")),
        Tool("opsguard Connection.run loop", "`opsguard.transport.connect()` then `conn.run(\"true\", timeout=30)` × N",
             worker_command("opsguard-connection")),
        Tool("Ansible, command module", "`ansible-playbook`, `command: 'true'` × N, `gather_facts: false`, "
             "defaults (ControlMaster=auto, ControlPersist=60s, no pipelining)",
             ansible_command("command", pipelining=False), close_control_masters, peer=True, expect=_expect_ansible),
        Tool("Ansible, command module, pipelining", "as above with `ANSIBLE_PIPELINING=True`",
             ansible_command("command", pipelining=True), close_control_masters, peer=True, expect=_expect_ansible),
        Tool("Ansible, raw module", "`raw: 'true'` × N (no module, no Python on the host), defaults",
             ansible_command("raw", pipelining=False), close_control_masters, peer=True, expect=_expect_ansible),
        Tool("pyinfra", "`pyinfra -y inventory.py deploy.py`, `server.shell(commands=[\"true\"])` × N",
             pyinfra_command, peer=True, expect=_expect_pyinfra),
        Tool("Fabric", "`fabric.Connection(...).run(\"true\", hide=True)` × N, default socket",
             worker_command("fabric")),
        Tool("Fabric, TCP_NODELAY socket", "as above with `connect_kwargs={\"sock\": sock}` (TCP_NODELAY)",
             worker_command("fabric-nodelay")),
        Tool("paramiko, default socket", "one `SSHClient`, `open_session(); exec_command(\"true\"); "
             "recv_exit_status()` × N", worker_command("paramiko")),
        Tool("paramiko, TCP_NODELAY (floor)", "as above on a TCP_NODELAY socket", worker_command("paramiko-nodelay")),
        Tool("OpenSSH ControlMaster, one `ssh` per step", "master opened once; `ssh -S ctl host true` × N",
             worker_command("openssh-controlmaster")),
    ]  # fmt: skip


# -- workers (each runs in a fresh process: --worker NAME) ------------------------------------------


def run_worker(name: str, steps: int, setup: Setup) -> None:
    """Given a worker name, a step count and the setup, run `true` that many times; print each step's ms as JSON."""
    print(json.dumps({"step_ms": WORKERS[name](setup, steps)}))


def _opsguard_runner(setup: Setup, steps: int) -> list[float]:
    from opsguard.inventory import load_inventory
    from opsguard.plan import Plan, Step
    from opsguard.runner import PlanRunner

    inventory = load_inventory(Path(setup.inventory))
    plan = Plan(
        playbook="bench-true",
        host=HOST_NAME,
        kind="read-only",
        summary=f"{steps} x true",
        preflight=tuple(Step(name=f"true {index}", command="true", mutates=False, timeout=30) for index in range(steps)),
    )
    summary = PlanRunner(plan, inventory.host(HOST_NAME), inventory, reason="bench", stream=False).run()
    if summary.outcome != "ok" or len(summary.steps) != steps or any(step.result != "ok" for step in summary.steps):
        raise SystemExit(f"opsguard runner ended {summary.outcome} with {len(summary.steps)} steps")
    return [step.duration * 1000 for step in summary.steps]  # the runner's own timing of each step


def _timed_steps(steps: int, step: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _opsguard_connection(setup: Setup, steps: int) -> list[float]:
    from opsguard.inventory import load_inventory
    from opsguard.transport import connect

    inventory = load_inventory(Path(setup.inventory))
    with connect(inventory.host(HOST_NAME), inventory.settings) as connection:

        def step() -> None:
            result = connection.run("true", timeout=30)
            if result.exit_status != 0:
                raise SystemExit(f"true exited {result.exit_status}")

        return _timed_steps(steps, step)


def _nodelay_socket(setup: Setup) -> socket.socket:
    sock = socket.create_connection((setup.address, setup.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _fabric(setup: Setup, steps: int, nodelay: bool) -> list[float]:
    import fabric
    import paramiko

    connect_kwargs: dict[str, Any] = {"key_filename": setup.client_key, "look_for_keys": False, "allow_agent": False}
    if nodelay:
        connect_kwargs["sock"] = _nodelay_socket(setup)
    connection = fabric.Connection(setup.address, user=setup.user, port=setup.port, connect_kwargs=connect_kwargs)
    # Strict host keys, as every tool here: only the sandbox known_hosts, unknown keys refused.
    connection.client.load_host_keys(setup.known_hosts)
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with connection:
        connection.open()

        def step() -> None:
            result = connection.run("true", hide=True)
            if result.exited != 0:
                raise SystemExit(f"true exited {result.exited}")

        return _timed_steps(steps, step)


def _paramiko(setup: Setup, steps: int, nodelay: bool) -> list[float]:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(setup.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = _nodelay_socket(setup) if nodelay else socket.create_connection((setup.address, setup.port), timeout=10)
    client.connect(setup.address, port=setup.port, username=setup.user, key_filename=setup.client_key, sock=sock,
                   look_for_keys=False, allow_agent=False)  # fmt: skip
    transport = client.get_transport()

    def step() -> None:
        channel = transport.open_session()
        channel.exec_command("true")
        status = channel.recv_exit_status()
        channel.close()
        if status != 0:
            raise SystemExit(f"true exited {status}")

    try:
        return _timed_steps(steps, step)
    finally:
        client.close()


def _openssh_controlmaster(setup: Setup, steps: int) -> list[float]:
    control_dir = Path(tempfile.mkdtemp(prefix="cm-", dir=setup.workdir))
    control = control_dir / "ctl"
    options = ["-F", "/dev/null", "-o", f"UserKnownHostsFile={setup.known_hosts}", "-o", "StrictHostKeyChecking=yes",
               "-o", "IdentitiesOnly=yes", "-i", setup.client_key, "-p", str(setup.port), "-o", f"ControlPath={control}",
               "-l", setup.user]  # fmt: skip
    subprocess.run(["ssh", *options, "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-fN", setup.address],
                   check=True, stdin=subprocess.DEVNULL)  # fmt: skip

    def step() -> None:
        subprocess.run(["ssh", *options, "-o", "ControlMaster=no", setup.address, "true"],
                       check=True, stdin=subprocess.DEVNULL)  # fmt: skip

    try:
        return _timed_steps(steps, step)
    finally:
        subprocess.run(["ssh", *options, "-O", "exit", setup.address], capture_output=True, check=False)
        shutil.rmtree(control_dir, ignore_errors=True)


WORKERS: dict[str, Callable[[Setup, int], list[float]]] = {
    "opsguard-runner": _opsguard_runner,
    "opsguard-connection": _opsguard_connection,
    "fabric": lambda setup, steps: _fabric(setup, steps, nodelay=False),
    "fabric-nodelay": lambda setup, steps: _fabric(setup, steps, nodelay=True),
    "paramiko": lambda setup, steps: _paramiko(setup, steps, nodelay=False),
    "paramiko-nodelay": lambda setup, steps: _paramiko(setup, steps, nodelay=True),
    "openssh-controlmaster": _openssh_controlmaster,
}


# -- set-up and checks ------------------------------------------------------------------------------


@contextlib.contextmanager
def sandbox(workdir: Path) -> Iterator[tuple[Any, Setup]]:
    """Given a scratch dir, start one loopback sshd, write every tool's configuration; yield (hosts, setup)."""
    from opsguard.sandbox.hosts import SandboxHosts

    hosts = SandboxHosts(workdir / "sandbox", hosts=[(HOST_NAME, HOST_ADDRESS)], record_sessions=False)
    with hosts:
        host = hosts.host(HOST_NAME)
        inventory = hosts.write_inventory(providers={HOST_NAME: ("vultr", None)})
        setup = Setup(host.address, host.port, hosts.user, str(hosts.client_key), str(hosts.known_hosts),
                      str(inventory), str(workdir))  # fmt: skip
        (workdir / "setup.json").write_text(json.dumps(vars(setup)))
        _write_ansible_files(setup)
        _write_pyinfra_files(setup)
        yield hosts, setup


def _write_ansible_files(setup: Setup) -> None:
    work = Path(setup.workdir) / "ansible"
    work.mkdir(parents=True, exist_ok=True)
    ssh_args = f"-o UserKnownHostsFile={setup.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    (work / "inventory.ini").write_text(
        f"{HOST_NAME} ansible_host={setup.address} ansible_port={setup.port} ansible_user={setup.user} "
        f"ansible_ssh_private_key_file={setup.client_key} ansible_ssh_common_args='{ssh_args}'\n"
    )
    # Only what keeps the run off the operator's own files; ssh_args, pipelining and forks stay default.
    (work / "ansible.cfg").write_text("[defaults]\nhost_key_checking = True\nretry_files_enabled = False\n")


def _write_pyinfra_files(setup: Setup) -> None:
    work = Path(setup.workdir) / "pyinfra"
    work.mkdir(parents=True, exist_ok=True)
    data = {
        "ssh_port": setup.port,
        "ssh_user": setup.user,
        "ssh_key": setup.client_key,
        "ssh_known_hosts_file": setup.known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    (work / "inventory.py").write_text(f"hosts = [({setup.address!r}, {data!r})]\n")
    (work / "deploy.py").write_text(
        "import os\n\nfrom pyinfra.operations import server\n\n"
        "for index in range(int(os.environ['BENCH_STEPS'])):\n"
        "    server.shell(name=f'true {index}', commands=['true'])\n"
    )


def check_host(hosts: Any, setup: Setup) -> list[str]:
    """Given the running sandbox, return report lines proving `true` is the builtin and the shell reads nothing slow.

    Raise SystemExit if `true` resolves to a stub or a per-user rc file is read.
    """
    from opsguard.inventory import load_inventory
    from opsguard.transport import connect

    inventory = load_inventory(Path(setup.inventory))
    with connect(inventory.host(HOST_NAME), inventory.settings) as connection:
        probe = connection.run('command -v true; type true; echo "HOME=$HOME"; ls -A "$HOME" | wc -l', timeout=30)
    lines = probe.stdout.split("\n")
    if lines[0].strip() != "true" or "builtin" not in lines[1]:
        raise SystemExit(f"`true` on the sandbox host is not the shell builtin: {probe.stdout!r}")
    stubs = hosts.host(HOST_NAME).root / "stubs-bin"
    if (stubs / "true").exists():
        raise SystemExit(f"`true` is a stub in {stubs}")
    out = [
        f"- `command -v true` over SSH prints `{lines[0].strip()}` and `type true` says `{lines[1].strip()}`; "
        f"`true` is not among the stubs in `stubs-bin/`; the session's HOME (`{lines[2].split('=', 1)[1]}`) "
        f"holds {lines[3].strip()} files.",
    ]
    out.append(trace_rc_files(hosts, setup))
    return out


def trace_rc_files(hosts: Any, setup: Setup) -> str:
    """Given the sandbox, strace its sshd through one connection and one `true`; return a line naming what the shell read.

    Raise SystemExit if the trace saw no shell start (the check would prove nothing) or the
    session's shell opened a per-user start-up file (~/.bashrc, ~/.profile, ...).
    """
    if shutil.which("strace") is None:
        return "- strace is not installed: the shell's start-up files were not traced."
    from opsguard.inventory import load_inventory
    from opsguard.transport import connect

    inventory = load_inventory(Path(setup.inventory))
    trace = Path(setup.workdir) / "strace.txt"
    listener = hosts.host(HOST_NAME).pid
    # Attach BEFORE connecting: sshd forks one process per connection, and -f follows only new children.
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=openat,execve", "-o", str(trace), "-p",
                               str(listener)], stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)  # strace attaches asynchronously
        with connect(inventory.host(HOST_NAME), inventory.settings) as connection:
            connection.run("true", timeout=30)
        time.sleep(0.3)
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    rc_names = ("bashrc", "/.profile", "bash_profile", "bash_login", "/etc/profile")
    opened, missing, programs = [], [], []
    for line in trace.read_text().splitlines():
        if "execve(" in line and line.rstrip().endswith("= 0"):
            programs.append(line.split('"')[1])
        elif "openat(" in line and any(name in line for name in rc_names):
            path = line.split('"')[1]
            (missing if "ENOENT" in line else opened).append(path)
    shells = sorted({program for program in programs if program.endswith("sh")})
    if not shells:
        raise SystemExit(f"strace saw no shell start in the sshd (trace in {trace}); the rc-file check proved nothing")
    personal = [path for path in opened if not path.startswith("/etc/")]
    if personal:
        raise SystemExit(f"the session's shell reads per-user start-up files: {personal}")
    others = sorted(set(programs) - set(shells) - {"/usr/sbin/sshd"})
    return (
        f"- strace of the sshd through one connection and one `true`: the session ran {', '.join(shells)} "
        f"(other programs: {', '.join(others) or 'none'}); start-up files opened: {', '.join(opened) or 'none'} "
        "(Debian's /etc/bash.bashrc stops at its first statement, `[ -z \"$PS1\" ] && return`, for a non-interactive "
        f"shell); looked for but absent: {', '.join(missing) or 'none'}. The real /root/.bashrc (pyenv init, the "
        "~100 ms cost per step if it were read) is never read."
    )


# -- measuring --------------------------------------------------------------------------------------


def measure(selected: list[Tool], setup: Setup, steps: int, runs: int, warmup: int) -> None:
    """Given tools, run every round (warm-up rounds unrecorded) and fill each tool's samples."""
    sizes = (1, 1 + steps)
    for tool in selected:
        tool.samples = {size: [] for size in sizes}
    for round_number in range(warmup + runs):
        recorded = round_number >= warmup
        for tool in selected:
            for size in sizes:
                run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=setup.workdir))
                argv, env = tool.command(setup, size, run_dir)
                try:
                    elapsed, stdout, stderr = common.run_timed(argv, env=env, cwd=run_dir, timeout=600)
                finally:
                    tool.cleanup(run_dir)
                    shutil.rmtree(run_dir, ignore_errors=True)
                problem = tool.expect(stdout + stderr if tool.peer else stdout, size)
                if problem:
                    raise SystemExit(f"{tool.name} with {size} steps did not run them all: {problem}")
                if not recorded:
                    continue
                tool.samples[size].append(elapsed)
                if size == 1 + steps and not tool.peer:
                    step_ms = json.loads(stdout.strip().splitlines()[-1])["step_ms"]
                    tool.inside_median.append(statistics.median(step_ms))
                    tool.inside_first.append(step_ms[0])
        label = "warm-up" if not recorded else f"run {round_number - warmup + 1}/{runs}"
        print(f"  {label} done", file=sys.stderr, flush=True)


def report(
    selected: list[Tool], steps: int, runs: int, warmup: int, argv: list[str], checks: list[str]
) -> tuple[list[str], list[str]]:
    """Given measured tools, return (the Markdown section with its verdict lines, the targets missed)."""
    ours = next((tool for tool in selected if tool.name == OURS), None)
    ours_ms = ours.per_step(steps).median if ours else None
    rows = []
    for tool in selected:
        series = tool.per_step(steps)
        small, big = common.Series("", tool.samples[1]), common.Series("", tool.samples[1 + steps])
        inside = f"{statistics.median(tool.inside_median):.2f}" if tool.inside_median else "–"
        first = f"{statistics.median(tool.inside_first):.1f}" if tool.inside_first else "–"
        rows.append([
            tool.name, f"**{series.median:.2f}**", series.spread(2),
            common.ratio(series.median, ours_ms) if ours_ms else "–",
            f"{small.median:.0f}", f"{big.median:.0f}", inside, first,
        ])  # fmt: skip
    lines = [
        "## Step overhead",
        "",
        f"Command: `{' '.join(argv)}` (from the repo root).",
        "",
        f"A read-only plan of {steps} steps `true` over ONE loopback sshd (SandboxHosts, 127.0.0.2). Each sample is "
        "one fresh process timed from outside (wall clock). Per-step ms = (T(1 + "
        f"{steps} steps) − T(1 step)) / {steps}, the same for every tool, so start-up, imports, connecting and "
        f"discovery cancel out. {runs} recorded rounds ({warmup} warm-up round unrecorded), tools interleaved within "
        "each round; median and min–max of the per-round figures. Ratio = the tool's per-step median / opsguard "
        "PlanRunner's, same run. T(n) are medians of whole-process wall times. The in-process columns are a "
        "cross-check where the worker is ours (Python libraries and the ssh loop): each step timed inside the "
        "worker with `perf_counter` (for the PlanRunner, its own per-step durations), median over the steps of a "
        "run, then median over runs; \"first step\" is step 1 on the freshly opened connection.",
        "",
        *common.markdown_table(
            ["tool", "per step ms (median)", "min–max", "ratio to opsguard", "T(1) ms", f"T({1 + steps}) ms",
             "in-process median step ms", "in-process first step ms"],
            rows, [False, True, True, True, True, True, True, True],
        ),
        "",
        "What each row runs:",
        "",
        *[f"- {tool.name}: {tool.how}" for tool in selected],
        "",
        "The host (checked by the script on every run):",
        "",
        *checks,
    ]
    verdict, missed = [], []
    if ours is not None and ours_ms is not None:
        by_name = {tool.name: tool.per_step(steps).median for tool in selected}
        met = ours_ms <= TARGET_MS
        verdict.append(
            f"- opsguard PlanRunner {ours_ms:.2f} ms per step: target ≤ {TARGET_MS:.0f} ms {'met' if met else 'MISSED'}, "
            f"stretch ≤ {STRETCH_MS:.0f} ms {'met' if ours_ms <= STRETCH_MS else 'not met'}."
        )
        missed += [] if met else ["per-step target"]
        goals = [("pyinfra", TARGET_VS_PYINFRA), ("Ansible, command module", TARGET_VS_ANSIBLE),
                 ("Ansible, command module, pipelining", TARGET_VS_ANSIBLE)]
        for name, goal in goals:
            if name in by_name:
                factor = common.times_faster(ours_ms, by_name[name])
                verdict.append(f"- vs {name}: {factor:.1f}× faster (target ≥ {goal:.0f}×: "
                               f"{'met' if factor >= goal else 'MISSED'}).")
                missed += [] if factor >= goal else [f"vs {name}"]
        raw = "Ansible, raw module"
        if raw in by_name:
            factor = common.times_faster(ours_ms, by_name[raw])
            verdict.append(
                f"- vs {raw} (not one of the target's configurations, which are Ansible's default and pipelining "
                f"with `command` tasks; shown because `raw` is Ansible's own floor): {factor:.1f}× faster — "
                f"{'also above' if factor >= TARGET_VS_ANSIBLE else 'below'} {TARGET_VS_ANSIBLE:.0f}×."
            )
    return [*lines, "", "Result against the targets:", "", *verdict], missed


def profile(setup: Setup, steps: int) -> str:
    """Given the setup, run opsguard's runner over ``steps`` steps under cProfile; return the top of the profile."""
    profiler = cProfile.Profile()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # the runner logs each step
        profiler.enable()
        loop_ms = sum(_opsguard_runner(setup, steps))
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(30)
    return f"opsguard PlanRunner, {steps} steps: {loop_ms / steps:.2f} ms per step under cProfile\n{text.getvalue()}"


def main() -> int:
    """Measure (or run one worker, or profile); print the Markdown section; return 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--only", default="", help="comma-separated substrings of tool names to measure")
    parser.add_argument("--no-install", action="store_true", help="do not install the peer tools when missing")
    parser.add_argument("--profile", action="store_true", help="cProfile opsguard's runner over 500 steps and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        run_worker(options.worker, options.steps, Setup.load(options.setup))
        return 0
    common.check_runs(options.runs)
    selected = tools()
    if options.only:
        wanted = [part.strip().lower() for part in options.only.split(",") if part.strip()]
        selected = [tool for tool in selected if any(part in tool.name.lower() for part in wanted)]
    if any(tool.peer for tool in selected):
        common.ensure_peer_tools(install=not options.no_install)
    machine = common.machine_lines(["ansible-core", "pyinfra", "paramiko"])
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as directory, sandbox(Path(directory)) as (hosts, setup):
        if options.profile:
            print(profile(setup, 500))
            return 0
        checks = check_host(hosts, setup)
        measure(selected, setup, options.steps, options.runs, options.warmup)
    shown = [".venv/bin/python", "bench/bench_step_overhead.py", "--runs", str(options.runs), "--warmup",
             str(options.warmup), "--steps", str(options.steps)]  # fmt: skip
    if options.only:
        shown += ["--only", options.only]
    lines, missed = report(selected, options.steps, options.runs, options.warmup, shown, checks)
    print("\n".join(["Machine:", "", *machine, "", *lines]))
    if missed:
        print(f"MISSED: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
