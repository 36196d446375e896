"""On-host facts for backup-check: disk usage and the newest file in opsguard's backup directory.

What it does: reads `df -P` of the configured paths and of the backup dir, and finds the newest file
under the backup dir (its age and size). The provider-side checks (automatic backups enabled, newest
backup young enough) are done by opsguard/backups.py through the provider APIs; this plan only adds
what can be seen on the host.

Why it is safe: KIND is "read-only" and every step is read-only (df, find, date): it runs in a
read-only session, which refuses any mutating step, and needs no snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opsguard.hostfacts import parse_df, parse_key_values, parse_newest_file
from opsguard.inventory import Host
from opsguard.plan import Facts, Plan, Step
from playbooks._shared import disk_step, number_param, path_param, paths_param, quote

KIND = "read-only"

VARS: dict[str, Any] = {
    "backup_dir": "/var/backups/opsguard",
    "disk_paths": ["/"],
    "disk_limit_percent": 90,
}

OPTIONS: dict[str, Any] = {}


def plan(host: Host, params: Mapping[str, Any]) -> Plan:
    """Given a host and its params (VARS + ts), return the read-only backup-check plan; raise ConfigError on a bad param."""
    backup_dir = path_param(params, "backup_dir")
    disk = disk_step(paths_param(params, "disk_paths"), number_param(params, "disk_limit_percent", minimum=1),
                     also=[backup_dir])
    disk = replace(disk, facts=Facts(("disk_max_used_percent", "disk_max_used_mount"), _disk_facts))
    newest = Step(
        name="newest file in the backup dir",
        command="\n".join(
            [
                f"find {quote(backup_dir)} -type f -printf '%T@ %s %p\\n' 2>/dev/null | sort -n | tail -n 1",
                'echo "now=$(date +%s)"',
            ]
        ),
        mutates=False,
        timeout=120,
        facts=Facts(("local_backup_file", "local_backup_age_seconds", "local_backup_bytes"), local_backup_facts),
        why="the dumps and copies opsguard made before its changes",
    )
    return Plan(
        playbook="backup_check",
        host=host.name,
        kind=KIND,
        summary=f"read-only: disk usage and the newest file in {backup_dir}",
        preflight=(disk, newest),
        params=dict(params),
    )


def _disk_facts(stdout: str) -> dict[str, str]:
    fullest = max(parse_df(stdout), key=lambda row: row.used_percent)
    return {"disk_max_used_percent": str(fullest.used_percent), "disk_max_used_mount": fullest.mount}


def local_backup_facts(stdout: str) -> dict[str, str]:
    """Given the find/date output, return the newest file's path, age in seconds and size ('' when there is none)."""
    lines = stdout.splitlines()
    now = parse_key_values(stdout).get("now", "")
    newest = parse_newest_file(next((line for line in lines if not line.startswith("now=")), ""))
    if newest is None:
        return {"local_backup_file": "", "local_backup_age_seconds": "", "local_backup_bytes": ""}
    if not now.isdigit():
        raise ValueError("date printed no current time")
    return {
        "local_backup_file": newest.path,
        "local_backup_age_seconds": str(max(0, int(int(now) - newest.mtime))),
        "local_backup_bytes": str(newest.size),
    }
