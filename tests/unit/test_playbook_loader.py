"""opsguard.playbooks: loading by name, params (defaults < inventory vars < command line), one-line errors."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

from opsguard.errors import ConfigError
from opsguard.plan import Plan
from opsguard.playbooks import Playbook, build_plan, list_playbooks, load_playbook, params_for, playbook_for_upgrade
from tests.unit.playbook_cases import TS, make_host, package_file


def _one_line(error: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_playbook_loader_lists_the_four_builtin_playbooks() -> None:
    assert sorted(list_playbooks()) == ["platform_upgrade", "rollback", "stack_upgrade", "update"]


@pytest.mark.parametrize("name", ["update", "platform_upgrade", "stack_upgrade", "rollback"])
def test_playbook_loader_builtin_playbooks_follow_the_contract(name: str) -> None:
    playbook = load_playbook(name)
    assert isinstance(playbook, Playbook) and playbook.name == name
    module = sys.modules[f"opsguard.playbooks.{name}"]
    assert module.__doc__ and "safe" in module.__doc__
    assert playbook.variables and playbook.examples and callable(playbook.build)


def test_playbook_contract_refuses_a_playbook_without_examples() -> None:
    with pytest.raises(ValueError, match="example"):
        Playbook(name="x", kind="change", summary="x", variables={"a": 1}, build=lambda host, params: None)  # type: ignore[arg-type,return-value]


def test_playbook_loader_unknown_playbook_is_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("upgrde", make_host(), {})
    assert "unknown playbook 'upgrde'" in _one_line(error)


def test_playbook_loader_upgrade_picks_platform_upgrade_for_zpro(tmp_path: Path) -> None:
    plan = build_plan("upgrade", make_host(roles=("zpro",)), {"package": str(package_file(tmp_path)), "ts": TS})
    assert plan.playbook == "platform_upgrade"


def test_playbook_loader_upgrade_picks_stack_upgrade_for_integrations() -> None:
    plan = build_plan("upgrade", make_host("ia", roles=("integrations",)), {"ts": TS})
    assert plan.playbook == "stack_upgrade"
    assert playbook_for_upgrade(make_host("ia", roles=("integrations",))).name == "stack_upgrade"


@pytest.mark.parametrize("roles", [(), ("zpro", "integrations")])
def test_playbook_loader_upgrade_refuses_without_exactly_one_role(roles: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("upgrade", make_host(roles=roles), {})
    assert "hosts.chat.roles" in _one_line(error)


def test_playbook_loader_missing_package_names_the_option() -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("upgrade", make_host(), {"ts": TS})
    assert _one_line(error) == "platform_upgrade on chat needs --package FILE"


def test_playbook_loader_package_not_found_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("platform_upgrade", make_host(), {"package": str(tmp_path / "missing.zip")})
    assert "missing.zip not found" in _one_line(error)


def test_playbook_loader_computes_package_sha256_and_absolute_path(tmp_path: Path) -> None:
    package = package_file(tmp_path)
    params = params_for(load_playbook("platform_upgrade"), make_host(), {"package": str(package)})
    assert params["package_sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert Path(params["package"]).is_absolute()


def test_playbook_loader_given_sha256_mismatch_is_config_error(tmp_path: Path) -> None:
    package = package_file(tmp_path)
    with pytest.raises(ConfigError) as error:
        params_for(load_playbook("platform_upgrade"), make_host(), {"package": str(package), "package_sha256": "0" * 64})
    assert "not the expected" in _one_line(error)


def test_playbook_loader_unknown_inventory_var_names_the_inventory_path() -> None:
    host = make_host(variables={"app_dri": "/srv/zpro"})
    with pytest.raises(ConfigError) as error:
        build_plan("update", host, {})
    assert _one_line(error).startswith("inventory.toml: hosts.chat.vars: unknown var app_dri")


def test_playbook_loader_unknown_override_is_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("update", make_host(), {"colour": "blue"})
    assert "update on chat does not take --var colour" in _one_line(error)


def test_playbook_loader_option_of_another_playbook_names_it() -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("stack_upgrade", make_host("ia", roles=("integrations",)), {"allow_reboot": True})
    assert "does not take --allow-reboot (it is for update)" in _one_line(error)


def test_playbook_loader_var_precedence_default_then_inventory_then_command_line() -> None:
    playbook = load_playbook("stack_upgrade")
    host = make_host("ia", roles=("integrations",), variables={"compose_dir": "/srv/stack", "backup_dir": "/srv/backups"})
    params = params_for(playbook, host, {"backup_dir": "/data/backups"})
    assert params["compose_dir"] == "/srv/stack"
    assert params["backup_dir"] == "/data/backups"
    assert params["n8n_url"] == playbook.variables["n8n_url"]


def test_playbook_loader_coerces_strings_from_the_command_line() -> None:
    params = params_for(load_playbook("update"), make_host(), {"allow_reboot": "true", "settle_wait": "0.2s", "disk_limit_percent": "85",
                                              "disk_paths": "/,/srv"})
    assert params["allow_reboot"] is True
    assert params["settle_wait"] == pytest.approx(0.2)
    assert params["disk_limit_percent"] == 85
    assert params["disk_paths"] == ["/", "/srv"]


@pytest.mark.parametrize(("key", "value"), [("allow_reboot", "maybe"), ("disk_limit_percent", "ninety"), ("settle_wait", "soon")])
def test_playbook_loader_bad_value_type_is_config_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        params_for(load_playbook("update"), make_host(), {key: value})
    message = _one_line(error)
    assert message.startswith("update on chat: ")
    assert key in message or "--" + key.replace("_", "-") in message


def test_playbook_loader_inventory_value_of_wrong_type_names_the_var() -> None:
    with pytest.raises(ConfigError) as error:
        params_for(load_playbook("update"), make_host(variables={"deploy_user": 1000}), {})
    assert "hosts.chat.vars.deploy_user" in _one_line(error)


def test_playbook_loader_sets_a_run_timestamp_when_none_is_given() -> None:
    params = params_for(load_playbook("update"), make_host(), {})
    assert re.fullmatch(r"\d{8}T\d{6}Z", params["ts"])


def test_playbook_loader_build_plan_returns_plan_with_its_params() -> None:
    plan = build_plan("update", make_host(), {"ts": TS})
    assert isinstance(plan, Plan)
    assert plan.params["ts"] == TS and plan.params["allow_reboot"] is False
    assert plan.host == "chat" and plan.kind == "change"


def test_playbook_loader_bad_path_var_is_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        build_plan("stack_upgrade", make_host("ia", roles=("integrations",)), {"compose_dir": "stack", "ts": TS})
    assert _one_line(error) == "stack_upgrade on ia: param compose_dir: 'stack' must be an absolute path"


def test_playbook_loader_unsupported_archive_is_config_error(tmp_path: Path) -> None:
    package = package_file(tmp_path, "update.rar")
    with pytest.raises(ConfigError) as error:
        build_plan("platform_upgrade", make_host(), {"package": str(package), "ts": TS})
    assert _one_line(error).startswith("platform_upgrade on chat: package ")
    assert "expected a .zip, .tar.gz, .tgz or .tar" in _one_line(error)
