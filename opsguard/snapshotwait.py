"""Creating a snapshot, waiting for the provider to finish it, and verifying it: the guard's snapshot step.

SAFETY: ONE create request (after a lost answer the client looks the snapshot up instead of posting
again); an unknown or new provider state is never success (keep polling until the deadline); the
receipt is issued only after the provider's answer passed every check of the contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from opsguard import ledger as events
from opsguard.checks import explain_provider_error
from opsguard.durations import format_duration
from opsguard.errors import (
    OpsguardError,
    ProviderError,
    ProviderUnreachable,
    Refused,
    SnapshotGone,
    SnapshotNotVerified,
)
from opsguard.inventory import Host, Settings
from opsguard.ledger import Ledger
from opsguard.providers import capabilities
from opsguard.providers.base import Provider, SnapshotRequest
from opsguard.receipt import SnapshotReceipt, _issue_receipt

# Polling: the gap grows with the time already waited (4.8 %), so a long snapshot costs few requests
# yet is noticed soon after it completes: the delay after completion stays under 5 % of the wait
# (one API round trip included) or one second, capped by settings.snapshot_poll; a 600 s snapshot
# costs < 100 polls at 15 s. Never faster than the provider's floor (1 s; providers rate-limit).
POLL_GROWTH = 0.048
MIN_POLL_GAP = 1.0

ProgressCallback = Callable[[str, float], None]


def poll_gap(elapsed: float, longest: float, floor: float = MIN_POLL_GAP) -> float:
    """Given seconds waited so far, settings.snapshot_poll and the provider's floor, return the gap before the next poll.

    The gap is at least one second, or snapshot_poll when that is shorter and the provider allows it
    (a loopback simulator: floor 0); a real provider's floor of 1 s raises a shorter snapshot_poll to 1 s.
    """
    shortest = max(floor, min(MIN_POLL_GAP, longest))
    return max(shortest, min(longest, POLL_GROWTH * elapsed))


def wait_for_snapshot(
    host: Host,
    provider: Provider,
    request: SnapshotRequest,
    settings: Settings,
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Given a snapshot request, poll until the provider reports it finished (and the instance free again).

    Raise SnapshotNotVerified on a final failure or after snapshot_timeout; unknown states keep
    polling (never success). A transient API failure while polling is retried until the deadline.
    """
    floor = float(getattr(provider, "min_poll_gap", 1.0))
    started = time.monotonic()
    deadline = started + settings.snapshot_timeout
    state = "requested"
    while True:
        poll_started = time.monotonic()
        elapsed = poll_started - started
        try:
            progress = provider.poll_snapshot(request)
            # The detail says why a state is not done yet (e.g. "success" but the VM is still locked).
            state = f"{progress.state} ({progress.detail})" if progress.detail else progress.state
            if progress.failed:
                raise SnapshotNotVerified(
                    f"host {host.name}: snapshot failed at the provider (state {progress.state!r}"
                    f"{': ' + progress.detail if progress.detail else ''})"
                )
            if progress.finished:
                # The client reports finished only once the instance is free again (Hostinger: the VM
                # unlocked); verify_snapshot then checks every rule of the contract.
                return
        except ProviderUnreachable as error:
            state = f"API unreachable ({error.status or 'no answer'})"
        except ProviderError as error:
            raise explain_provider_error(host, "polling the snapshot", error) from error
        if on_progress:
            on_progress(state, elapsed)
        now = time.monotonic()
        if now >= deadline:
            raise SnapshotNotVerified(
                f"host {host.name}: snapshot not complete after {format_duration(settings.snapshot_timeout)} "
                f"(snapshot_timeout; last provider state {state!r})"
            )
        # Gaps run from one poll's start to the next, so a slow API does not stretch the schedule;
        # but never less than the floor after the last answer, so the provider never sees two polls
        # of one snapshot closer than that (a slow answer would otherwise squeeze them together).
        gap = poll_gap(elapsed, settings.snapshot_poll, floor)
        next_poll = max(poll_started + gap, now + poll_gap(0.0, settings.snapshot_poll, floor))
        sleep(max(0.0, min(next_poll, deadline) - now))


