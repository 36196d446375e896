"""`opsguard discover`: list the provider accounts' instances and match them to inventory hosts by IP.

Read-only. For each provider whose token is set it lists every instance (id, label, IPs, state),
resolves each inventory host's address, shows which host each instance matches, and prints the
``instance = ...`` lines an operator pastes into inventory.toml. A provider whose token is not set
is skipped (and said so); no token at all is a configuration error (78); an API that cannot be
reached gives exit 4 after printing what the other provider answered.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import click

from opsguard.errors import EXIT_OK, ConfigError, ProviderError, worst_exit_code
from opsguard.inventory import Host, Inventory
from opsguard.output import print_json, table
from opsguard.providers import instance_id_text
from opsguard.providers.base import InstanceFacts


@dataclass
class ProviderListing:
    """What one provider account answered (or why it was not asked)."""

    name: str
    token_variable: str
    status: str  # "ok" | "skipped" | "error"
    instances: list[InstanceFacts] = field(default_factory=list)
    error: str | None = None
    exit_code: int = EXIT_OK


@dataclass
class HostMatch:
    """One inventory host: its resolved addresses and the instances found at them."""

    host: Host
    resolved: set[str]
    resolve_error: str | None
    matches: list[InstanceFacts]
    provider_listed: bool = True  # False when the host's provider was skipped or failed


    @property
    def status(self) -> str:
        """Return a short verdict: "matched", "already set", "differs", "ambiguous", "wrong provider", ..."""
        if self.resolve_error:
            return "address not resolved"
        if not self.provider_listed:
            return f"{self.host.provider} not listed"
        same_provider = [facts for facts in self.matches if facts.provider == self.host.provider]
        if len(same_provider) > 1:
            return "ambiguous"
        if not same_provider:
            return f"matches a {self.matches[0].provider} instance, inventory says {self.host.provider}" if self.matches else "no match"
        if self.host.instance is None:
            return "matched"
        return "already set" if str(self.host.instance) == str(same_provider[0].instance) else "differs from inventory"

    @property
    def paste_line(self) -> str | None:
        """Return the ``[hosts.NAME] instance = ...`` line to paste, or None when there is nothing to paste."""
        if self.status not in ("matched", "differs from inventory"):
            return None
        facts = next(facts for facts in self.matches if facts.provider == self.host.provider)
        value = instance_id_text(self.host.provider, facts.instance)
        return f"[hosts.{self.host.name}] instance = {value}"


def normalise_ip(text: str) -> str:
    """Given an IP address text, return its canonical form (so IPv6 spellings compare equal)."""
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return text


def resolve(address: str) -> set[str]:
    """Given a DNS name or IP literal, return the set of its IP addresses; raise OSError if it has none."""
    infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    return {normalise_ip(str(info[4][0])) for info in infos}


def list_providers() -> list[ProviderListing]:
    """Return the listing of every provider: instances where the token is set, else "skipped"."""
    from opsguard.providers import PROVIDER_ENVIRONMENT, provider_named, token_is_set

    listings = []
    for name, (variable, _, _) in PROVIDER_ENVIRONMENT.items():
        if not token_is_set(name):
            listings.append(ProviderListing(name, variable, "skipped", error=f"{variable} is not set"))
            continue
        try:
            instances = provider_named(name).list_instances()
        except ProviderError as error:
            listings.append(ProviderListing(name, variable, "error", error=str(error), exit_code=error.exit_code))
            continue
        listings.append(ProviderListing(name, variable, "ok", instances=instances))
    return listings


def match_hosts(inventory: Inventory, listings: list[ProviderListing]) -> list[HostMatch]:
    """Given the inventory and the provider listings, return each host with the instances at its addresses."""
    instances = [facts for listing in listings for facts in listing.instances]
    listed = {listing.name for listing in listings if listing.status == "ok"}
    results = []
    for host in inventory.hosts.values():
        try:
            resolved, error = resolve(host.address), None
        except OSError as problem:
            resolved, error = set(), f"cannot resolve {host.address}: {problem.strerror or problem}"
        matches = [facts for facts in instances if resolved & {normalise_ip(ip) for ip in facts.public_ips}]
        results.append(HostMatch(host, resolved, error, matches, provider_listed=host.provider in listed))
    return results


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def discover(ctx: click.Context, as_json: bool) -> None:
    """List the provider accounts' instances and show which inventory host each one is (by IP).

    Prints the `instance = ...` lines to paste into inventory.toml. Needs VULTR_API_KEY and/or
    HOSTINGER_API_TOKEN; a provider without its token is skipped.
    """
    inventory = ctx.obj.inventory()
    listings = list_providers()
    if all(listing.status == "skipped" for listing in listings):
        variables = " and/or ".join(listing.token_variable for listing in listings)
        raise ConfigError(f"no provider token is set: set {variables} to list the accounts' instances")
    hosts = match_hosts(inventory, listings)
    if as_json:
        print_json(_json_report(inventory, listings, hosts))
    else:
        _print_report(listings, hosts)
    for listing in listings:
        if listing.status == "skipped":
            click.echo(f"discover: {listing.error}; skipping {listing.name}", err=True)
        elif listing.status == "error":
            click.echo(f"discover: {listing.error}", err=True)
    ctx.exit(worst_exit_code([listing.exit_code for listing in listings]))


def _hosts_at(facts: InstanceFacts, hosts: list[HostMatch]) -> list[str]:
    return [match.host.name for match in hosts if facts in match.matches]


def _print_report(listings: list[ProviderListing], hosts: list[HostMatch]) -> None:
    for listing in listings:
        if listing.status == "skipped":
            click.echo(f"{listing.name}: skipped ({listing.token_variable} is not set)")
            continue
        if listing.status == "error":
            click.echo(f"{listing.name}: could not list instances (see below)")
            continue
        count = len(listing.instances)
        click.echo(f"{listing.name}: {count} instance{'s' if count != 1 else ''}")
        rows = [
            [str(facts.instance), facts.label or "-", " ".join(facts.public_ips) or "-", facts.state or "-",
             ", ".join(_hosts_at(facts, hosts)) or "-"]
            for facts in listing.instances
        ]  # fmt: skip
        if rows:
            click.echo(_indent(table(rows, ["INSTANCE", "LABEL", "IPS", "STATE", "HOST"])))
    click.echo("")
    click.echo("inventory hosts:")
    rows = []
    for match in hosts:
        found = ", ".join(f"{facts.provider} {facts.instance}" for facts in match.matches) or "-"
        addresses = " ".join(sorted(match.resolved)) or "-"
        rows.append([match.host.name, match.host.address, addresses, found, match.resolve_error or match.status])
    click.echo(_indent(table(rows, ["HOST", "ADDRESS", "RESOLVES TO", "INSTANCE", "STATUS"])))
    lines = [line for line in (match.paste_line for match in hosts) if line]
    click.echo("")
    if lines:
        click.echo("paste into inventory.toml (each `instance = ...` under its [hosts.NAME] table):")
        for line in lines:
            click.echo(line)
    else:
        click.echo("nothing to paste: no host without its instance id was matched")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _json_report(inventory: Inventory, listings: list[ProviderListing], hosts: list[HostMatch]) -> dict[str, Any]:
    return {
        "inventory": str(inventory.path),
        "providers": {
            listing.name: {
                "status": listing.status,
                "token_variable": listing.token_variable,
                "error": listing.error,
                "instances": [
                    {
                        "instance": facts.instance,
                        "label": facts.label,
                        "public_ips": list(facts.public_ips),
                        "state": facts.state,
                        "running": facts.running,
                        "locked": facts.locked,
                        "hosts": _hosts_at(facts, hosts),
                    }
                    for facts in listing.instances
                ],
            }
            for listing in listings
        },
        "hosts": [
            {
                "name": match.host.name,
                "address": match.host.address,
                "provider": match.host.provider,
                "inventory_instance": match.host.instance,
                "resolved": sorted(match.resolved),
                "resolve_error": match.resolve_error,
                "matches": [{"provider": facts.provider, "instance": facts.instance} for facts in match.matches],
                "status": match.status,
                "paste": match.paste_line,
            }
            for match in hosts
        ],
        "paste": [line for line in (match.paste_line for match in hosts) if line],
    }
