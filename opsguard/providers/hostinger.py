"""The Hostinger VPS API client (docs/providers.md), on requests: VMs, the one snapshot, actions, backups.

Safety rules kept here:
- Hostinger keeps ONE snapshot per VM and a new one overwrites it: create_snapshot reads the
  current one first (``previous``) so the ledger can record the rollback point being replaced;
- the snapshot POST is sent once; after a lost answer the create Action is found in the actions
  list (a new id, created at/after our start minus clock skew), never re-posted. Only a 429
  (refused, not carried out) is sent again, after the wait Hostinger asks for;
- a snapshot has no state: only the Action says it finished, and only ``success`` followed by a
  snapshot that is newer than the Action, differs from ``previous``, has not expired, on a VM that
  is running and unlocked again, is verified. Unknown Action states are never success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from opsguard.errors import ConfigError, ProviderError, ProviderNotFound, Refused, SnapshotNotVerified
from opsguard.providers import check_token
from opsguard.providers.base import (
    BackupInfo,
    BackupSchedule,
    InstanceFacts,
    RestoreProgress,
    RestoreRequest,
    SnapshotInfo,
    SnapshotProgress,
    SnapshotRequest,
    VerifiedSnapshot,
)
from opsguard.providers.http import (
    DEFAULT_TIMEOUT,
    AmbiguousRequest,
    Answer,
    ApiSession,
    RetryPolicy,
    as_dict,
    as_int,
    parse_time,
    poll_floor,
    short_text,
)

NAME = "hostinger"
TOKEN_VARIABLE = "HOSTINGER_API_TOKEN"
AUTH_HINT = f"check {TOKEN_VARIABLE} (a valid Hostinger API token from hPanel > Account > API)"
VMS = "/api/vps/v1/virtual-machines"
CLOCK_SKEW = timedelta(minutes=2)  # allowance between our clock, the Action's and the snapshot's
IN_FLIGHT = frozenset({"created", "sent", "delayed"})
MAX_PAGES = 1000


def _parse_error(answer: Answer) -> tuple[str, str | None]:
    body = answer.body
    message: str | None = None
    correlation_id: str | None = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                message = body[key].strip()
                break
        if body.get("correlation_id") is not None:
            correlation_id = str(body["correlation_id"])
        errors = body.get("errors")
        if message and isinstance(errors, dict) and errors:
            fields = "; ".join(f"{field}: {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                               for field, problems in errors.items())  # fmt: skip
            message = f"{message} ({fields})"
    if message is None:
        message = f"HTTP {answer.status}: {short_text(answer.text)}" if answer.text.strip() else f"HTTP {answer.status} (empty answer)"
    return message, correlation_id


def _addresses(value: Any) -> list[str]:
    # ipv4 / ipv6 are lists of {id, address, ptr}; either may be null or empty.
    if not isinstance(value, list):
        return []
    found = []
    for item in value:
        address = item.get("address") if isinstance(item, dict) else item
        if isinstance(address, str) and address.strip():
            found.append(address.strip())
    return found


class HostingerClient:
    """A Hostinger account, as the Provider protocol describes it."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        recovery_attempts: int = 3,
        recovery_wait: float = 2.0,
    ) -> None:
        # SAFETY: a malformed token must fail here, by name, not inside requests with the value in its message.
        check_token(TOKEN_VARIABLE, token)
        self._api = ApiSession(
            provider=NAME,
            base_url=base_url,
            token=token,
            parse_error=_parse_error,
            auth_hint=AUTH_HINT,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
        )
        self._sleep = sleep
        self._recovery_attempts = max(1, recovery_attempts)
        # The lookup after a lost POST answer waits like a retry, so the same cap applies.
        self._recovery_wait = min(recovery_wait, self._api.retry.wait_max)

    @property
    def min_poll_gap(self) -> float:
        """Seconds that must pass between two polls of one snapshot (the provider rate-limits; see poll_floor)."""
        return poll_floor(self._api.base_url)

    def __repr__(self) -> str:
        return f"<HostingerClient {self._api.base_url}>"

    def close(self) -> None:
        """Close the client's connections."""
        self._api.close()

    # -- VMs -----------------------------------------------------------------------------------

    def instance_facts(self, instance: str | int) -> InstanceFacts:
        """Given a VM id, return its facts; raise ProviderNotFound if it does not exist."""
        answer = self._api.get(f"{VMS}/{_vm_id(instance)}")
        if not isinstance(answer.body, dict):
            raise ProviderError(NAME, f"GET {answer.path}: answer is not a VM object", status=answer.status)
        return self._facts(answer.body)

    def list_instances(self) -> list[InstanceFacts]:
        """Return every VM of the account (the list is a bare array, no pagination)."""
        answer = self._api.get(VMS)
        if not isinstance(answer.body, list):
            raise ProviderError(NAME, f"GET {VMS}: answer is not a JSON array", status=answer.status)
        return [self._facts(record) for record in answer.body if isinstance(record, dict)]

    def _facts(self, record: dict[str, Any]) -> InstanceFacts:
        state = str(record.get("state") or "")
        lock = record.get("actions_lock")
        identifier = as_int(record.get("id"))
        return InstanceFacts(
            provider=NAME,
            instance=identifier if identifier is not None else str(record.get("id") or ""),
            label=str(record.get("hostname") or ""),
            state=state,
            running=state == "running",
            # Safe default: anything but an explicit "unlocked" (including a missing field) is locked.
            locked=lock != "unlocked",
            public_ips=tuple(_addresses(record.get("ipv4")) + _addresses(record.get("ipv6"))),
            backups_enabled=None,
        )

    # -- snapshot ------------------------------------------------------------------------------

    def current_snapshot(self, instance: str | int) -> SnapshotInfo | None:
        """Given a VM id, return its one snapshot (the one a new snapshot overwrites), or None if it has none.

        "None" is a 404, an empty body or ``{}`` (the API does not document which it answers).
        """
        answer = self._api.get(f"{VMS}/{_vm_id(instance)}/snapshot", accept=(404,))
        if answer.status == 404 or not answer.text.strip():
            return None
        if answer.body is None:
            raise ProviderError(NAME, f"GET {answer.path}: answer is not JSON", status=answer.status)
        if answer.body in ({}, []):
            return None
        if not isinstance(answer.body, dict) or answer.body.get("id") is None:
            raise ProviderError(NAME, f"GET {answer.path}: answer is not a snapshot object", status=answer.status)
        return self._snapshot(answer.body)

    def snapshot_details(self, instance: str | int, snapshot_id: str) -> SnapshotInfo | None:
        """Given a VM id and a snapshot id, return the VM's one snapshot if it has that id, else None."""
        current = self.current_snapshot(instance)
        return current if current is not None and current.snapshot_id == str(snapshot_id) else None

    def create_snapshot(self, instance: str | int, tag: str) -> SnapshotRequest:
        """Given a VM id and our tag, record the snapshot about to be overwritten, POST once, return the handle.

        After a lost answer the create Action is looked up in the actions list and returned with
        ``recovered=True``; raise ProviderUnreachable saying the snapshot may or may not
        exist if it cannot be told apart. Never re-POSTs after a lost answer; a 429 (nothing done)
        is sent again after the wait asked for, and raise RateLimited saying no snapshot was
        created if the 429 persists.
        """
        vm_id = _vm_id(instance)
        previous = self.current_snapshot(vm_id)
        # The action ids that exist before the POST: a lost answer is recovered by finding a new one.
        known_actions = {action_id for action_id, _ in self._actions(vm_id)}
        requested_at = datetime.now(UTC)
        try:
            answer = self._api.send_once("POST", f"{VMS}/{vm_id}/snapshot", not_done="no snapshot was created")
        except AmbiguousRequest as lost:
            recovered_id, created_at = self._recover(vm_id, known_actions, requested_at, lost)
            return SnapshotRequest(
                provider=NAME, instance=vm_id, tag=tag, requested_at=requested_at, action_id=recovered_id,
                action_created_at=created_at, previous=previous, recovered=True,
            )  # fmt: skip
        action = as_dict(answer.body)
        action_id = as_int(action.get("id"))
        if action_id is None:
            raise ProviderError(NAME, f"POST {answer.path}: the answer has no action id", status=answer.status)
        return SnapshotRequest(
            provider=NAME,
            instance=vm_id,
            tag=tag,
            requested_at=requested_at,
            action_id=action_id,
            action_created_at=parse_time(action.get("created_at")),
            previous=previous,
        )

    def _recover(
        self, vm_id: int, known: set[int], requested_at: datetime, lost: AmbiguousRequest
    ) -> tuple[int, datetime | None]:
        earliest = requested_at - CLOCK_SKEW
        candidates: list[tuple[int, datetime | None]] = []
        for attempt in range(self._recovery_attempts):
            if attempt:
                self._sleep(self._recovery_wait)
            try:
                actions = self._actions(vm_id)
            except ProviderError as error:
                raise type(error)(
                    NAME,
                    f"snapshot of VM {vm_id} may or may not exist: the create answer was lost "
                    f"({lost.reason}) and listing actions failed ({error.provider_message})",
                    status=error.status,
                    correlation_id=error.correlation_id,
                    hint=error.hint,
                ) from None
            candidates = [
                (action_id, created_at)
                for action_id, created_at in actions
                if action_id not in known and created_at is not None and created_at >= earliest
            ]
            if candidates:
                break
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            reason = "no new action was found"
        else:
            ids = ", ".join(str(action_id) for action_id, _ in sorted(candidates))
            reason = f"several new actions ({ids}) appeared and action names are not documented"
        raise AmbiguousRequest(
            NAME,
            f"snapshot of VM {vm_id} may or may not exist: the create answer was lost "
            f"({lost.reason}) and {reason}",
            status=lost.status,
            correlation_id=lost.correlation_id,
        )

    def _actions(self, vm_id: int) -> list[tuple[int, datetime | None]]:
        """Given a VM id, return (id, created_at) of every action on every page."""
        actions = []
        for record in self._pages(f"{VMS}/{vm_id}/actions"):
            action_id = as_int(record.get("id"))
            if action_id is not None:
                actions.append((action_id, parse_time(record.get("created_at"))))
        return actions

    def poll_snapshot(self, request: SnapshotRequest) -> SnapshotProgress:
        """Given a handle, return the create Action's state; success counts as finished only once the VM is unlocked."""
        vm_id, action_id = self._handle(request)
        try:
            answer = self._api.get(f"{VMS}/{vm_id}/actions/{action_id}")
        except ProviderNotFound:
            return SnapshotProgress(state="not found", finished=False, failed=True, detail=f"action {action_id} not found (404)")
        action = as_dict(answer.body)
        state = str(action.get("state") or "")
        if state == "success":
            facts = self.instance_facts(vm_id)
            if facts.locked:
                return SnapshotProgress(state=state, finished=False, failed=False, detail="action success; VM still locked")
            return SnapshotProgress(state=state, finished=True, failed=False)
        if state == "error":
            return SnapshotProgress(state=state, finished=False, failed=True, detail=f"action {action_id} ended in error")
        if state in IN_FLIGHT:
            return SnapshotProgress(state=state, finished=False, failed=False)
        # docs/design.md, guard rule 5: a state never seen before is not success; keep polling until the deadline.
        return SnapshotProgress(state=state, finished=False, failed=False, detail=f"unknown action state {state!r}")

    def verify_snapshot(self, request: SnapshotRequest) -> VerifiedSnapshot:
        """Given a finished handle, return the verified snapshot; raise SnapshotNotVerified naming the failed check."""
        vm_id, action_id = self._handle(request)
        where = f"hostinger VM {vm_id} snapshot (action {action_id})"
        try:
            action_answer = self._api.get(f"{VMS}/{vm_id}/actions/{action_id}")
        except ProviderNotFound:
            raise SnapshotNotVerified(f"{where}: action not found (404)") from None
        action = as_dict(action_answer.body)
        state = action.get("state")
        if state != "success":
            raise SnapshotNotVerified(f"{where}: action state is {state!r}, not 'success'")
        action_created = parse_time(action.get("created_at")) or request.action_created_at
        if action_created is None:
            raise SnapshotNotVerified(f"{where}: the action has no created_at to compare the snapshot with")

        snapshot = self.current_snapshot(vm_id)
        if snapshot is None:
            raise SnapshotNotVerified(f"{where}: action succeeded but the VM has no snapshot")
        if snapshot.created_at is None:
            raise SnapshotNotVerified(f"{where}: snapshot {snapshot.snapshot_id} has no created_at")
        if snapshot.created_at < action_created - CLOCK_SKEW:
            raise SnapshotNotVerified(
                f"{where}: snapshot {snapshot.snapshot_id} was created {_iso(snapshot.created_at)}, before the action "
                f"({_iso(action_created)}, allowing {int(CLOCK_SKEW.total_seconds())}s skew): it is the old one"
            )
        previous = request.previous
        # The snapshot seen before the POST is identified by (id, created_at): a new one differs in
        # at least one of them (Hostinger may or may not keep the id; created_at alone can repeat
        # within one second when snapshots are quick, as in the sandbox).
        if (
            previous is not None
            and snapshot.snapshot_id == previous.snapshot_id
            and (previous.created_at is None or snapshot.created_at == previous.created_at)
        ):
            raise SnapshotNotVerified(
                f"{where}: the VM's snapshot is still the previous one (id {snapshot.snapshot_id}, created "
                f"{_iso(snapshot.created_at)}): it was not replaced"
            )
        now = datetime.now(UTC)
        if snapshot.expires_at is None:
            raise SnapshotNotVerified(f"{where}: snapshot {snapshot.snapshot_id} has no expires_at")
        if snapshot.expires_at <= now:
            raise SnapshotNotVerified(f"{where}: snapshot {snapshot.snapshot_id} expired at {_iso(snapshot.expires_at)}")
        facts = self.instance_facts(vm_id)
        if not facts.running:
            raise SnapshotNotVerified(f"{where}: VM state is {facts.state!r}, not 'running'")
        if facts.locked:
            raise SnapshotNotVerified(f"{where}: VM is still locked by a provider action")
        checks = (
            "action success",
            f"snapshot {snapshot.snapshot_id} created {_iso(snapshot.created_at)} (action {_iso(action_created)})",
            "differs from the previous snapshot" if previous else "no previous snapshot",
            f"expires {_iso(snapshot.expires_at)}",
            "VM running and unlocked",
        )
        return VerifiedSnapshot(snapshot=snapshot, checks=checks)

    def _handle(self, request: SnapshotRequest) -> tuple[int, int]:
        if request.action_id is None:
            raise ProviderError(NAME, f"snapshot handle for VM {request.instance} has no action id")
        return _vm_id(request.instance), request.action_id

    def _snapshot(self, record: dict[str, Any]) -> SnapshotInfo:
        return SnapshotInfo(
            snapshot_id=str(record.get("id")),
            created_at=parse_time(record.get("created_at")),
            expires_at=parse_time(record.get("expires_at")),
        )

    # -- backups -------------------------------------------------------------------------------

    def list_backups(self, instance: str | int) -> list[BackupInfo]:
        """Given a VM id, return all its automatic backups (every page; order not assumed)."""
        backups = []
        for record in self._pages(f"{VMS}/{_vm_id(instance)}/backups"):
            size_kb = as_int(record.get("size"))
            backups.append(
                BackupInfo(
                    backup_id=str(record.get("id")),
                    created_at=parse_time(record.get("created_at")),
                    size=size_kb * 1024 if size_kb is not None else None,
                    status=None,
                    complete=True,  # Hostinger lists only finished backups
                )
            )
        return backups

    def backup_schedule(self, instance: str | int) -> BackupSchedule | None:
        """Given a VM id, return None: the Hostinger API exposes no backup schedule."""
        return None

    # -- restore -------------------------------------------------------------------------------

    def poll_restore(self, request: RestoreRequest) -> RestoreProgress:
        """Given a restore's Action, return its state: finished once the Action succeeded and the VM runs unlocked."""
        vm_id = _vm_id(request.instance)
        if not request.restore_id.isdigit():
            return RestoreProgress(state="no action id", busy=False, finished=False, failed=False,
                                   detail="the restore answer named no action to follow")
        try:
            answer = self._api.get(f"{VMS}/{vm_id}/actions/{request.restore_id}")
        except ProviderNotFound:
            return RestoreProgress(state="not found", busy=False, finished=False, failed=True,
                                   detail=f"action {request.restore_id} not found (404)")
        state = str(as_dict(answer.body).get("state") or "")
        if state == "error":
            return RestoreProgress(state=state, busy=False, finished=False, failed=True,
                                   detail=f"action {request.restore_id} ended in error")
        if state == "success":
            facts = self.instance_facts(vm_id)
            done = facts.running and not facts.locked
            return RestoreProgress(state=state, busy=not done, finished=done, failed=False,
                                   detail="" if done else f"action success; VM {facts.state}, still locked or not running")
        return RestoreProgress(state=state, busy=True, finished=False, failed=False,
                               detail="" if state in IN_FLIGHT else f"unknown action state {state!r}")

    def restore_snapshot(self, instance: str | int, snapshot_id: str) -> RestoreRequest:
        """Given a VM id and the id of its snapshot, POST one restore (destructive) and return the Action.

        Raise Refused if the VM's one snapshot is not ``snapshot_id`` (it was overwritten or
        deleted), AmbiguousRequest if the answer was lost (never re-sent), RateLimited if every
        attempt was answered 429 (no restore was started).
        """
        vm_id = _vm_id(instance)
        current = self.current_snapshot(vm_id)
        if current is None or current.snapshot_id != str(snapshot_id):
            found = f"its snapshot is {current.snapshot_id}" if current else "it has no snapshot"
            raise Refused(f"hostinger VM {vm_id}: cannot restore snapshot {snapshot_id}: {found}")
        answer = self._api.send_once("POST", f"{VMS}/{vm_id}/snapshot/restore", not_done="no restore was started")
        action = as_dict(answer.body)
        return RestoreRequest(
            provider=NAME,
            instance=vm_id,
            restore_id=str(action.get("id") or ""),
            state=str(action.get("state") or "unknown"),
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _pages(self, path: str) -> list[dict[str, Any]]:
        """Given a paged list path, return the items of every page (until total read or an empty page)."""
        items: dict[Any, dict[str, Any]] = {}
        unnamed: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            answer = self._api.get(path, {"page": page})
            body = as_dict(answer.body)
            data = body.get("data")
            if not isinstance(data, list):
                raise ProviderError(NAME, f"GET {path}: answer has no 'data' list", status=answer.status)
            if not data:
                break
            for record in data:
                if not isinstance(record, dict):
                    continue
                # Keyed by id: a list that shifts while we page must not count an item twice.
                if record.get("id") is None:
                    unnamed.append(record)
                else:
                    items[record["id"]] = record
            total = as_int(as_dict(body.get("meta")).get("total"))
            if total is not None and len(items) + len(unnamed) >= total:
                break
        else:
            raise ProviderError(NAME, f"GET {path}: more than {MAX_PAGES} pages; refusing to continue")
        return [*items.values(), *unnamed]


def _vm_id(instance: str | int) -> int:
    identifier = as_int(instance)
    if identifier is None or identifier <= 0:
        raise ConfigError(f"{instance!r} is not a Hostinger VM id (a positive integer)")
    return identifier


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
