"""The sandbox stub package run as the hosts run it (installed launcher, stubs-bin links), without sshd.

The integration tier runs the same stubs over SSH; here each call is a bash command on this machine
with the host's PATH and HOME, so the dispatch table, the per-call imports and the state one fake
leaves for another are checked in milliseconds.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsguard.readonly import PM2_LISTING, PM2_NOT_RUNNING, as_user
from opsguard.sandbox.hosts import (
    STUB_NAMES,
    STUB_PACKAGE,
    STUBS_DIR,
    SandboxHost,
    SandboxHosts,
    install_links,
    install_stub,
)
from opsguard.sandbox.stubs.dispatch import FAKES

CORE_MODULES = {STUB_PACKAGE, *(f"{STUB_PACKAGE}.{name}" for name in ("core", "recording", "rules", "dispatch"))}


@dataclass
class StubHost:
    """A sandbox host's root with the stubs installed, and a way to run commands as its SSH sessions do."""

    hosts: SandboxHosts
    launcher: Path
    name: str = "chat"

    @property
    def root(self) -> Path:
        return self.hosts.host(self.name).root

    def run(self, command: str, *, cwd: str = "", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Given a shell command (and a directory inside the root), run it with the host's session environment."""
        root = self.root
        environment = {
            "PATH": f"{root}/stubs-bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": f"{root}/root",
            "USER": "root",
            "OPSGUARD_SANDBOX_ROOT": str(root),
        }
        return subprocess.run(
            ["bash", "-c", command],
            cwd=root / cwd,
            env=environment,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_stub(tmp_path_factory.mktemp("stubs"))


@pytest.fixture
def stub_host(launcher: Path, tmp_path: Path) -> Iterator[StubHost]:
    """One Zpro host ("chat") and one integrations host ("ia"), laid out as SandboxHosts.start does, no sshd."""
    hosts = SandboxHosts(tmp_path, hosts=[("chat", "127.0.0.2"), ("ia", "127.0.0.4")])
    for name, address in (("chat", "127.0.0.2"), ("ia", "127.0.0.4")):
        root = tmp_path / "hosts" / name
        root.mkdir(parents=True)
        role = "integrations" if name == "ia" else "zpro"
        hosts.hosts[name] = SandboxHost(name, address, 0, root, root / "journal.jsonl", 0, role)
        install_links(root / "stubs-bin", launcher)
        hosts.reset(name)
    yield StubHost(hosts, launcher)
    hosts.stop()  # the process standing in for the pm2 daemons


def stub_modules_loaded(host: StubHost, command: list[str]) -> tuple[int, list[str]]:
    """Given a stubbed command's argv, run it as the launcher does; return its status and the modules it imported."""
    library = host.launcher.parent / "stublib"
    script = (
        "import atexit, sys\n"
        f"sys.path.insert(0, {str(library)!r})\n"
        f"sys.argv = {[str(host.root / 'stubs-bin' / command[0]), *command[1:]]!r}\n"
        "atexit.register(lambda: print('\\nMODULES ' + ' '.join(sorted(sys.modules)), file=sys.stderr))\n"
        f"from {STUB_PACKAGE}.dispatch import run\n"
        "run()\n"
    )
    completed = subprocess.run(
        [sys.executable, "-IS", "-c", script],  # the launcher's interpreter and flags
        cwd=host.root,
        env={"PATH": f"{host.root}/stubs-bin:/usr/bin:/bin", "HOME": f"{host.root}/root", "USER": "root"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    modules = completed.stderr.rsplit("MODULES ", 1)[1].split()
    return completed.returncode, modules


# -- the dispatch table and the installed package ----------------------------------------------------


def test_stubs_dispatch_fakes_only_commands_linked_on_the_hosts() -> None:
    # A fake for a name missing from STUB_NAMES would never run: the real command would.
    assert sorted(set(FAKES) - set(STUB_NAMES)) == []


@pytest.mark.parametrize("command", sorted(FAKES))
def test_stubs_dispatch_each_fake_is_a_documented_function(command: str) -> None:
    module_name, function_name = FAKES[command]
    module = importlib.import_module(f"opsguard.sandbox.stubs.{module_name}")
    function = getattr(module, function_name)
    assert inspect.isfunction(function) and list(inspect.signature(function).parameters) == ["call"]
    assert module.__doc__ and function.__doc__, f"{module_name}.{function_name} must say what it models"


def test_stubs_install_copies_and_compiles_every_module(tmp_path: Path) -> None:
    package = install_stub(tmp_path).parent / "stublib" / STUB_PACKAGE
    sources = sorted(path.name for path in STUBS_DIR.glob("*.py"))
    assert sorted(path.name for path in package.glob("*.py")) == sources and "dispatch.py" in sources
    # Compiled at install: no call pays for compiling, and concurrent first calls do not race to write .pyc.
    missing = [name for name in sources if not Path(importlib.util.cache_from_source(str(package / name))).is_file()]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "fake_modules"),
    [
        (["df", "-h"], {"fake_df_free"}),
        (["docker", "ps"], {"fake_docker", "containers", "gotemplate"}),
        (["reboot"], set()),
    ],
)
def test_stubs_call_imports_only_the_core_and_its_own_fake(
    stub_host: StubHost, command: list[str], fake_modules: set[str]
) -> None:
    status, modules = stub_modules_loaded(stub_host, command)
    assert status == 0
    loaded = {name for name in modules if name.split(".")[0] == STUB_PACKAGE}
    assert loaded == CORE_MODULES | {f"{STUB_PACKAGE}.{name}" for name in fake_modules}
    # Start-up time: none of these is imported by a plain call.
    assert {"json", "re", "typing", "shlex"} & set(modules) == set()


def test_stubs_call_refused_outside_a_stubs_bin_directory(stub_host: StubHost) -> None:
    result = stub_host.run(f"{stub_host.launcher} df")
    assert result.returncode == 97 and "not inside a sandbox host's stubs-bin directory" in result.stderr
    assert stub_host.hosts.journal("chat") == []


# -- what the fakes leave for each other -------------------------------------------------------------


def test_stubs_pm2_stop_makes_curl_refuse_the_app_port_until_restart(stub_host: StubHost) -> None:
    probe = "curl -s -o /dev/null -w '%{http_code}' http://localhost:3000"
    assert stub_host.run(probe).stdout == "200"
    assert stub_host.run("sudo -n -iu deployzdg -- pm2 stop zpro-backend").returncode == 0
    refused = stub_host.run(probe)
    assert (refused.returncode, refused.stdout) == (7, "000")
    assert stub_host.run("sudo -n -iu deployzdg -- pm2 restart zpro-backend").returncode == 0
    listed = json.loads(stub_host.run("sudo -n -iu deployzdg -- pm2 jlist").stdout)
    assert [(app["name"], app["pm2_env"]["status"], app["pm2_env"]["restart_time"]) for app in listed] == [
        ("zpro-backend", "online", 1),
        ("zpro-frontend", "online", 0),
    ]
    assert stub_host.run(probe).stdout == "200"


def test_stubs_sequelize_migrate_applies_new_file_that_psql_then_lists(stub_host: StubHost) -> None:
    backend = "home/deployzdg/zpro.io/backend"
    (stub_host.root / backend / "dist/database/migrations/20250101000000-add-tags.js").write_text("//\n")
    query = """psql -U zpro -tAc 'SELECT name FROM "SequelizeMeta" ORDER BY name'"""
    assert "20250101000000-add-tags.js" not in stub_host.run(query).stdout
    assert "down 20250101000000-add-tags.js" in stub_host.run("npx sequelize db:migrate:status", cwd=backend).stdout
    migrated = stub_host.run("npx sequelize db:migrate", cwd=backend)
    assert "== 20250101000000-add-tags: migrated" in migrated.stdout
    assert stub_host.run(query).stdout.splitlines()[-1] == "20250101000000-add-tags.js"
    assert "No migrations were executed" in stub_host.run("npx sequelize db:migrate", cwd=backend).stdout


def test_stubs_sudo_leaves_stdin_to_the_command_it_runs(stub_host: StubHost) -> None:
    stub_host.run("sudo -n -iu deployzdg -- psql -U zpro", stdin="abcdef")
    records = stub_host.hosts.journal("chat")
    assert [(record["argv"][0], record["user"], record["stdin_bytes"]) for record in records] == [
        ("sudo", "root", 0),
        ("psql", "deployzdg", 6),
    ]


def test_stubs_pm2_journals_whether_its_daemon_ran_and_starts_it(stub_host: StubHost) -> None:
    pid_file = stub_host.root / "home/deployzdg/.pm2/pm2.pid"
    pid_file.unlink()
    stub_host.run("sudo -n -iu deployzdg -- pm2 jlist")
    stub_host.run("sudo -n -iu deployzdg -- pm2 jlist")
    daemon = [record.get("pm2_daemon") for record in stub_host.hosts.journal("chat") if record["argv"][0] == "pm2"]
    assert daemon == [False, True] and pid_file.read_text() == f"{stub_host.hosts.pm2_daemon_pid}\n"
    assert "pm2_daemon" not in stub_host.hosts.journal("chat")[0]  # sudo's record has no pm2 field


def test_stubs_pm2_listing_asks_pm2_only_while_the_daemon_the_sandbox_models_runs(stub_host: StubHost) -> None:
    listing = as_user("deployzdg", PM2_LISTING)
    # Through `sudo -i` (as opsguard sent it before the third review) the login shell expanded $pm2_pid before
    # the listing ran: it never saw the daemon. The fake sudo models -i as the real one does.
    old = f"sudo -n -iu deployzdg -- bash -c {shlex.quote(PM2_LISTING)}"
    assert stub_host.run(old).stdout.strip() == PM2_NOT_RUNNING
    assert [app["name"] for app in json.loads(stub_host.run(listing).stdout)] == ["zpro-backend", "zpro-frontend"]
    # A stale pid file naming a live process that is not the daemon: the probe, like the fake, finds none.
    (stub_host.root / "home/deployzdg/.pm2/pm2.pid").write_text(f"{os.getpid()}\n")
    before = len(stub_host.hosts.journal("chat"))
    assert stub_host.run(listing).stdout.strip() == PM2_NOT_RUNNING
    assert [record["argv"][0] for record in stub_host.hosts.journal("chat")[before:]] == ["sudo"]


def test_stubs_docker_exec_passes_stdin_only_with_interactive_flag(stub_host: StubHost) -> None:
    without = stub_host.run("docker exec postgresql pg_restore -l", stdin="PGDMP")
    with_stdin = stub_host.run("docker exec -i postgresql pg_restore -l", stdin="PGDMP")
    assert without.returncode == 1 and "input file is too short" in without.stderr
    assert with_stdin.returncode == 0 and "TABLE DATA public Tenants" in with_stdin.stdout


def test_stubs_compose_ps_ids_match_docker_inspect_on_integrations_host(stub_host: StubHost) -> None:
    stub_host.name = "ia"
    ids = stub_host.run("docker compose ps -q").stdout.split()
    names = stub_host.run("docker inspect -f '{{.Name}}' " + " ".join(ids)).stdout.split()
    assert names == ["/stack-typebot-db-1", "/stack-typebot-builder-1", "/stack-typebot-viewer-1", "/stack-n8n-1"]


def test_stubs_rule_with_default_adds_its_output_then_the_fake_answers(stub_host: StubHost) -> None:
    stub_host.hosts.set_responses("chat", {"rules": [{"prefix": ["free"], "default": True, "stdout": "first\n"}]})
    lines = stub_host.run("free -m").stdout.splitlines()
    assert lines[0] == "first" and lines[2].split()[:2] == ["Mem:", "8192"]
