"""Shared helpers for the bench scripts: timing, statistics, Markdown tables, the machine, peer tools.

Not a test module. The bench scripts import it as ``common`` (they put bench/ on sys.path by being
run as ``.venv/bin/python bench/bench_x.py``).

Peer tools (Ansible, pyinfra) live in their OWN virtualenv, ``.venv/bench-peers`` (inside the
git-ignored .venv, removed by ``make clean``), installed from bench/peers-requirements.txt.
Why not the repo venv: pyinfra 3 requires ``paramiko<5`` and pulls ``types-paramiko``, so
installing it next to opsguard would downgrade the paramiko opsguard runs on (5.x -> 4.x) and
turn ``mypy`` red on opsguard/transport.py. The peers are only ever run as command-line programs,
so a separate interpreter costs them nothing. Fabric and paramiko are opsguard's own runtime
dependencies and are measured from the repo venv.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
OPSGUARD = str(VENV_BIN / "opsguard")
PEERS_VENV = REPO_ROOT / ".venv" / "bench-peers"
PEERS_BIN = PEERS_VENV / "bin"
PEERS_REQUIREMENTS = BENCH_DIR / "peers-requirements.txt"
MIN_RUNS = 5


@dataclass
class Series:
    """Samples of one measured quantity (milliseconds unless the caller says otherwise)."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Given the samples, return their median; raise ValueError when there are none."""
        if not self.samples:
            raise ValueError(f"{self.label}: no samples")
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def spread(self, digits: int = 1) -> str:
        """Given the samples, return "min–max" formatted with ``digits`` decimals."""
        return f"{self.low:.{digits}f}–{self.high:.{digits}f}"


class CommandFailed(RuntimeError):
    """A timed command exited non-zero (the message holds its argv and the tail of its output)."""


def time_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300.0,
) -> float:
    """Given argv, run it once as a fresh process and return its wall-clock time in ms; raise CommandFailed if it fails.

    Wall clock is ``time.perf_counter`` around ``subprocess.run``; stdin is /dev/null, output is
    captured (to pipes) so every tool pays the same for its printing.
    """
    return run_timed(argv, env=env, cwd=cwd, timeout=timeout)[0]


def run_timed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300.0,
) -> tuple[float, str, str]:
    """Given argv, run it once as in time_command; return (wall-clock ms, stdout, stderr); raise CommandFailed if it fails."""
    start = time.perf_counter()
    completed = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd or REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    elapsed = (time.perf_counter() - start) * 1000
    if completed.returncode != 0:
        tail = (completed.stderr or b"").decode(errors="replace")[-600:] or (completed.stdout or b"").decode(
            errors="replace"
        )[-600:]
        raise CommandFailed(f"{shlex.join(argv)} exited {completed.returncode}: {tail}")
    return elapsed, (completed.stdout or b"").decode(errors="replace"), (completed.stderr or b"").decode(errors="replace")


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Given extra variables, return os.environ without opsguard/profiling overrides, plus the extras."""
    env = dict(os.environ)
    for name in ("OPSGUARD_INVENTORY", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def ratio(value: float, peer: float) -> str:
    """Given a figure and its peer's, return value/peer as text ("0.32"), or "–" if the peer is zero."""
    if peer == 0:
        return "–"
    result = value / peer
    return f"{result:.2f}" if result < 10 else f"{result:.1f}"


def times_faster(ours: float, theirs: float) -> float:
    """Given our figure and a peer's (lower is better), return how many times faster ours is."""
    return theirs / ours if ours > 0 else float("inf")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> list[str]:
    """Given headers, rows of cell text and which columns are numeric (right-aligned), return Markdown lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if flag else "---" for flag in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str, python: str | None = None) -> str:
    """Given a distribution name (and optionally another interpreter), return its installed version or "missing"."""
    if python is None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"
    code = f"import importlib.metadata as m\ntry: print(m.version({name!r}))\nexcept Exception: print('missing')"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "missing"


def machine_lines(peer_packages: Sequence[str] = ()) -> list[str]:
    """Given peer distributions to name, return Markdown bullet lines describing this machine and versions."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    ours = ", ".join(f"{name} {package_version(name)}" for name in ("paramiko", "fabric", "invoke", "click"))
    lines = [
        f"- CPU: {cpu_model()}, nproc = {len(os.sched_getaffinity(0))}; load average before the run: {load}",
        f"- Python: {platform.python_version()} ({sys.executable}); OS: {platform.system()} {platform.release()}",
        f"- opsguard venv: {ours}",
    ]
    if peer_packages:
        peers_python = str(PEERS_BIN / "python")
        versions = ", ".join(f"{name} {package_version(name, peers_python)}" for name in peer_packages)
        lines.append(f"- peer tools venv (`.venv/bench-peers`): {versions}")
    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    if ssh_version:
        lines.append(f"- OpenSSH: {ssh_version}")
    return lines


def ensure_peer_tools(*, install: bool = True) -> Path:
    """Given whether installing is allowed, return the peer tools' bin dir, creating the venv when missing.

    Raise SystemExit naming the command to run when the tools are missing and ``install`` is False,
    or when pip fails.
    """
    wanted = [line.split("#")[0].strip() for line in PEERS_REQUIREMENTS.read_text().splitlines()]
    wanted = [line for line in wanted if line]
    marker = PEERS_VENV / ".installed"
    if marker.is_file() and marker.read_text() == "\n".join(wanted):
        return PEERS_BIN
    if not install:
        raise SystemExit(f"peer tools are not installed in {PEERS_VENV}: run without --no-install")
    print(f"installing the peer tools into {PEERS_VENV} ({', '.join(wanted)})", file=sys.stderr)
    if not (PEERS_BIN / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    result = subprocess.run(
        [str(PEERS_BIN / "python"), "-m", "pip", "install", "--quiet", "-r", str(PEERS_REQUIREMENTS)],
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"pip could not install {PEERS_REQUIREMENTS} into {PEERS_VENV}")
    marker.write_text("\n".join(wanted))
    return PEERS_BIN


def check_runs(runs: int) -> None:
    """Given the requested number of runs, return if it is enough for a median with a spread; raise SystemExit if not."""
    if runs < MIN_RUNS:
        raise SystemExit(f"--runs must be at least {MIN_RUNS} (medians with min–max need them)")
