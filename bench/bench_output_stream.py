"""Cost of a command's output in opsguard's transport: 20 MB in one line, and 20 MB in short lines. Not a test.

    .venv/bin/python bench/bench_output_stream.py [--runs 3] [--megabytes 20] [--read-size 65536] [--no-ssh]

Method: ``opsguard.transport._LineStream`` (the decoder that turns a stream's bytes into lines for
``on_output`` and keeps the result's text) is fed the output in reads of --read-size bytes (default 64 KiB, what ``Connection.run``
asks a channel for; an SSH channel often hands over less, 32 KiB packets or smaller), with a callback that counts what it is handed (as the terminal printer would see
it). Rows: MEGABYTES of "x" with no newline at all (the worst case: one endless line), and the
same size in 100-character lines. Time = median wall clock of --runs feeds; peak = tracemalloc
peak of one further feed (traced separately: tracing slows allocation). Then, unless --no-ssh,
the same worst case end to end: ``Connection.run("head -c N /dev/zero | tr '\\0' x")`` against
one loopback sshd (SandboxHosts, 127.0.0.2), with an ``on_output`` counter; time is the median
of --runs commands on one connection.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opsguard import transport

T = TypeVar("T")


def feed_once(data: bytes, read_size: int) -> tuple[int, int, int]:
    """Given the output bytes, feed them to one _LineStream in reads; return (kept chars, dropped chars, chars seen)."""
    seen = [0]

    def on_output(stream: str, line: str) -> None:
        seen[0] += len(line)

    stream = transport._LineStream("stdout", on_output)
    view = memoryview(data)
    for start in range(0, len(data), read_size):
        stream.feed(bytes(view[start : start + read_size]))
    kept = stream.finish()
    return len(kept), int(getattr(stream, "dropped", 0)), seen[0]


def timed(action: Callable[[], T], runs: int) -> tuple[float, T]:
    """Given an action, run it ``runs`` times; return (median seconds, the last result)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def peak_megabytes(action: Callable[[], object]) -> float:
    """Given an action, run it once under tracemalloc and return the peak of traced memory in MB."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def in_process_row(label: str, data: bytes, runs: int, read_size: int) -> str:
    """Given a case label, its output bytes, the runs and the read size, return its Markdown row."""
    seconds, (kept, dropped, seen) = timed(lambda: feed_once(data, read_size), runs)
    peak = peak_megabytes(lambda: feed_once(data, read_size))
    return (
        f"| _LineStream, {label}, {read_size} B reads | {len(data) / 1e6:g} MB | **{seconds:.3f}** | {peak:.1f} "
        f"| {kept} | {dropped} | {seen} |"
    )


def in_process_rows(size: int, runs: int, read_size: int) -> list[str]:
    """Given a size and a read size in bytes, return the Markdown rows for the in-process feeds."""
    return [
        in_process_row("one line, no newline", b"x" * size, runs, read_size),
        in_process_row("100-character lines", (b"x" * 99 + b"\n") * (size // 100), runs, read_size),
    ]


def ssh_row(size: int, runs: int) -> str:
    """Given a size in bytes, run the worst case through one loopback sshd; return its Markdown row."""
    from opsguard.sandbox.hosts import SandboxHosts

    with tempfile.TemporaryDirectory(prefix="bench-output-") as workdir:
        hosts = SandboxHosts(Path(workdir) / "sandbox", hosts=[("bench", "127.0.0.2")])
        with hosts:
            inventory = hosts.inventory(providers={"bench": ("vultr", None)})
            seen = [0]

            def on_output(stream: str, line: str) -> None:
                seen[0] += len(line)

            command = f"head -c {size} /dev/zero | tr '\\0' x"
            with transport.connect(inventory.host("bench"), inventory.settings) as connection:
                seconds, result = timed(lambda: connection.run(command, timeout=600, on_output=on_output), runs)
    kept = len(result.stdout)
    dropped = int(getattr(result, "stdout_dropped", 0))
    return f"| Connection.run over sshd, one line | {size / 1e6:g} MB | **{seconds:.3f}** | – | {kept} | {dropped} | {seen[0] // runs} |"


def main() -> int:
    """Parse the options, measure, print a Markdown table; return 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--read-size", type=int, default=65536, help="bytes per feed in the in-process rows")
    parser.add_argument("--no-ssh", action="store_true", help="only the in-process rows")
    options = parser.parse_args()
    size = int(options.megabytes * 1e6)
    print("| case | output | median s | peak traced MB | kept chars | dropped chars | chars to on_output |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in in_process_rows(size, options.runs, options.read_size):
        print(row, flush=True)
    if not options.no_ssh:
        print(ssh_row(size, options.runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
