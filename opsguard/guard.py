"""The snapshot guard: the only way to get a session that may change a host.

SAFETY: a ``ChangeSession`` that can run a mutating step is only ever created inside
``snapshot_guard`` after a snapshot of that very host was created and verified complete through
the provider's API. Its constructor demands a private key object that no other module has.
Read-only sessions (for preflight and plans) exist too, and refuse every mutating step.

Order of ``snapshot_guard`` (DESIGN.md "The snapshot guard"), stopping at the first failure:
preflight through the API -> identity (instance IP == host address) -> local + remote lock ->
Hostinger overwrite protection -> ONE create request -> poll with backoff -> verify -> yield.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsguard import ledger as events
from opsguard.durations import format_duration
from opsguard.errors import (
    ConfigError,
    OpsguardError,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    ReadOnlyViolation,
    ReceiptExpired,
    Refused,
    SnapshotNotVerified,
)
from opsguard.hoststate import UNSETTLED, read_change_record, write_change_record
from opsguard.inventory import Host, Inventory, Settings, inventory_path, load_inventory
from opsguard.ledger import Ledger
from opsguard.locks import LocalLock, RemoteLock, owner_record
from opsguard.providers.base import InstanceFacts, Provider, SnapshotRequest

if TYPE_CHECKING:
    from opsguard.transport import CommandResult, Connection

# The private key that makes ChangeSession's constructor private to this module.
_SESSION_KEY = object()

# Polling: never faster than once a second (providers rate-limit), and the gap grows with the
# time already waited (4.8 %), so a long snapshot costs few requests yet is noticed soon after it
# completes: the delay after completion stays under 5 % of the wait (one API round trip included)
# or one second, capped by settings.snapshot_poll; a 600 s snapshot costs < 100 polls at 15 s.
MIN_POLL_GAP = 1.0
POLL_GROWTH = 0.048

ProgressCallback = Callable[[str, float], None]
Connector = Callable[[Host, Settings], "Connection"]
Resolver = Callable[[str], set[str]]


def new_run_id() -> str:
    """Return a new run id: UTC time plus random hex, sortable and unique enough to grep."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def poll_gap(elapsed: float, longest: float) -> float:
    """Given seconds waited so far and settings.snapshot_poll, return the gap before the next poll."""
    return min(longest, max(MIN_POLL_GAP, POLL_GROWTH * elapsed))


