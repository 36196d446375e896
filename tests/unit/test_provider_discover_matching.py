"""discover's matching of instances to inventory hosts by IP (no sockets: the resolver is replaced)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opsguard.commands import discover
from opsguard.commands.discover import ProviderListing, match_hosts, normalise_ip
from opsguard.inventory import load_inventory
from opsguard.providers.base import InstanceFacts

INVENTORY = """
[hosts.chat]
address = "chat.example.test"
provider = "vultr"
[hosts.chat2]
address = "127.0.0.3"
provider = "hostinger"
[hosts.ia]
address = "127.0.0.4"
provider = "hostinger"
instance = 1002
"""
UUID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"


def facts(provider: str, instance: str | int, *ips: str) -> InstanceFacts:
    return InstanceFacts(
        provider=provider, instance=instance, label="x", state="running", running=True, locked=False, public_ips=ips
    )


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {
        "chat.example.test": ["127.0.0.2", "2001:db8:0:0::2"],
        "127.0.0.3": ["127.0.0.3"],
        "127.0.0.4": ["127.0.0.4"],
    }

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in table[host]]

    monkeypatch.setattr(discover.socket, "getaddrinfo", getaddrinfo)
    return table


def listings(*instances: InstanceFacts, skipped: tuple[str, ...] = ()) -> list[ProviderListing]:
    result = []
    for name, variable in (("vultr", "VULTR_API_KEY"), ("hostinger", "HOSTINGER_API_TOKEN")):
        if name in skipped:
            result.append(ProviderListing(name, variable, "skipped", error=f"{variable} is not set"))
        else:
            result.append(
                ProviderListing(name, variable, "ok", instances=[item for item in instances if item.provider == name])
            )
    return result


def inventory(tmp_path: Path, text: str = INVENTORY):  # type: ignore[no-untyped-def]
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return load_inventory(path)


def test_discover_match_by_dns_name_and_ipv6_spelling(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    found = match_hosts(inventory(tmp_path), listings(facts("vultr", UUID, "2001:db8::2")))
    chat = found[0]
    assert chat.status == "matched"
    assert chat.paste_line == f'[hosts.chat] instance = "{UUID}"'


def test_discover_already_set_host_needs_no_paste(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    found = {
        match.host.name: match
        for match in match_hosts(inventory(tmp_path), listings(facts("hostinger", 1002, "127.0.0.4")))
    }
    assert found["ia"].status == "already set"
    assert found["ia"].paste_line is None


def test_discover_two_instances_at_one_address_are_ambiguous(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    found = {match.host.name: match for match in match_hosts(
        inventory(tmp_path), listings(facts("hostinger", 7, "127.0.0.3"), facts("hostinger", 8, "127.0.0.3")))}  # fmt: skip
    assert found["chat2"].status == "ambiguous"
    assert found["chat2"].paste_line is None


def test_discover_instance_of_other_provider_is_flagged(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    found = {
        match.host.name: match
        for match in match_hosts(inventory(tmp_path), listings(facts("vultr", UUID, "127.0.0.3")))
    }
    assert found["chat2"].status == "matches a vultr instance, inventory says hostinger"
    assert found["chat2"].paste_line is None


def test_discover_skipped_provider_hosts_say_not_listed(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    found = {match.host.name: match for match in match_hosts(inventory(tmp_path), listings(skipped=("hostinger",)))}
    assert found["chat2"].status == "hostinger not listed"
    assert found["chat"].status == "no match"


def test_discover_unresolvable_address_is_reported_not_fatal(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    fake_dns.pop("chat.example.test")
    found = match_hosts(inventory(tmp_path), listings(facts("vultr", UUID, "127.0.0.2")))
    assert found[0].status == "address not resolved"
    assert found[0].resolve_error and "chat.example.test" in found[0].resolve_error
    assert found[0].paste_line is None


def test_discover_normalise_ip_makes_ipv6_spellings_equal() -> None:
    assert normalise_ip("2001:DB8:0:0::2") == normalise_ip("2001:db8::2")
    assert normalise_ip("not-an-ip") == "not-an-ip"
