"""The design doc's "add a provider" recipe, exercised: a throwaway provider declared only in opsguard.providers
(its capabilities and environment) is accepted by the inventory and driven by the guard, which asks its
capabilities — here a single snapshot slot, so the overwrite protection applies to it as to Hostinger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsguard import providers
from opsguard.errors import InventoryError, Refused
from opsguard.inventory import load_inventory
from opsguard.providers.base import ProviderCapabilities
from tests.unit.fakes import FakeConnection, FakeProvider, guard


@pytest.fixture
def testcloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setitem(providers.CAPABILITIES, "testcloud", ProviderCapabilities(
        single_snapshot_slot=True, tagged_snapshots=False, backup_schedule=False, restore_status=True,
        instance_id="integer", instance_id_name="TestCloud server id"))
    monkeypatch.setitem(providers.PROVIDER_ENVIRONMENT, "testcloud", ("TESTCLOUD_TOKEN", "TESTCLOUD_URL", "https://api.test"))
    yield "testcloud"


def write(tmp_path: Path, instance: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(f'[settings]\nsnapshot_poll = "0.01s"\n[hosts.edge]\naddress = "10.9.9.7"\nprovider = "testcloud"\n'
                    f"instance = {instance}\n", encoding="utf-8")
    return path


def test_recipe_new_provider_is_accepted_by_the_inventory_with_its_own_instance_id_form(testcloud: str, tmp_path: Path) -> None:
    assert load_inventory(write(tmp_path, "7")).host("edge").instance == 7
    with pytest.raises(InventoryError, match="is not a TestCloud server id"):
        load_inventory(write(tmp_path, '"seven"'))


def test_recipe_guard_applies_the_new_providers_single_slot_protection(testcloud: str, tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, "7"))
    provider = FakeProvider(name="testcloud", ips=("10.9.9.7",))
    with guard(inventory, provider, FakeConnection(), host="edge") as change:
        change.run("exit 3", name="the change that failed")
    second = FakeProvider(name="testcloud", ips=("10.9.9.7",))
    with pytest.raises(Refused, match="would overwrite it"), guard(inventory, second, FakeConnection(), host="edge"):
        pass
    assert second.created == 0


def test_recipe_backup_check_reads_what_the_new_providers_capabilities_offer(testcloud: str) -> None:
    """backup-check asks capabilities, not names: a single-slot provider without a schedule API gets its backups
    and its current snapshot read, like Hostinger; one with a schedule API gets the instance and schedule too."""
    from opsguard.backups import facts_to_read

    assert facts_to_read(providers.capabilities("testcloud")) == ("backups", "snapshot")
    assert facts_to_read(providers.capabilities("vultr")) == ("instance", "schedule", "backups")
    assert facts_to_read(providers.capabilities("hostinger")) == ("backups", "snapshot")
