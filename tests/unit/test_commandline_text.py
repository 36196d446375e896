"""Text that opsguard sends to a host (exec's command, --var values) is strict UTF-8, without NUL.

Bytes that are not UTF-8 reach Python as surrogate escapes and only fail when encoded for SSH: after
the snapshot, as an internal error with the run left "unknown". They are refused up front instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsguard.commandline import validate_command_text
from opsguard.errors import ConfigError
from opsguard.playbooks import build_plan, load_playbook, params_for
from tests.unit.playbook_cases import TS, make_host, package_file

# What `opsguard exec chat -- $'\xff\xfe'` hands to Python on a UTF-8 system.
NOT_UTF8 = os.fsdecode(b"echo caf\xe9")


@pytest.mark.parametrize("text", ["uptime", "echo 'héllo wörld' | tr a-z A-Z", "printf 'a\\nb'\nuname -a", "  ls  "])
def test_validate_command_text_accepts_utf8_command(text: str) -> None:
    assert validate_command_text(text, what="exec command") is None


def test_validate_command_text_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_command_text(NOT_UTF8, what="exec command")

    assert str(caught.value) == "exec command: not valid UTF-8 (byte 0xe9 at character 9)"
    assert caught.value.exit_code == 78


def test_validate_command_text_refuses_lone_surrogate_from_python() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_command_text("echo \ud800", what="--reason")

    assert str(caught.value) == "--reason: not valid UTF-8 (lone surrogate U+D800 at character 6)"


def test_validate_command_text_refuses_nul() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_command_text("echo a\x00b", what="exec command")

    assert str(caught.value) == "exec command: contains a NUL character (at character 7)"


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_validate_command_text_refuses_empty_or_whitespace(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_command_text(text, what="exec command")

    assert str(caught.value) == "exec command: is empty"


def test_validate_command_text_accepts_empty_when_allowed() -> None:
    assert validate_command_text("", what="--var moved_dirs", allow_empty=True) is None


def test_validate_command_text_refuses_non_string() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_command_text(b"uptime", what="exec command")  # type: ignore[arg-type]

    assert str(caught.value) == "exec command: expected text, got bytes"


def test_playbook_params_var_refuses_value_that_is_not_utf8() -> None:
    with pytest.raises(ConfigError) as caught:
        params_for(load_playbook("update"), make_host(), {"boot_dir": os.fsdecode(b"/bo\xffot")})

    assert str(caught.value) == "update on chat: --var boot_dir: not valid UTF-8 (byte 0xff at character 4)"


def test_playbook_params_var_refuses_nul_in_a_list_item(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plan("platform_upgrade", make_host(), {"package": str(package_file(tmp_path)), "ts": TS,
                                                     "env_files": "backend/.env,front\x00end/.env"})

    assert str(caught.value) == "platform_upgrade on chat: --var env_files: contains a NUL character (at character 19)"


def test_playbook_params_inventory_var_refuses_nul() -> None:
    # TOML can spell a NUL ("\u0000"); the inventory text itself is UTF-8, so that is its only way in.
    with pytest.raises(ConfigError) as caught:
        params_for(load_playbook("update"), make_host(variables={"boot_dir": "/bo\x00ot"}), {})

    assert str(caught.value) == "inventory.toml: hosts.chat.vars.boot_dir: contains a NUL character (at character 4)"


def test_playbook_params_package_path_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    package = package_file(tmp_path)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/up\xe9date.zip"))
    package.rename(odd)

    with pytest.raises(ConfigError) as caught:
        build_plan("platform_upgrade", make_host(), {"package": str(odd), "ts": TS})

    assert str(caught.value).startswith("platform_upgrade on chat: --package: not valid UTF-8 (byte 0xe9 at character ")


def test_playbook_params_empty_var_for_a_list_is_still_accepted(tmp_path: Path) -> None:
    # `--var moved_dirs=` means "no media dir to move": an empty --var is not an empty command.
    plan = build_plan("platform_upgrade", make_host(), {"package": str(package_file(tmp_path)), "ts": TS, "moved_dirs": ""})

    assert plan.params["moved_dirs"] == []
