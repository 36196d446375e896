"""Shared inputs for the playbook tests: hosts, a package file, realistic host output, every plan."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from opsguard.inventory import Host
from opsguard.plan import Plan, Step
from opsguard.playbooks import all_playbooks, build_plan
from tests.unit.release_archives import write_tar, write_zip

TS = "20250101T000000Z"


def make_host(name: str = "chat", roles: tuple[str, ...] = ("zpro",), variables: dict[str, Any] | None = None) -> Host:
    """Given a name, roles and inventory vars, return a Host as load_inventory would."""
    return Host(
        name=name,
        address=f"{name}.example.test",
        port=22,
        user="root",
        provider="vultr",
        instance=None,
        roles=roles,
        remote_lock="/run/lock/opsguard",
        backups=None,
        vars=MappingProxyType(dict(variables or {})),
        source="inventory.toml",
    )


def package_file(directory: Path, name: str = "update.zip", content: bytes | None = None) -> Path:
    """Given a directory and a file name, write a small release archive there (or ``content``) and return its path.

    The archive's kind follows the name (.zip, .tar.gz/.tgz, .tar), as the plan's unpack step does.
    """
    path = directory / name
    if content is not None:
        path.write_bytes(content)
    elif name.lower().endswith(".zip"):
        write_zip(path)
    else:
        write_tar(path, compression="gz" if name.lower().endswith((".tar.gz", ".tgz")) else "")
    return path


def upgrade_plan(directory: Path, name: str = "update.zip", variables: dict[str, Any] | None = None) -> Plan:
    """Given a temp dir, return the platform_upgrade plan for a Zpro host with a package there."""
    host = make_host(variables=variables)
    return build_plan("platform_upgrade", host, {"package": str(package_file(directory, name)), "ts": TS})


def every_plan(directory: Path, variables: dict[str, Any] | None = None) -> list[Plan]:
    """Given a temp dir, return a plan of every REGISTERED playbook in each shape it declares (its examples).

    The list comes from the registry: a new playbook is in every safety test without anyone editing them.
    """
    plans = []
    for playbook in all_playbooks():
        for number, example in enumerate(playbook.examples):
            host = make_host(playbook.name.replace("_", "-"), example.roles, variables)
            options: dict[str, Any] = {"ts": TS, **example.options}
            if example.package is not None:
                options["package"] = str(package_file(directory, f"{playbook.name}-{number}.{example.package}"))
            plans.append(build_plan(playbook.name, host, options))
    return plans


def step_index(plan: Plan, fragment: str) -> int:
    """Given a plan and part of a step name, return the index in plan.steps() of the one step named so."""
    matches = [index for index, step in enumerate(plan.steps()) if fragment in step.name]
    assert len(matches) == 1, f"{fragment!r} names {len(matches)} steps in {plan.playbook}"
    return matches[0]


def find_step(plan: Plan, fragment: str) -> Step:
    """Given a plan and part of a step name, return that step."""
    return plan.steps()[step_index(plan, fragment)]


def check_of(step: Step) -> Any:
    """Given a step, return its check's test function (asserting it has one)."""
    assert step.check is not None, f"step {step.name!r} has no check"
    return step.check.test


# -- realistic host output -------------------------------------------------------------------------------


def pm2_jlist(processes: dict[str, tuple[str, int]], preface: str = "") -> str:
    """Given {name: (status, restarts)}, return pm2 jlist output shaped like pm2 5 prints it."""
    items = []
    for index, (name, (status, restarts)) in enumerate(processes.items()):
        items.append(
            {
                "pid": 4100 + index if status == "online" else 0,
                "name": name,
                "pm2_env": {
                    "name": name,
                    "namespace": "default",
                    "pm_exec_path": f"/home/deployzdg/zpro.io/{name.split('-')[-1]}/dist/server.js",
                    "pm_cwd": f"/home/deployzdg/zpro.io/{name.split('-')[-1]}",
                    "exec_mode": "fork_mode",
                    "status": status,
                    "restart_time": restarts,
                    "unstable_restarts": 0,
                    "pm_uptime": 1735689600000,
                    "axm_monitor": {"Heap Size": {"value": "81.52", "unit": "MiB"}},
                    "env": {"HOME": "/home/deployzdg", "NODE_ENV": "production"},
                },
                "pm_id": index,
                "monit": {"memory": 123_456_789, "cpu": 0.4},
            }
        )
    return preface + json.dumps(items) + "\n"