def take_snapshot(
    host: Host,
    settings: Settings,
    provider: Provider,
    ledger: Ledger,
    run_id: str,
    *,
    on_progress: ProgressCallback | None = None,
) -> SnapshotReceipt:
    """Given a host (preflight, identity and locks already done), create, wait for and verify a snapshot.

    Return the receipt (also written to the ledger); raise SnapshotNotVerified / OutcomeUnknown if
    it cannot be verified.
    """
    instance = host.require_instance()
    tag = snapshot_tag(host, run_id)
    try:
        request = provider.create_snapshot(instance, tag)
    except ProviderError as error:
        ledger.append(events.SNAPSHOT_FAILED, run_id=run_id, host=host.name, stage="create", error=str(error))
        raise explain_provider_error(host, "creating the snapshot", error) from error
    previous = request.previous
    ledger.append(
        events.SNAPSHOT_REQUESTED,
        run_id=run_id,
        host=host.name,
        provider=host.provider,
        instance=instance,
        tag=tag,
        snapshot_id=request.snapshot_id,
        action_id=request.action_id,
        recovered=request.recovered,
        previous_snapshot=(
            {"snapshot_id": previous.snapshot_id, "created_at": previous.created_at, "expires_at": previous.expires_at}
            if previous
            else None
        ),
    )
    try:
        wait_for_snapshot(host, provider, request, settings, on_progress)
        try:
            verified = provider.verify_snapshot(request)
        except ProviderError as error:
            raise explain_provider_error(host, "verifying the snapshot", error) from error
        except SnapshotNotVerified as error:
            # The client's message names the instance; the operator needs the host.
            raise SnapshotNotVerified(f"host {host.name}: verifying the snapshot: {error.reason}") from error
    except OpsguardError as error:
        ledger.append(events.SNAPSHOT_FAILED, run_id=run_id, host=host.name, stage="wait/verify", error=str(error))
        raise
    snapshot = verified.snapshot
    receipt = _issue_receipt(
        host=host.name,
        provider=host.provider,
        instance=instance,
        snapshot_id=snapshot.snapshot_id,
        tag=tag,
        run_id=run_id,
        requested_at=request.requested_at,
        verified_at=datetime.now(UTC),
        created_at=snapshot.created_at,
        expires_at=snapshot.expires_at,
        action_id=request.action_id,
        previous_snapshot_id=previous.snapshot_id if previous else None,
        recovered=request.recovered,
        checks=verified.checks,
    )
    ledger.append(events.SNAPSHOT_VERIFIED, run_id=run_id, host=host.name, receipt=receipt.to_dict())
    return receipt


def reuse_snapshot(host: Host, provider: Provider, ledger: Ledger, run_id: str, rolled_back_run: str) -> SnapshotReceipt:
    """Given the run R a rollback undoes, return a receipt for R's snapshot if the provider still has it; raise
    SnapshotGone if the provider says it is gone (guard rule 3d: the rollback then takes a new snapshot), Refused
    if this machine's ledger has no verified snapshot of R.

    Still there means: a single-slot provider (Hostinger) still has it as the instance's current snapshot,
    not expired; otherwise (Vultr) it exists, is complete, has a size and its description is exactly the tag
    opsguard gives R's snapshot, built here from the host, the instance and R (never read from the ledger).
    """
    instance = host.require_instance()
    verified = [record for record in ledger.records(host.name)
                if record.get("event") == events.SNAPSHOT_VERIFIED and record.get("run_id") == rolled_back_run
                and not record.get("reused_from")]  # fmt: skip
    if not verified or not isinstance(verified[0].get("receipt"), dict) or not verified[0]["receipt"].get("snapshot_id"):
        raise Refused(f"host {host.name}: this machine's ledger has no verified snapshot of run {rolled_back_run}")
    snapshot_id = str(verified[0]["receipt"]["snapshot_id"])
    tag = snapshot_tag(host, rolled_back_run)
    try:
        if capabilities(host.provider).single_snapshot_slot:
            current = provider.current_snapshot(instance)
            now = datetime.now(UTC)
            if current is None or current.snapshot_id != snapshot_id:
                raise SnapshotGone(f"host {host.name}: run {rolled_back_run}'s snapshot {snapshot_id} is no longer the "
                                   f"instance's snapshot (now {current.snapshot_id if current else 'none'})")
            if current.expires_at is not None and current.expires_at <= now:
                raise SnapshotGone(f"host {host.name}: run {rolled_back_run}'s snapshot {snapshot_id} expired at "
                                   f"{current.expires_at.isoformat()}")
            created_at, expires_at = current.created_at, current.expires_at
            checks: tuple[str, ...] = (f"still the instance's current snapshot (run {rolled_back_run})", "not expired")
        else:
            details = provider.snapshot_details(instance, snapshot_id)
            # SAFETY: exact, not a substring: "copy of <tag>" or "<tag>-2" is someone else's snapshot.
            if details is None or details.status != "complete" or not details.size or details.description != tag:
                state = "gone" if details is None else f"{details.status!r}, size {details.size}, {details.description!r}"
                raise SnapshotGone(f"host {host.name}: run {rolled_back_run}'s snapshot {snapshot_id} is not a complete "
                                   f"snapshot tagged for it any more ({state}; its tag is {tag!r})")
            created_at, expires_at = details.created_at, None
            checks = (f"complete, size {details.size}, description exactly {tag}",)
    except ProviderError as error:
        raise explain_provider_error(host, "checking the rolled-back run's snapshot", error) from error
    receipt = _issue_receipt(
        host=host.name,
        provider=host.provider,
        instance=instance,
        snapshot_id=snapshot_id,
        tag=tag,
        run_id=run_id,
        requested_at=datetime.now(UTC),
        verified_at=datetime.now(UTC),
        created_at=created_at,
        expires_at=expires_at,
        checks=checks,
    )
    ledger.append(events.SNAPSHOT_VERIFIED, run_id=run_id, host=host.name, receipt=receipt.to_dict(),
                  reused_from=rolled_back_run)
    return receipt


def snapshot_tag(host: Host, run_id: str) -> str:
    """Given a host and a run, return the tag opsguard gives that run's snapshot (a Vultr snapshot's description)."""
    return f"opsguard:{host.name}:{host.require_instance()}:{run_id}"
