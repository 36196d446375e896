"""The guard's checks, each one rule: return when it holds, raise (with the reason only) when it does not.

What a failure means for the host ("refused, nothing was changed") is added by the error classes
and the guard, not written here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from opsguard import ledger as events
from opsguard.errors import (
    ConfigError,
    OpsguardError,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    Refused,
    SnapshotNotVerified,
)
from opsguard.hoststate import UNSETTLED
from opsguard.inventory import Host
from opsguard.ledger import Ledger
from opsguard.providers import capabilities
from opsguard.providers.base import InstanceFacts

Resolver = Callable[[str], set[str]]


def resolve_address(address: str) -> set[str]:
    """Given a DNS name or IP literal, return the set of IP addresses it resolves to; raise OSError if none."""
    infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    return {str(info[4][0]) for info in infos}


def explain_provider_error(host: Host, stage: str, error: ProviderError) -> OpsguardError:
    """Given a provider error during the guard, return the error to raise, naming host and stage."""
    text = f"host {host.name}: {stage}: {error}"
    if isinstance(error, ProviderAuthError):
        return ConfigError(text)
    if isinstance(error, ProviderUnreachable):
        return OutcomeUnknown(text)
    return SnapshotNotVerified(text)


def check_instance_ready(host: Host, facts: InstanceFacts) -> None:
    """Given a host and its instance facts, return if a snapshot may start; raise Refused if not."""
    # Locked first: a locked Vultr instance is also not "running" (server_status != ok), and
    # "not running" would send the operator to power it on instead of waiting for the action.
    if facts.locked:
        raise Refused(
            f"host {host.name}: instance {facts.instance} is locked by another provider action "
            f"(state {facts.state!r}); try again when it finishes"
        )
    if not facts.running:
        raise Refused(f"host {host.name}: instance {facts.instance} is not running (provider state {facts.state!r})")


def check_identity(host: Host, facts: InstanceFacts, resolve: Resolver) -> set[str]:
    """Given a host, its instance facts and a resolver, return the matching IPs; raise Refused on mismatch.

    SAFETY: the snapshot is taken of the provider instance and the change runs on the SSH address;
    unless they are the same machine, the snapshot protects nothing.
    """
    try:
        addresses = resolve(host.address)
    except OSError as error:
        raise Refused(f"host {host.name}: cannot resolve {host.address} ({error}); identity unverified") from None
    matching = addresses & set(facts.public_ips)
    if not matching:
        raise Refused(
            f"host {host.name}: identity mismatch: {host.address} resolves to {', '.join(sorted(addresses)) or 'nothing'} "
            f"but {facts.provider} instance {facts.instance} has {', '.join(facts.public_ips) or 'no public IP'}"
        )
    return matching


def _overwrite_refused(host: Host, what_happened: str, snapshot_id: object) -> Refused:
    """Given what the last change did and its snapshot, return the refusal that protects that rollback point."""
    return Refused(
        f"host {host.name}: {what_happened}; its snapshot {snapshot_id} is the rollback point and a new {host.provider} "
        "snapshot would overwrite it; restore or inspect first, or pass --overwrite-snapshot"
    )


def check_overwrite(host: Host, ledger: Ledger, overwrite_snapshot: bool) -> None:
    """Given a host and the ledger, return if a new snapshot may replace the instance's current one; raise Refused if not.

    SAFETY: where a provider keeps ONE snapshot per instance (Hostinger) and the last change failed
    or ended unknown, that snapshot is the rollback point; overwriting it with a snapshot of the
    broken state loses it.
    """
    if not capabilities(host.provider).single_snapshot_slot or overwrite_snapshot:
        return
    last = ledger.last_change(host.name)
    if last is None or last.outcome not in (events.FAILED, events.UNKNOWN):
        return
    at_step = f" at step {last.failed_step!r}" if last.failed_step else ""
    raise _overwrite_refused(host, f"the last change (run {last.run_id}) ended {last.outcome}{at_step}", last.snapshot_id)


def check_overwrite_on_host(host: Host, record: dict[str, Any] | None, overwrite_snapshot: bool) -> None:
    """Given a host and its on-host change record, return if a new snapshot may overwrite; raise Refused if not.

    SAFETY: the same rule as check_overwrite, from the record every machine's runs leave on the host.
    """
    if not capabilities(host.provider).single_snapshot_slot or overwrite_snapshot or record is None:
        return
    outcome = str(record.get("outcome", "unknown"))
    if outcome not in UNSETTLED:
        return
    who = f"{record.get('user', '?')}@{record.get('machine', '?')}"
    ended = "unknown" if outcome == "in-progress" else outcome
    note = f" ({record['note']})" if record.get("note") else ""
    raise _overwrite_refused(
        host, f"the host records that the last change (run {record.get('run_id', '?')} by {who}) ended {ended}{note}",
        record.get("snapshot_id", "?"),
    )


def check_without_ssh(host: Host, overwrite_snapshot: bool) -> None:
    """Given a host the operator snapshots without SSH (--no-ssh), return if that is safe; raise Refused if not.

    SAFETY: without SSH opsguard can neither take the host's remote lock nor read the change record
    other machines left there, so where a new snapshot replaces the only one it cannot tell whether
    that one is another change's rollback point.
    """
    if capabilities(host.provider).single_snapshot_slot and not overwrite_snapshot:
        raise Refused(
            f"host {host.name}: without SSH opsguard cannot take the host's remote lock or read its change record, so it "
            f"cannot tell whether the current {host.provider} snapshot (the only one the VM keeps) is another change's "
            "rollback point; connect over SSH, or pass --overwrite-snapshot to replace it anyway"
        )


def record_problem_refusal(host: Host, state_dir: str, why: str) -> Refused:
    """Given a host whose change record cannot be kept, and why, return the refusal that says how to fix remote_state."""
    return Refused(
        f"host {host.name}: opsguard cannot keep its change record in {state_dir} on the host ({why}); without it "
        f"another machine could overwrite this host's only {host.provider} snapshot; make {state_dir} writable for "
        f"{host.user}, or set hosts.{host.name}.remote_state to a persistent directory it can write"
    )
