"""`opsguard hosts` and `opsguard validate`: read-only views of the inventory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opsguard.inventory import Host
from opsguard.output import print_json, table

if TYPE_CHECKING:
    from opsguard.cli import AppContext


def host_record(host: Host) -> dict[str, object]:
    """Given a host, return its JSON record for `opsguard hosts --json`."""
    return {
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "provider": host.provider,
        "instance": host.instance,
        "roles": list(host.roles),
        "backups": (
            {"schedule": host.backups.schedule, "max_age": host.backups.max_age_text} if host.backups else None
        ),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def hosts(app: AppContext, as_json: bool) -> None:
    """List the inventory hosts: address, provider, instance id, roles and backup policy."""
    inventory = app.inventory()
    if as_json:
        print_json({"inventory": str(inventory.path), "hosts": [host_record(host) for host in inventory.hosts.values()]})
        return
    rows = []
    for host in inventory.hosts.values():
        policy = f"{host.backups.schedule}, max {host.backups.max_age_text}" if host.backups else "none"
        rows.append(
            [
                host.name,
                f"{host.address}:{host.port}" if host.port != 22 else host.address,
                host.provider,
                str(host.instance) if host.instance is not None else "not set",
                ",".join(host.roles) or "-",
                policy,
            ]
        )
    click.echo(table(rows, ["HOST", "ADDRESS", "PROVIDER", "INSTANCE", "ROLES", "BACKUPS"]))


@click.command()
@click.pass_obj
def validate(app: AppContext) -> None:
    """Check the inventory: exit 0 with a one-line summary, or 78 with one line per problem."""
    inventory = app.inventory()
    unset = [name for name, host in inventory.hosts.items() if host.instance is None]
    summary = f"{inventory.path}: ok, {len(inventory.hosts)} hosts ({', '.join(inventory.hosts)})"
    if unset:
        summary += f"; instance not set for {', '.join(unset)} (run 'opsguard discover')"
    click.echo(summary)
