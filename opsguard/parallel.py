"""Run per-host work on daemon threads under ONE deadline: the read-only commands never hang on one host.

backup-check reads provider APIs this way, audit and health run their host probes this way: at most
``workers`` hosts at once, each host's reads in parallel, and whatever has not answered by the
deadline is left behind (its host is reported as not answered).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HostJob:
    """The reads of one host: (key, call) pairs, run in parallel with each other."""

    host: str
    reads: tuple[tuple[tuple[str, str], Callable[[], Any]], ...]


def run_bounded(jobs: Sequence[HostJob], workers: int, timeout: float) -> dict[tuple[str, str], tuple[bool, Any]]:
    """Given host jobs, how many hosts to work on at once and a timeout in seconds, run every read
    on daemon threads and return {key: (succeeded, value or exception)} for the reads that
    finished in time. At most ``workers`` hosts are in progress at once; a host's reads run in
    parallel, so at most ``workers`` x (reads per host) requests are in flight.

    Daemon threads on purpose: a call stuck past the deadline is abandoned and cannot keep the
    process alive (a ThreadPoolExecutor would be joined at exit and could hang the run).
    """
    results: dict[tuple[str, str], tuple[bool, Any]] = {}
    total = sum(len(job.reads) for job in jobs)
    if total == 0:
        return results
    pending: queue.SimpleQueue[HostJob] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    lock = threading.Lock()
    done = threading.Event()
    stop = threading.Event()

    def read(key: tuple[str, str], call: Callable[[], Any]) -> None:
        try:
            outcome: tuple[bool, Any] = (True, call())
        except BaseException as error:  # every failure becomes a problem of its host
            outcome = (False, error)
        with lock:
            if not stop.is_set():
                results[key] = outcome
                if len(results) == total:
                    done.set()

    def worker() -> None:
        while not stop.is_set():
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            if not job.reads:
                continue
            helpers = [
                threading.Thread(target=read, args=item, name=f"opsguard-{job.host}", daemon=True)
                for item in job.reads[1:]
            ]
            for helper in helpers:
                helper.start()
            read(*job.reads[0])
            for helper in helpers:
                helper.join()

    for number in range(max(1, min(workers, len(jobs)))):
        threading.Thread(target=worker, name=f"opsguard-worker-{number}", daemon=True).start()
    done.wait(timeout)
    with lock:
        stop.set()  # late answers are dropped: the report must not change after the deadline
        return dict(results)