@dataclass(frozen=True)
class SnapshotReceipt:
    """Proof that a snapshot of ``host`` was created and verified complete."""

    host: str
    provider: str
    instance: str | int
    snapshot_id: str
    tag: str
    run_id: str
    requested_at: datetime
    verified_at: datetime
    created_at: datetime | None = None
    expires_at: datetime | None = None
    action_id: int | None = None
    previous_snapshot_id: str | None = None
    recovered: bool = False
    checks: tuple[str, ...] = ()
    verified_monotonic: float = field(default=0.0, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the receipt as JSON-ready data (`opsguard snapshot --json`, the ledger)."""
        data = asdict(self)
        data.pop("verified_monotonic")
        for key in ("requested_at", "verified_at", "created_at", "expires_at"):
            value = data[key]
            data[key] = value.isoformat().replace("+00:00", "Z") if value else None
        data["checks"] = list(self.checks)
        return data

    def age(self) -> float:
        """Return the seconds since this receipt was verified (monotonic clock)."""
        return time.monotonic() - self.verified_monotonic


class HostConnection:
    """The run's one SSH connection to a host, re-openable after a reboot.

    Sessions and the remote lock hold this object, not the transport connection, so after
    ``reconnect()`` every holder uses the new connection.
    """

    def __init__(self, host: Host, settings: Settings, connect: Connector) -> None:
        self.host = host
        self.settings = settings
        self._connect = connect
        self._inner = connect(host, settings)
        self._allowed_peers: set[str] | None = None
        self._after_reconnect: list[Callable[[], None]] = []

    def require_peer(self, addresses: set[str]) -> None:
        """Given the IPs the provider instance has, return if this connection reached one; raise Refused if not.

        SAFETY: the identity check resolved the address once and SSH resolved it again; with several
        A records or a DNS change in between, the change could land on another machine than the
        snapshot. Every reconnect is checked the same way.
        """
        self._allowed_peers = set(addresses)
        self._check_peer()

    def after_reconnect(self, action: Callable[[], None]) -> None:
        """Given an action (e.g. re-taking the remote lock), run it after every successful reconnect."""
        self._after_reconnect.append(action)

    def _check_peer(self) -> None:
        peer = getattr(self._inner, "peer_address", None)
        if self._allowed_peers is None or peer is None:
            return
        if peer not in self._allowed_peers:
            raise Refused(
                f"host {self.host.name}: SSH reached {peer}, which is not the instance's address "
                f"({', '.join(sorted(self._allowed_peers))}); refused"
            )

    def run(self, command: str, **options: Any) -> CommandResult:
        """Given a command and transport options, run it on the host and return its result."""
        return self._inner.run(command, **options)

    def upload(self, local_path: Path, remote_path: str, *, mode: int | None = None) -> None:
        """Given a local file and a remote path, copy the file over SFTP."""
        self._inner.upload(local_path, remote_path, mode=mode)

    def reconnect(self) -> None:
        """Close the current connection and open a new one; raise OutcomeUnknown while the host is down.

        SAFETY: the new connection goes through the same strict host-key check as the first.
        """
        with suppress(Exception):
            self._inner.close()
        self._inner = self._connect(self.host, self.settings)
        self._check_peer()
        for action in self._after_reconnect:
            action()

    def close(self) -> None:
        """Close the connection."""
        self._inner.close()


class ChangeSession:
    """A session on one host. With a receipt it may run mutating steps; without, it is read-only.

    Obtain one only through ``snapshot_guard`` (change) or ``read_only_session`` (read-only).
    """

    def __init__(
        self,
        key: object,
        *,
        host: Host,
        settings: Settings,
        ledger: Ledger,
        run_id: str,
        connection: HostConnection | None,
        receipt: SnapshotReceipt | None,
    ) -> None:
        if key is not _SESSION_KEY:
            # SAFETY: nobody outside guard.py may mint a session; that would bypass the snapshot.
            raise TypeError("ChangeSession cannot be created directly; use opsguard.snapshot_guard()")
        self.host = host
        self.settings = settings
        self.ledger = ledger
        self.run_id = run_id
        self.connection = connection
        self.receipt = receipt
        self.change_started: float | None = None  # monotonic time of the first mutating step
        self.mutating_steps = 0
        self.failed_step: str | None = None
        self.unknown_step: str | None = None
        self.closed = False

    @property
    def read_only(self) -> bool:
        """Return whether this session refuses mutating steps (no verified snapshot)."""
        return self.receipt is None

    def check_may_change(self, step_name: str) -> None:
        """Given a mutating step's name, return if it may run; raise Refused (exit 3) if not.

        A receipt authorises a change that STARTS within receipt_ttl of verification. Once the
        change has started, later steps go on: stopping a half-done change because a clock ran
        out would leave the host worse off than finishing it with its rollback point in hand.
        """
        where = f"host {self.host.name}: step {step_name!r}"
        if self.closed:
            raise Refused(f"{where}: the guarded session has ended; refused")
        if self.receipt is None:
            raise ReadOnlyViolation(f"{where} changes the host but this session is read-only (no verified snapshot); refused")
        if self.receipt.host != self.host.name:
            raise ReceiptExpired(f"{where}: the snapshot receipt is for host {self.receipt.host}; refused")
        if self.change_started is None:
            age = self.receipt.age()
            if age > self.settings.receipt_ttl:
                raise ReceiptExpired(
                    f"{where}: snapshot {self.receipt.snapshot_id} was verified {format_duration(age)} ago, "
                    f"longer than receipt_ttl {format_duration(self.settings.receipt_ttl)}; take a new snapshot; "
                    "refused, nothing was changed"
                )

    def run(
        self,
        command: str,
        *,
        mutates: bool = True,
        name: str | None = None,
        timeout: float = 3600.0,
        ok_codes: tuple[int, ...] = (0,),
        sudo_user: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: Callable[[str, str], None] | None = None,
    ) -> CommandResult:
        """Given a shell command, run it on the host and return its result (non-zero exits are returned).

        Raise Refused before running a mutating command that the receipt does not cover, and
        ConnectionDropped / StepTimeout (exit 4, outcome unknown) when the host stops answering.
        """
        step_name = name or command
        connection = self._connection()
        if mutates:
            self.check_may_change(step_name)
            return self._mutating(step_name, command, lambda: connection.run(
                command, timeout=timeout, sudo_user=sudo_user, env=env, on_output=on_output
            ), ok_codes)
        return connection.run(command, timeout=timeout, sudo_user=sudo_user, env=env, on_output=on_output)

    def upload(self, local_path: Path, remote_path: str, *, name: str | None = None, mode: int | None = None) -> None:
        """Given a local file and a remote path, copy it over SFTP as a mutating step."""
        step_name = name or f"upload {local_path.name}"
        connection = self._connection()
        self.check_may_change(step_name)

        def transfer() -> None:
            connection.upload(local_path, remote_path, mode=mode)

        self._mutating(step_name, f"sftp put {local_path} {remote_path}", transfer, (0,))

    def reconnect(self) -> None:
        """Re-open the SSH connection (after a reboot); raise OutcomeUnknown while the host is down."""
        self._connection().reconnect()

    def _connection(self) -> HostConnection:
        if self.connection is None:
            raise Refused(f"host {self.host.name}: this session has no SSH connection (snapshot only); refused")
        return self.connection

    def _mutating(self, step_name: str, command: str, action: Callable[[], Any], ok_codes: tuple[int, ...]) -> Any:
        if self.change_started is None:
            self.change_started = time.monotonic()
        self.mutating_steps += 1
        common = {"run_id": self.run_id, "host": self.host.name, "step": step_name, "command": command}
        self.ledger.append(events.STEP, phase="started", **common)
        started = time.monotonic()
        try:
            result = action()
        except OutcomeUnknown as error:
            self.unknown_step = step_name
            self.ledger.append(events.STEP, phase="ended", result=events.UNKNOWN, error=str(error),
                               duration=round(time.monotonic() - started, 3), **common)
            raise
        except OpsguardError as error:
            self.failed_step = step_name
            self.ledger.append(events.STEP, phase="ended", result=events.FAILED, error=str(error),
                               duration=round(time.monotonic() - started, 3), **common)
            raise
        except BaseException as error:
            # Interrupted mid-step (Ctrl-C) or a local failure (a closed stdout pipe, a bug): we stopped
            # watching the command, which may or may not have taken effect. Never "failed", never "ok".
            self.unknown_step = step_name
            reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"local error: {type(error).__name__}"
            self.ledger.append(events.STEP, phase="ended", result=events.UNKNOWN, error=reason,
                               duration=round(time.monotonic() - started, 3), **common)
            raise
        exit_status = getattr(result, "exit_status", 0)
        ok = exit_status in ok_codes
        if not ok:
            self.failed_step = step_name
        self.ledger.append(
            events.STEP,
            phase="ended",
            result=events.OK if ok else events.FAILED,
            exit_status=exit_status,
            duration=round(time.monotonic() - started, 3),
            **common,
        )
        return result

    def mark_failed(self, step_name: str, reason: str = "") -> None:
        """Given a step that failed a check (not by exit code), record it as the failed step, in the ledger too."""
        self.failed_step = step_name
        self.ledger.append(events.STEP, phase="check", result=events.FAILED, run_id=self.run_id, host=self.host.name,
                           step=step_name, error=reason)


def resolve_address(address: str) -> set[str]:
    """Given a DNS name or IP literal, return the set of IP addresses it resolves to; raise OSError if none."""
    infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    return {str(info[4][0]) for info in infos}


def _load(inventory: Inventory | str | Path | None) -> Inventory:
    if isinstance(inventory, Inventory):
        return inventory
    return load_inventory(inventory_path(str(inventory) if inventory is not None else None))


def _connect_default(host: Host, settings: Settings) -> Connection:
    from opsguard.transport import connect

    return connect(host, settings)


def _provider_default(host: Host) -> Provider:
    from opsguard.providers import provider_for

    return provider_for(host)


def explain_provider_error(host: Host, stage: str, error: ProviderError) -> OpsguardError:
    """Given a provider error during the guard, return the error to raise, naming host and stage."""
    text = f"host {host.name}: {stage}: {error}"
    if isinstance(error, ProviderAuthError):
        return ConfigError(f"{text}; refused, nothing was changed")
    if isinstance(error, ProviderUnreachable):
        return OutcomeUnknown(f"{text}; nothing was changed on the host")
    return SnapshotNotVerified(f"{text}; refused, nothing was changed")


def check_instance_ready(host: Host, facts: InstanceFacts) -> None:
    """Given a host and its instance facts, return if a snapshot may start; raise Refused if not."""
    # Locked first: a locked Vultr instance is also not "running" (server_status != ok), and
    # "not running" would send the operator to power it on instead of waiting for the action.
    if facts.locked:
        raise Refused(
            f"host {host.name}: instance {facts.instance} is locked by another provider action "
            f"(state {facts.state!r}); try again when it finishes; refused, nothing was changed"
        )
    if not facts.running:
        raise Refused(f"host {host.name}: instance {facts.instance} is not running (provider state {facts.state!r}); refused, nothing was changed")


def check_identity(host: Host, facts: InstanceFacts, resolve: Resolver) -> set[str]:
    """Given a host, its instance facts and a resolver, return the matching IPs; raise Refused on mismatch.

    SAFETY: the snapshot is taken of the provider instance and the change runs on the SSH address;
    unless they are the same machine, the snapshot protects nothing.
    """
    try:
        addresses = resolve(host.address)
    except OSError as error:
        raise Refused(f"host {host.name}: cannot resolve {host.address} ({error}); identity unverified; refused, nothing was changed") from None
    matching = addresses & set(facts.public_ips)
    if not matching:
        raise Refused(
            f"host {host.name}: identity mismatch: {host.address} resolves to {', '.join(sorted(addresses)) or 'nothing'} "
            f"but {facts.provider} instance {facts.instance} has {', '.join(facts.public_ips) or 'no public IP'}; "
            "refused, nothing was changed"
        )
    return matching


def check_overwrite(host: Host, ledger: Ledger, overwrite_snapshot: bool) -> None:
    """Given a Hostinger host and the ledger, return if a new snapshot may overwrite the old one; raise Refused if not.

    SAFETY: Hostinger keeps ONE snapshot per VM. If the last change failed or ended unknown, that
    snapshot is the rollback point; overwriting it with a snapshot of the broken state loses it.
    """
    if host.provider != "hostinger" or overwrite_snapshot:
        return
    last = ledger.last_change(host.name)
    if last is None or last.outcome not in (events.FAILED, events.UNKNOWN):
        return
    at_step = f" at step {last.failed_step!r}" if last.failed_step else ""
    raise _overwrite_refused(host, f"the last change (run {last.run_id}) ended {last.outcome}{at_step}", last.snapshot_id)


def _overwrite_refused(host: Host, what_happened: str, snapshot_id: object) -> Refused:
    """Given what the last change did and its snapshot, return the refusal that protects that rollback point."""
    return Refused(
        f"host {host.name}: {what_happened}; its snapshot {snapshot_id} is the rollback point and a new Hostinger "
        "snapshot would overwrite it; restore or inspect first, or pass --overwrite-snapshot; refused, nothing was changed"
    )


def check_reused_session(host: Host, session: ChangeSession) -> None:
    """Given the guard's host and a session passed to reuse, return if its connection may carry the change; raise Refused if not.

    SAFETY: the change runs over that session's SSH connection, so it must be open and to this very host;
    a session of another host would get this host's receipt and change the other host unsnapshotted.
    """
    mine = (host.name, host.address, host.port)
    if (session.host.name, session.host.address, session.host.port) != mine:
        why = f"is for host {session.host.name}"
    elif session.closed:
        why = "has ended"
    elif session.connection is None:
        why = "has no SSH connection"
    else:
        return
    raise Refused(f"host {host.name}: the session passed to snapshot_guard {why}; refused, nothing was changed")


def check_overwrite_on_host(host: Host, record: dict[str, Any] | None, overwrite_snapshot: bool) -> None:
    """Given a Hostinger host and its on-host change record, return if a new snapshot may overwrite; raise Refused if not.

    SAFETY: the same rule as check_overwrite, from the record every machine's runs leave on the host.
    """
    if host.provider != "hostinger" or overwrite_snapshot or record is None:
        return
    outcome = str(record.get("outcome", "unknown"))
    if outcome not in UNSETTLED:
        return
    who = f"{record.get('user', '?')}@{record.get('machine', '?')}"
    ended = "unknown" if outcome == "in-progress" else outcome
    raise _overwrite_refused(
        host, f"the host records that the last change (run {record.get('run_id', '?')} by {who}) ended {ended}",
        record.get("snapshot_id", "?"),
    )


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
                    f"{': ' + progress.detail if progress.detail else ''}); refused, nothing was changed"
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
                f"(snapshot_timeout; last provider state {state!r}); refused, nothing was changed"
            )
        # Gaps run from one poll's start to the next, so a slow API does not stretch the schedule;
        # but never less than the minimum gap after the last answer, so the provider never sees
        # two polls within a second (a slow answer would otherwise squeeze them together).
        next_poll = max(poll_started + poll_gap(elapsed, settings.snapshot_poll), now + min(MIN_POLL_GAP, settings.snapshot_poll))
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
    tag = f"opsguard:{host.name}:{instance}:{run_id}"
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
            # The client's message names the instance; the operator needs the host and the outcome.
            raise SnapshotNotVerified(
                f"host {host.name}: verifying the snapshot: {error}; refused, nothing was changed"
            ) from error
    except OpsguardError as error:
        ledger.append(events.SNAPSHOT_FAILED, run_id=run_id, host=host.name, stage="wait/verify", error=str(error))
        raise
    snapshot = verified.snapshot
    receipt = SnapshotReceipt(
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
        verified_monotonic=time.monotonic(),
    )
    ledger.append(events.SNAPSHOT_VERIFIED, run_id=run_id, host=host.name, receipt=receipt.to_dict())
    return receipt


def _outcome(session: ChangeSession | None, error: BaseException | None) -> tuple[str, str | None]:
    """Given the session and the exception that ended the block (or None), return (outcome, step)."""
    if session is None or session.mutating_steps == 0:
        if error is None:
            return events.OK, None
        return (events.ABORTED if session is not None else events.REFUSED), None
    if session.unknown_step or isinstance(error, (OutcomeUnknown, KeyboardInterrupt)):
        return events.UNKNOWN, session.unknown_step or session.failed_step
    if session.failed_step or error is not None:
        return events.FAILED, session.failed_step
    return events.OK, None


@contextmanager
def read_only_session(
    host: str | Host,
    *,
    inventory: Inventory | str | Path | None = None,
    connect: Connector | None = None,
) -> Iterator[ChangeSession]:
    """Given a host, yield a read-only session over one SSH connection; it refuses every mutating step."""
    loaded = _load(inventory)
    target = loaded.host(host) if isinstance(host, str) else host
    connection = HostConnection(target, loaded.settings, connect or _connect_default)
    session = ChangeSession(
        _SESSION_KEY,
        host=target,
        settings=loaded.settings,
        ledger=Ledger(loaded.settings.state_dir),
        run_id=new_run_id(),
        connection=connection,
        receipt=None,
    )
    try:
        yield session
    finally:
        session.closed = True
        connection.close()


@contextmanager
def snapshot_guard(
    host: str | Host,
    *,
    reason: str,
    overwrite_snapshot: bool = False,
    inventory: Inventory | str | Path | None = None,
    ssh: bool = True,
    session: ChangeSession | None = None,
    provider: Provider | None = None,
    connect: Connector | None = None,
    resolve: Resolver | None = None,
    on_progress: ProgressCallback | None = None,
    command: str = "",
) -> Iterator[ChangeSession]:
    """Given a host and a reason, yield a ChangeSession once a snapshot of that host is verified.

    Raise Refused (exit 3) at the first rule that fails, OutcomeUnknown (exit 4) when the API or
    host cannot be reached, ConfigError (78) for a missing instance id or token. With ``ssh=False``
    (``opsguard snapshot``) no SSH connection is made and the session cannot run commands. Pass
    ``session`` (a read-only session from ``read_only_session``) to reuse its connection.
    """
    loaded = _load(inventory)
    target = loaded.host(host) if isinstance(host, str) else host
    settings = loaded.settings
    instance = target.require_instance()
    api = provider or _provider_default(target)
    ledger = Ledger(settings.state_dir)
    run_id = session.run_id if session is not None else new_run_id()
    local_lock = LocalLock(settings.state_dir, target.name)
    remote_lock: RemoteLock | None = None
    connection = session.connection if session is not None else None
    opened_connection = False
    change: ChangeSession | None = None
    owner = owner_record(run_id, reason)
    change_record: dict[str, Any] | None = None
    ledger.append(
        events.RUN_STARTED,
        run_id=run_id,
        host=target.name,
        provider=target.provider,
        instance=instance,
        reason=reason,
        command=command,
        user=owner["user"],
        machine=owner["machine"],
        pid=os.getpid(),
    )
    failure: BaseException | None = None
    try:
        if session is not None:
            check_reused_session(target, session)
        try:
            facts = api.instance_facts(instance)
        except ProviderError as error:
            raise explain_provider_error(target, "reading the instance", error) from error
        check_instance_ready(target, facts)
        matching = check_identity(target, facts, resolve or resolve_address)
        local_lock.acquire(owner)
        if ssh and connection is None:
            connection = HostConnection(target, settings, connect or _connect_default)
            opened_connection = True
        if connection is not None:
            connection.require_peer(matching)
            remote_lock = RemoteLock(connection, target.name, target.remote_lock)
            remote_lock.acquire(owner)
            # A reboot empties /run/lock: take the lock again as soon as the host answers.
            connection.after_reconnect(remote_lock.reacquire)
        check_overwrite(target, ledger, overwrite_snapshot)
        if connection is not None:
            check_overwrite_on_host(target, read_change_record(connection, target.remote_state), overwrite_snapshot)
        receipt = take_snapshot(target, settings, api, ledger, run_id, on_progress=on_progress)
        if connection is not None:
            change_record = {"run_id": run_id, "snapshot_id": receipt.snapshot_id, "user": owner["user"],
                             "machine": owner["machine"], "since": owner["since"], "reason": reason}
            write_change_record(connection, target.remote_state, {**change_record, "outcome": "in-progress"})
        change = ChangeSession(
            _SESSION_KEY,
            host=target,
            settings=settings,
            ledger=ledger,
            run_id=run_id,
            connection=connection,
            receipt=receipt,
        )
        yield change
    except BaseException as error:
        failure = error
        raise
    finally:
        if change is not None:
            change.closed = True
        outcome, step = _outcome(change, failure)
        try:
            if change_record is not None and connection is not None:
                # If the host cannot be reached now, "in-progress" stays behind and counts as unknown.
                with suppress(Exception):
                    write_change_record(connection, target.remote_state, {**change_record, "outcome": outcome})
            if remote_lock is not None:
                # A release that fails leaves a stale lock dir for `opsguard unlock`; the run still ends in the ledger.
                with suppress(Exception):
                    remote_lock.release()
            local_lock.release()
            if opened_connection and connection is not None:
                connection.close()
        finally:
            ledger.append(
                events.RUN_ENDED,
                run_id=run_id,
                host=target.name,
                outcome=outcome,
                failed_step=step,
                error=str(failure) if failure is not None and not isinstance(failure, GeneratorExit) else None,
                snapshot_id=change.receipt.snapshot_id if change is not None and change.receipt else None,
            )
