"""systemctl: a systemd host where every unit is active and enabled and nothing has failed.

is-system-running answers "running"; is-active / is-enabled answer for each unit; is-failed
answers "active" and exits 1; status shows each unit running; --failed (or --state=failed) lists
no unit; ``systemctl reboot`` gives the host a new boot id and boot time (btime in <root>/proc/stat) at once (the host "comes back"
without going down: sshd keeps running). service, reboot, shutdown and journalctl have no fake:
they are journaled and succeed.
"""

from __future__ import annotations

import os
import time

from .core import Call, options_and_words, out


def systemctl(call: Call) -> int:
    """Answer systemctl: is-system-running, is-active, is-enabled, is-failed, status, --failed, reboot."""
    options, words = options_and_words(call.args, ("-p", "--property", "--state", "-t", "--type"))
    action = words[0] if words else ""
    if action == "is-system-running":
        out("running\n")
    elif "--failed" in options or "--state=failed" in options or action == "--failed":
        if "--no-legend" not in options:  # with --no-legend and nothing failed, systemctl prints nothing
            out("  UNIT LOAD ACTIVE SUB DESCRIPTION\n\n0 loaded units listed.\n")
    elif action == "is-active":
        out("".join("active\n" for _ in words[1:]) or "active\n")
    elif action == "is-enabled":
        out("".join("enabled\n" for _ in words[1:]) or "enabled\n")
    elif action == "is-failed":
        out("active\n")
        return 1
    elif action == "show":
        # Every unit exists, is enabled and active, as on a stock host; one block per unit, blank line between.
        out("\n".join(f"Id={unit}\nUnitFileState=enabled\nActiveState=active\n" for unit in words[1:]))
    elif action == "status":
        for unit in words[1:]:
            out(
                f"* {unit} - {unit}\n     Loaded: loaded\n     Active: active (running) since Mon 2024-11-25 03:00:00 UTC\n"
            )
    elif action == "reboot":
        # The host "comes back" at once with a new boot id (it never goes down: sshd keeps running).
        boot_id = os.path.join(call.root, "proc", "sys", "kernel", "random", "boot_id")
        if os.path.exists(boot_id):
            hexits = os.urandom(16).hex()
            with open(boot_id, "w", encoding="utf-8") as target:
                target.write(f"{hexits[:8]}-{hexits[8:12]}-{hexits[12:16]}-{hexits[16:20]}-{hexits[20:]}\n")
        proc_stat = os.path.join(call.root, "proc", "stat")
        if os.path.exists(proc_stat):
            with open(proc_stat, "w", encoding="utf-8") as target:
                target.write(f"btime {int(time.time())}\n")
    return 0
