"""The Fabric tasks bench/bench_fab_overhead.py times: N calls of one command, each timed, the times printed as JSON.

Written for plain Fabric: the same task runs with a fabric.Connection and under `opsguard fab`.
"""

import json
import time

from fabric import task

CHANGE = ": > bench-marker"  # a write (opsguard records it as a mutating step), no program started
READ = "true"  # in the read-only vocabulary (opsguard records it as a read)


def timed_calls(c, command, count):
    """Run ``command`` ``count`` times with hide=True; print each call's ms as JSON on the last line of stdout."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        c.run(command, hide=True)
        times.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"step_ms": times}))


@task
def changes(c, count=1):
    """``count`` writes, each its own call."""
    timed_calls(c, CHANGE, count)


@task
def reads(c, count=1):
    """``count`` reads (`true`), each its own call."""
    timed_calls(c, READ, count)
