"""Playbook numbers are finite and bounded: `--var stable_for=nan` or `health_wait=inf` would poll forever.

Checked twice: when params are merged (inventory vars and --var, opsguard.playbooks) and when a
playbook reads them (playbooks._shared.number_param, for plans built from the Python API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsguard.errors import ConfigError
from opsguard.playbooks import build_plan, load_playbook, params_for, platform_upgrade
from opsguard.playbooks.common import number_maximum, number_param
from tests.unit.playbook_cases import TS, make_host, package_file


def _merge_refusal(overrides: dict[str, Any], variables: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        params_for(load_playbook("update"), make_host(variables=variables), overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity", "1e400"])
@pytest.mark.parametrize("key", ["settle_wait", "reboot_wait", "poll_every", "apt_timeout"])
def test_playbook_params_var_refuses_non_finite_duration(key: str, text: str) -> None:
    message = _merge_refusal({key: text})

    assert message.startswith(f"update on chat: --var {key}: {text!r} ")
    assert "finite" in message


def test_playbook_params_var_refuses_duration_above_seven_days() -> None:
    message = _merge_refusal({"settle_wait": "8d"})

    assert message == "update on chat: --var settle_wait: '8d' is above the maximum of 604800 seconds (7d)"


def test_playbook_params_var_accepts_duration_of_exactly_seven_days() -> None:
    params = params_for(load_playbook("update"), make_host(), {"reboot_wait": "7d", "apt_timeout": "604800"})

    assert (params["reboot_wait"], params["apt_timeout"]) == (604800.0, 604800.0)


def test_playbook_params_var_refuses_negative_number() -> None:
    assert "is negative" in _merge_refusal({"settle_wait": "-5"})


def test_playbook_params_inventory_nan_names_the_inventory_var() -> None:
    # TOML has nan and inf literals: `settle_wait = nan` loads as float('nan').
    message = _merge_refusal({}, {"settle_wait": float("nan")})

    assert message == "inventory.toml: hosts.chat.vars.settle_wait: nan is not a finite number"


def test_playbook_params_python_api_huge_integer_is_refused_not_overflowing() -> None:
    message = _merge_refusal({"settle_wait": 10**400})

    assert message.startswith("update on chat: --var settle_wait: ")
    assert "above the maximum of 604800 seconds (7d)" in message


@pytest.mark.parametrize(
    ("key", "text", "problem"),
    [
        pytest.param("apt_lock_timeout", "1" * 5000, "above the maximum of 604800 seconds (7d)", id="5000-digits"),
        pytest.param("apt_lock_timeout", "604801", "above the maximum of 604800 seconds (7d)", id="duration-int"),
        pytest.param("disk_limit_percent", "101", "above the maximum of 100", id="percent"),
        pytest.param("apt_lock_timeout", "\u00b2", "is not a whole number", id="superscript-two-isdigit"),
        pytest.param("boot_min_free_mb", "\u0661\u0665", "is not a whole number", id="arabic-digits"),
    ],
)
def test_playbook_params_var_refuses_bad_whole_number(key: str, text: str, problem: str) -> None:
    message = _merge_refusal({key: text})

    assert message.startswith(f"update on chat: --var {key}: ")
    assert problem in message


def test_playbook_params_var_refuses_port_above_65535(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plan("platform_upgrade", make_host(), {"package": str(package_file(tmp_path)), "ts": TS, "frontend_port": "70000"})

    assert str(caught.value) == "platform_upgrade on chat: --var frontend_port: '70000' is above the maximum of 65535"


@pytest.mark.parametrize(
    ("key", "maximum", "words"),
    [
        ("stable_for", 604800.0, "604800 seconds (7d)"),
        ("health_wait", 604800.0, "604800 seconds (7d)"),
        ("poll_every", 604800.0, "604800 seconds (7d)"),
        ("install_timeout", 604800.0, "604800 seconds (7d)"),
        ("disk_limit_percent", 100.0, "100"),
        ("frontend_port", 65535.0, "65535"),
        ("min_memory_gb", 1e6, "1000000"),
    ],
)
def test_number_maximum_names_bound_by_kind_of_param(key: str, maximum: float, words: str) -> None:
    assert number_maximum(key) == (maximum, words)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_number_param_refuses_non_finite_value(value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        number_param({"stable_for": value}, "stable_for")

    assert str(caught.value) == f"param stable_for: must be a finite number (got {value!r})"


def test_number_param_refuses_value_above_its_maximum() -> None:
    with pytest.raises(ConfigError) as caught:
        number_param({"health_wait": 1e9}, "health_wait")

    assert str(caught.value) == "param health_wait: must be at most 604800 seconds (7d) (got 1000000000.0)"


def test_number_param_returns_value_within_bounds() -> None:
    assert number_param({"health_wait": 50}, "health_wait") == 50.0


def test_number_param_takes_an_explicit_maximum() -> None:
    with pytest.raises(ConfigError, match=r"must be at most 10 \(got 11\)"):
        number_param({"count": 11}, "count", maximum=10)


def test_playbook_plan_from_python_api_refuses_nan_stable_for(tmp_path: Path) -> None:
    # Params that never went through params_for: the playbook's own reading must still refuse them.
    params = params_for(load_playbook("platform_upgrade"), make_host(), {"package": str(package_file(tmp_path)), "ts": TS})
    params["stable_for"] = float("nan")

    with pytest.raises(ConfigError, match="param stable_for: must be a finite number"):
        platform_upgrade.plan(make_host(), params)
