"""opsguard.inventory: inventory.toml -> frozen dataclasses, every problem reported, path-qualified."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from opsguard.errors import EXIT_CONFIG, ConfigError, InventoryError
from opsguard.inventory import Inventory, inventory_path, load_inventory
from tests.unit.inventory_cases import MALFORMED_PARAMS, VALID, VULTR_UUID, Case, inventory_text

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(directory: Path, text: str, name: str = "inventory.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", MALFORMED_PARAMS)
def test_load_inventory_reports_exact_lines_when_malformed(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert caught.value.lines() == case.lines(path)
    assert caught.value.exit_code == EXIT_CONFIG == 78


def test_load_inventory_problem_order_stable_when_several_settings_are_wrong(tmp_path: Path) -> None:
    # Regression: the settings were once checked in set order, which Python randomises per process.
    path = write(tmp_path, inventory_text(settings='user = 1\nstate_dir = ""\nknown_hosts = 2\nremote_lock = []'))
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert [line.split(": ")[1] for line in caught.value.lines()] == [
        "settings.user",
        "settings.state_dir",
        "settings.known_hosts",
        "settings.remote_lock",
    ]


def test_load_inventory_message_names_relative_path_when_given_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, inventory_text().replace('"vultr"', '"vulture"'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as caught:
        load_inventory("inventory.toml")
    assert caught.value.lines() == ["inventory.toml: hosts.chat.provider: 'vulture' is not one of: vultr, hostinger"]


def test_load_inventory_returns_frozen_dataclasses_when_valid(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, VALID))
    assert isinstance(inventory, Inventory)
    assert list(inventory.hosts) == ["chat", "chat2"]
    chat = inventory.hosts["chat"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chat.address = "elsewhere.example.test"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inventory.settings.snapshot_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        inventory.hosts["intruder"] = chat  # type: ignore[index]


def test_load_inventory_applies_defaults_when_settings_absent(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, inventory_text()))
    settings = inventory.settings
    assert (settings.snapshot_timeout, settings.snapshot_poll, settings.receipt_ttl) == (3600.0, 15.0, 1800.0)
    assert settings.user == "root"
    assert settings.remote_lock == "/run/lock/opsguard"
    assert settings.identity_file is None
    chat = inventory.hosts["chat"]
    assert (chat.port, chat.user, chat.remote_lock, chat.instance, chat.backups) == (
        22,
        "root",
        "/run/lock/opsguard",
        None,
        None,
    )


def test_load_inventory_parses_every_field_when_fully_specified(tmp_path: Path) -> None:
    text = inventory_text(
        settings='user = "ops"\nsnapshot_timeout = "90m"\nsnapshot_poll = "0.2s"\nreceipt_ttl = "250ms"\n'
        'identity_file = "keys/id_ed25519"',
        chat=f'instance = "{VULTR_UUID}"\nport = 2222\nuser = "admin"\nremote_lock = "/tmp/lock"\n'
        '[hosts.chat.backups]\nschedule = "daily"\nmax_age = "26h"\n'
        '[hosts.chat.vars]\ndeploy_user = "deployzdg"\nworkers = 4\nflags = ["a", "b"]',
        chat2="instance = 123456",
    )
    inventory = load_inventory(write(tmp_path, text))
    settings = inventory.settings
    assert (settings.user, settings.snapshot_timeout, settings.snapshot_poll, settings.receipt_ttl) == (
        "ops",
        5400.0,
        0.2,
        0.25,
    )
    assert settings.identity_file == tmp_path.resolve() / "keys" / "id_ed25519"
    chat, chat2 = inventory.hosts["chat"], inventory.hosts["chat2"]
    assert (chat.instance, chat.port, chat.user, chat.remote_lock, chat.roles) == (
        VULTR_UUID,
        2222,
        "admin",
        "/tmp/lock",
        ("zpro",),
    )
    assert chat.backups is not None
    assert (chat.backups.schedule, chat.backups.max_age, chat.backups.max_age_text) == ("daily", 93600.0, "26h")
    assert dict(chat.vars) == {"deploy_user": "deployzdg", "workers": 4, "flags": ["a", "b"]}
    assert chat2.instance == 123456
    assert chat2.user == "ops"  # settings.user is the default for every host


def test_load_inventory_accepts_same_address_when_ports_differ(tmp_path: Path) -> None:
    text = inventory_text(chat2="port = 2222").replace('"chat2.example.test"', '"chat.example.test"')
    inventory = load_inventory(write(tmp_path, text))
    assert [(host.address, host.port) for host in inventory.hosts.values()] == [
        ("chat.example.test", 22),
        ("chat.example.test", 2222),
    ]


def test_load_inventory_accepts_upper_case_uuid_when_vultr(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, inventory_text(chat=f'instance = "{VULTR_UUID.upper()}"')))
    assert inventory.hosts["chat"].instance == VULTR_UUID.upper()


def test_load_inventory_loads_shipped_inventory_when_unchanged() -> None:
    inventory = load_inventory(REPO_ROOT / "inventory.toml")
    summary = {
        name: (host.address, host.provider, host.roles, host.instance, host.backups and host.backups.max_age_text)
        for name, host in inventory.hosts.items()
    }
    assert summary == {
        "chat": ("chat.ia.nuvemjti.com.br", "vultr", ("zpro",), None, "26h"),
        "chat2": ("chat2.ia.nuvemjti.com.br", "hostinger", ("zpro",), None, "8d"),
        "ia": ("ia.nuvemjti.tec.br", "hostinger", ("integrations",), None, "8d"),
    }


def test_require_instance_raises_exact_message_when_instance_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path)
    chat = load_inventory("inventory.toml").host("chat")
    with pytest.raises(ConfigError) as caught:
        chat.require_instance()
    assert str(caught.value) == "inventory.toml: hosts.chat.instance is not set (run 'opsguard discover')"
    assert caught.value.exit_code == 78


def test_require_instance_returns_typed_id_when_instance_set(tmp_path: Path) -> None:
    text = inventory_text(chat=f'instance = "{VULTR_UUID}"', chat2="instance = 123456")
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.host("chat").require_instance() == VULTR_UUID
    assert inventory.host("chat2").require_instance() == 123456


def test_inventory_host_raises_config_error_naming_hosts_when_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError) as caught:
        load_inventory(path).host("chat3")
    assert str(caught.value) == f"{path}: no host named 'chat3' (hosts: chat, chat2)"


def test_settings_state_dir_from_environment_wins_over_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, inventory_text(settings='state_dir = "/var/lib/opsguard-from-inventory"'))
    monkeypatch.setenv("OPSGUARD_STATE_DIR", str(tmp_path / "from-env"))
    assert load_inventory(path).settings.state_dir == tmp_path / "from-env"


def test_settings_state_dir_from_environment_relative_to_cwd_when_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory_dir = tmp_path / "config"
    inventory_dir.mkdir()
    working_dir = tmp_path / "work"
    working_dir.mkdir()
    path = write(inventory_dir, VALID)
    monkeypatch.chdir(working_dir)
    monkeypatch.setenv("OPSGUARD_STATE_DIR", "state")
    assert load_inventory(path).settings.state_dir == working_dir / "state"


def test_settings_state_dir_from_inventory_when_environment_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSGUARD_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, inventory_text(settings='state_dir = "~/.local/state/opsguard"'))
    assert load_inventory(path).settings.state_dir == tmp_path / "home" / ".local" / "state" / "opsguard"


def test_settings_known_hosts_resolved_against_inventory_dir_when_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory_dir = tmp_path / "config"
    inventory_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(inventory_dir, inventory_text(settings='known_hosts = "ssh/known_hosts"\nstate_dir = "state"'))
    monkeypatch.delenv("OPSGUARD_STATE_DIR")
    monkeypatch.chdir(elsewhere)
    settings = load_inventory(Path("../config/inventory.toml")).settings
    assert settings.known_hosts == inventory_dir.resolve() / "ssh" / "known_hosts"
    assert settings.state_dir == inventory_dir.resolve() / "state"


def test_settings_known_hosts_kept_when_absolute(tmp_path: Path) -> None:
    path = write(tmp_path, inventory_text(settings='known_hosts = "/etc/ssh/ssh_known_hosts"'))
    assert load_inventory(path).settings.known_hosts == Path("/etc/ssh/ssh_known_hosts")


def test_inventory_path_prefers_option_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inventory_path(None) == Path("inventory.toml")
    monkeypatch.setenv("OPSGUARD_INVENTORY", "/etc/opsguard/inventory.toml")
    assert inventory_path(None) == Path("/etc/opsguard/inventory.toml")
    assert inventory_path("other.toml") == Path("other.toml")
