"""The real `opsguard` CLI on good and bad inventories: exact lines, exit codes, no tracebacks.

Most tests run the CLI as a subprocess (tests/fixtures/cli_fixtures.py run_cli); no sockets. The few
that need a command which does not exist yet (one that needs the instance id, one interrupted by
Ctrl-C) register a stand-in command and call ``opsguard.cli.main`` in-process.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import click
import pytest

import opsguard
from opsguard import cli as cli_module
from tests.fixtures.cli_fixtures import REPO_ROOT, run_cli
from tests.unit.inventory_cases import MALFORMED_PARAMS, VALID, VULTR_UUID, Case, inventory_text

SHIPPED_HOSTS_JSON = [
    {
        "name": "chat",
        "address": "chat.ia.nuvemjti.com.br",
        "port": 22,
        "user": "root",
        "provider": "vultr",
        "instance": None,
        "roles": ["zpro"],
        "backups": {"schedule": "daily", "max_age": "26h"},
    },
    {
        "name": "chat2",
        "address": "chat2.ia.nuvemjti.com.br",
        "port": 22,
        "user": "root",
        "provider": "hostinger",
        "instance": None,
        "roles": ["zpro"],
        "backups": {"schedule": "weekly", "max_age": "8d"},
    },
    {
        "name": "ia",
        "address": "ia.nuvemjti.tec.br",
        "port": 22,
        "user": "root",
        "provider": "hostinger",
        "instance": None,
        "roles": ["integrations"],
        "backups": {"schedule": "weekly", "max_age": "8d"},
    },
]


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "inventory.toml"
    path.write_text(text, encoding="utf-8")
    return path


def one_host(name: str) -> str:
    return f'[hosts.{name}]\naddress = "{name}.example.test"\nprovider = "hostinger"\n'


# --- malformed inventories --------------------------------------------------------------------


@pytest.mark.parametrize("case", MALFORMED_PARAMS)
def test_validate_exits_78_with_exact_lines_when_inventory_malformed(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    result = run_cli("-i", str(path), "validate")
    assert result.exit_code == 78
    assert result.stderr.splitlines() == case.lines(path)
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", [p for p in MALFORMED_PARAMS if p.id in ("bad-provider", "toml-syntax-error")])
def test_hosts_exits_78_with_exact_lines_when_inventory_malformed(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    result = run_cli("-i", str(path), "hosts", "--json")
    assert (result.exit_code, result.stdout) == (78, "")
    assert result.stderr.splitlines() == case.lines(path)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--debug", "-i", "{path}", "validate"], id="debug-first"),
        pytest.param(["-i", "{path}", "--debug", "validate"], id="debug-after-inventory"),
    ],
)
def test_validate_shows_traceback_with_debug_when_inventory_malformed(args: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, inventory_text().replace('"vultr"', '"vulture"'))
    result = run_cli(*[arg.format(path=path) for arg in args])
    assert result.exit_code == 78
    assert "Traceback (most recent call last)" in result.stderr
    assert "opsguard.errors.InventoryError" in result.stderr
    assert result.stderr.splitlines()[-1] == f"{path}: hosts.chat.provider: 'vulture' is not one of: vultr, hostinger"


def test_validate_names_default_path_when_inventory_in_cwd_is_malformed(tmp_path: Path) -> None:
    write(tmp_path, inventory_text().replace('"vultr"', '"vulture"'))
    result = run_cli("validate", cwd=tmp_path)
    assert result.exit_code == 78
    assert result.stderr.splitlines() == [
        "inventory.toml: hosts.chat.provider: 'vulture' is not one of: vultr, hostinger"
    ]


def test_hosts_exits_78_naming_default_path_when_no_inventory_anywhere(tmp_path: Path) -> None:
    result = run_cli("hosts", cwd=tmp_path)
    assert result.exit_code == 78
    assert result.stderr.splitlines() == ["inventory.toml: file not found (use -i PATH or set OPSGUARD_INVENTORY)"]
    assert "Traceback" not in result.output


# --- good inventories -------------------------------------------------------------------------


def test_validate_prints_one_line_summary_when_instances_unset(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    result = run_cli("-i", str(path), "validate")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}: ok, 2 hosts (chat, chat2); instance not set for chat, chat2 (run 'opsguard discover')"
    ]
    assert result.stderr == ""


def test_validate_prints_plain_summary_when_instances_set(tmp_path: Path) -> None:
    path = write(tmp_path, inventory_text(chat=f'instance = "{VULTR_UUID}"', chat2="instance = 123456"))
    result = run_cli("-i", str(path), "validate")
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{path}: ok, 2 hosts (chat, chat2)\n", "")


def test_validate_accepts_shipped_inventory_from_repo_root() -> None:
    result = run_cli("validate", cwd=REPO_ROOT)
    assert result.exit_code == 0
    assert result.stdout == (
        "inventory.toml: ok, 3 hosts (chat, chat2, ia); instance not set for chat, chat2, ia (run 'opsguard discover')\n"
    )


def test_hosts_json_lists_shipped_hosts_with_providers_roles_backups() -> None:
    result = run_cli("hosts", "--json", cwd=REPO_ROOT)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == {"inventory": "inventory.toml", "hosts": SHIPPED_HOSTS_JSON}


def test_hosts_prints_table_of_shipped_hosts() -> None:
    result = run_cli("hosts", cwd=REPO_ROOT)
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["HOST", "ADDRESS", "PROVIDER", "INSTANCE", "ROLES", "BACKUPS"],
        ["chat", "chat.ia.nuvemjti.com.br", "vultr", "not", "set", "zpro", "daily,", "max", "26h"],
        ["chat2", "chat2.ia.nuvemjti.com.br", "hostinger", "not", "set", "zpro", "weekly,", "max", "8d"],
        ["ia", "ia.nuvemjti.tec.br", "hostinger", "not", "set", "integrations", "weekly,", "max", "8d"],
    ]


def test_hosts_json_shows_instance_ids_with_their_types_when_set(tmp_path: Path) -> None:
    path = write(tmp_path, inventory_text(chat=f'instance = "{VULTR_UUID}"', chat2="instance = 123456"))
    result = run_cli("-i", str(path), "hosts", "--json")
    assert result.exit_code == 0, result.stderr
    instances = {host["name"]: host["instance"] for host in json.loads(result.stdout)["hosts"]}
    assert instances == {"chat": VULTR_UUID, "chat2": 123456}


# --- where the inventory comes from -----------------------------------------------------------


def hosts_in(result_stdout: str) -> list[str]:
    return [host["name"] for host in json.loads(result_stdout)["hosts"]]


def test_hosts_reads_opsguard_inventory_when_no_option(tmp_path: Path) -> None:
    from_env = write(tmp_path / "env", one_host("alpha"))
    write(tmp_path / "cwd", one_host("gamma"))
    result = run_cli("hosts", "--json", env={"OPSGUARD_INVENTORY": str(from_env)}, cwd=tmp_path / "cwd")
    assert result.exit_code == 0, result.stderr
    assert hosts_in(result.stdout) == ["alpha"]


@pytest.mark.parametrize("flag", ["-i", "--inventory"])
def test_hosts_prefers_inventory_option_over_environment(flag: str, tmp_path: Path) -> None:
    from_env = write(tmp_path / "env", one_host("alpha"))
    from_option = write(tmp_path / "option", one_host("beta"))
    result = run_cli(flag, str(from_option), "hosts", "--json", env={"OPSGUARD_INVENTORY": str(from_env)})
    assert result.exit_code == 0, result.stderr
    assert hosts_in(result.stdout) == ["beta"]


def test_hosts_reads_inventory_in_cwd_when_no_option_or_environment(tmp_path: Path) -> None:
    write(tmp_path, one_host("gamma"))
    result = run_cli("hosts", "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert hosts_in(result.stdout) == ["gamma"]


def test_validate_names_environment_path_when_it_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "inventory.toml"
    result = run_cli("validate", env={"OPSGUARD_INVENTORY": str(missing)})
    assert result.exit_code == 78
    assert result.stderr.splitlines() == [f"{missing}: file not found (use -i PATH or set OPSGUARD_INVENTORY)"]


# --- version, help, usage ---------------------------------------------------------------------


def test_version_prints_package_version() -> None:
    result = run_cli("--version")
    assert (result.exit_code, result.stdout) == (0, f"opsguard, version {opsguard.__version__}\n")
    assert opsguard.__version__ == "0.1.0"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0_listing_global_options_and_commands(flag: str) -> None:
    result = run_cli(flag)
    assert result.exit_code == 0
    for text in ("-i, --inventory PATH", "--debug", "--version", "hosts", "validate", "backup-check"):
        assert text in result.stdout


def test_unknown_command_exits_2_as_usage_error() -> None:
    result = run_cli("no-such-command")
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.output


# --- in-process: stand-in commands through opsguard.cli.main -----------------------------------


def install_command(monkeypatch: pytest.MonkeyPatch, name: str, command: click.Command) -> None:
    """Register a stand-in command module, as cli.COMMANDS would find a real one."""
    module = types.ModuleType(f"opsguard.commands._test_{name}")
    module.command = command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli_module.COMMANDS, name, (f"_test_{name}", "command", "stand-in for a test"))


def run_main(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        cli_module.main(list(args))
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_command_exits_78_with_exact_line_when_instance_needed_but_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @click.command()
    @click.argument("host")
    @click.pass_obj
    def needs_instance(app: cli_module.AppContext, host: str) -> None:
        app.inventory().host(host).require_instance()
        click.echo("reached the provider")

    install_command(monkeypatch, "needs-instance", needs_instance)
    write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path)
    assert run_main("needs-instance", "chat") == 78
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["inventory.toml: hosts.chat.instance is not set (run 'opsguard discover')"]
    assert captured.out == ""


def test_command_exits_130_not_refused_when_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SAFETY regression: click turns Ctrl-C into Abort; it once came out as exit 3 "nothing was changed".
    @click.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    install_command(monkeypatch, "interrupted", interrupted)
    assert run_main("interrupted") == 130
    error_output = capsys.readouterr().err
    assert "opsguard: interrupted" in error_output
    assert "nothing was changed" not in error_output


def test_command_exits_3_nothing_changed_when_operator_declines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @click.command()
    def asks() -> None:
        click.confirm("Snapshot and upgrade chat?", abort=True)
        click.echo("changed")

    install_command(monkeypatch, "asks", asks)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert run_main("asks") == 3
    captured = capsys.readouterr()
    assert "changed\n" not in captured.out
    assert captured.err.splitlines()[-1] == "opsguard: aborted; nothing was changed"
