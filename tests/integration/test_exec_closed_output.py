"""Exit codes and ledger outcomes stay honest when the local side fails mid-change (a closed stdout).

Real sshd hosts + the provider simulator + the real CLI (see guard_support.py).
"""

from __future__ import annotations

import pytest

from tests.integration.guard_support import UPGRADE, GuardWorlds

pytestmark = pytest.mark.integration


def test_exec_with_closed_stdout_never_reports_failed_for_a_command_that_succeeded(worlds: GuardWorlds) -> None:
    """`opsguard exec chat -- apt-get -y upgrade | head -0`: the reader goes away before the first line.

    The remote command exits 0. Whatever opsguard does about its own broken stdout, it must not say
    "failed" (exit 1, ledger failed): either it ignores the lost output (exit 0, ok) or it stopped
    watching the command mid-way (exit 4, unknown: docs/design.md, guard rule 6).
    """
    world = worlds()
    world.hosts.set_responses("chat", {"rules": [{"prefix": ["apt-get"], "stdout": "Reading package lists...\n", "sleep": 0.3}]})

    process = world.popen("exec", "chat", "--yes", "--", *UPGRADE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before opsguard prints the host's first line
    stderr = process.stderr.read()
    code = process.wait(timeout=60)

    end = world.last_run_end("chat")
    assert world.commands("chat") == [list(UPGRADE)]
    assert (code, end["outcome"]) in ((0, "ok"), (4, "unknown")), (code, end, stderr)