PM2_BOTH_ONLINE = pm2_jlist({"zpro-backend": ("online", 3), "zpro-frontend": ("online", 1)})

DF_OK = """\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda1         81106868 40553434  40553434      50% /
/dev/vda1         81106868 40553434  40553434      50% /
/dev/vdb1         20480000  4096000  16384000      20% /var
"""

DF_VAR_FULL = """\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda1         81106868 40553434  40553434      50% /
/dev/vdb1         20480000 19456000   1024000      95% /var
"""

FREE_8GB = """\
               total        used        free      shared  buff/cache   available
Mem:      8323600384  3211476992   724074496    46542848  4388048896  4806066176
Swap:     2147479552   268435456  1879044096
"""

FREE_2GB = """\
               total        used        free      shared  buff/cache   available
Mem:      2062024704  1211476992   224074496    46542848   626473216   700066176
Swap:              0           0           0
"""

ENV_GOOD = """\
PORT=3000
DB_PORT=5432
POSTGRES_USER=zpro
POSTGRES_DB=zpro_db
BACKEND_URL=https://api.chat.example.test
FRONTEND_URL="https://chat.example.test"
"""

APT_SIMULATION = """\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following packages will be upgraded:
  containerd.io docker-ce libssl3 nginx nginx-common nodejs openssl
7 upgraded, 0 newly installed, 0 to remove and 2 not upgraded.
Inst libssl3 [3.0.2-0ubuntu1.15] (3.0.2-0ubuntu1.18 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst openssl [3.0.2-0ubuntu1.15] (3.0.2-0ubuntu1.18 Ubuntu:22.04/jammy-updates [amd64])
Inst containerd.io [1.6.28-1] (1.7.22-1 Docker CE:jammy [amd64])
Inst docker-ce [5:25.0.3-1~ubuntu.22.04~jammy] (5:27.3.1-1~ubuntu.22.04~jammy Docker CE:jammy [amd64])
Inst nginx-common [1.18.0-6ubuntu14.4] (1.18.0-6ubuntu14.5 Ubuntu:22.04/jammy-updates [all])
Inst nginx [1.18.0-6ubuntu14.4] (1.18.0-6ubuntu14.5 Ubuntu:22.04/jammy-updates [amd64])
Inst nodejs [20.11.0-1nodesource1] (20.18.0-1nodesource1 . [amd64])
Conf libssl3 (3.0.2-0ubuntu1.18 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Conf openssl (3.0.2-0ubuntu1.18 Ubuntu:22.04/jammy-updates [amd64])
"""

COMPOSE_CONFIG = """\
name: stack
services:
  n8n:
    image: docker.n8n.io/n8nio/n8n:latest
  n8n-db:
    image: postgres:16-alpine
  typebot-builder:
    image: baptistearno/typebot-builder:latest
  typebot-db:
    image: postgres:16
  typebot-viewer:
    image: baptistearno/typebot-viewer:latest
networks:
  default:
    name: stack_default
volumes:
  db-data:
    name: stack_db-data
"""

# The migration probe's output: SequelizeMeta's names (read-only SQL), then the release's migration files.
MIGRATION_LISTING = """\
--- applied
20200717133438-create-users.js
20200717144403-create-contacts.js
20240915120000-add-campaign-fields.js
--- files
20200717133438-create-users.js
20200717144403-create-contacts.js
20240915120000-add-campaign-fields.js
"""
