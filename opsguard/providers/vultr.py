"""The Vultr API v2 client (docs/providers.md), on requests: instances, snapshots, backups, restore.

Safety rules kept here:
- the snapshot POST is sent once; after a lost answer the snapshot is found by our description
  tag (all pages), never re-created. Only a 429 (refused, not carried out) is sent again, after
  the wait Vultr asks for;
- only ``complete`` with ``size > 0`` and our tag in the description is a verified snapshot;
  ``pending`` is in progress, ``deleted``/404 failed, anything else unknown (never success).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opsguard.errors import ProviderError, ProviderNotFound, SnapshotNotVerified
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

NAME = "vultr"
TOKEN_VARIABLE = "VULTR_API_KEY"
AUTH_HINT = (
    f"check {TOKEN_VARIABLE} (a valid, enabled Vultr API key) and that this machine's public IP is on the "
    "key's access control list (my.vultr.com > Account > API)"
)
PER_PAGE = 100  # the server may answer fewer; the cursor decides when we are done
MAX_PAGES = 1000


def _parse_error(answer: Answer) -> tuple[str, str | None]:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip():
        return body["error"].strip(), None
    if answer.text.strip():
        return f"HTTP {answer.status}: {short_text(answer.text)}", None
    return f"HTTP {answer.status} (empty answer)", None


def _is_locked_answer(answer: Answer) -> bool:
    # Vultr answers 500 "... Server is currently locked" for a locked instance: not worth retrying.
    message, _ = _parse_error(answer)
    return answer.status == 500 and "locked" in message.lower()


class VultrClient:
    """A Vultr account, as the Provider protocol describes it."""

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
        per_page: int = PER_PAGE,
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
            no_retry=_is_locked_answer,
        )
        self._sleep = sleep
        self._recovery_attempts = max(1, recovery_attempts)
        # The lookup after a lost POST answer waits like a retry, so the same cap applies.
        self._recovery_wait = min(recovery_wait, self._api.retry.wait_max)
        self._per_page = per_page

    @property
    def min_poll_gap(self) -> float:
        """Seconds that must pass between two polls of one snapshot (the provider rate-limits; see poll_floor)."""
        return poll_floor(self._api.base_url)

    def __repr__(self) -> str:
        return f"<VultrClient {self._api.base_url}>"

    def close(self) -> None:
        """Close the client's connections."""
        self._api.close()

    # -- instances -----------------------------------------------------------------------------

    def instance_facts(self, instance: str | int) -> InstanceFacts:
        """Given an instance id, return its facts (a 500 "locked" answer means locked); raise ProviderNotFound if absent."""
        try:
            answer = self._api.get(f"/instances/{instance}")
        except ProviderError as error:
            if error.status == 500 and "locked" in error.provider_message.lower():
                return InstanceFacts(
                    provider=NAME, instance=instance, label="", state="locked (HTTP 500)",
                    running=False, locked=True, public_ips=(),
                )  # fmt: skip
            raise
        record = self._object(answer, "instance")
        return self._facts(record)

    def list_instances(self) -> list[InstanceFacts]:
        """Return every instance of the account (all cursor pages)."""
        return [self._facts(record) for record in self._pages("/instances", "instances", {})]

    def _facts(self, record: dict[str, Any]) -> InstanceFacts:
        status = str(record.get("status") or "")
        power = str(record.get("power_status") or "")
        server = str(record.get("server_status") or "")
        ips = []
        for key in ("main_ip", "v6_main_ip"):
            address = record.get(key)
            if isinstance(address, str) and address.strip() and address.strip() not in ("0.0.0.0", "::"):
                ips.append(address.strip())
        features = record.get("features")
        return InstanceFacts(
            provider=NAME,
            instance=str(record.get("id") or ""),
            label=str(record.get("label") or record.get("hostname") or ""),
            state=f"{status}/{power}/{server}",
            running=status == "active" and power == "running" and server == "ok",
            locked=server == "locked",
            public_ips=tuple(ips),
            backups_enabled=isinstance(features, list) and "auto_backups" in features,
        )

    # -- snapshots -----------------------------------------------------------------------------

    def current_snapshot(self, instance: str | int) -> SnapshotInfo | None:
        """Given an instance, return None: Vultr keeps many snapshots and a new one overwrites none."""
        return None

    def create_snapshot(self, instance: str | int, tag: str) -> SnapshotRequest:
        """Given an instance and our tag, POST one snapshot with the tag as its description; return the handle.

        After a lost answer (timeout, dropped connection, 5xx) the snapshot is looked up by its
        description and returned with ``recovered=True``; raise ProviderUnreachable saying it
        may or may not exist if it cannot be found. Never re-POSTs after a lost answer; a 429
        (nothing done) is sent again after the wait asked for, and raise RateLimited saying no
        snapshot was created if the 429 persists.
        """
        requested_at = datetime.now(UTC)
        try:
            answer = self._api.send_once(
                "POST", "/snapshots", {"instance_id": str(instance), "description": tag}, not_done="no snapshot was created"
            )
        except AmbiguousRequest as lost:
            return self._recover(instance, tag, requested_at, lost)
        snapshot = self._snapshot(self._object(answer, "snapshot"))
        if not snapshot.snapshot_id:
            raise ProviderError(NAME, "POST /snapshots: the answer has no snapshot id")
        return SnapshotRequest(
            provider=NAME, instance=instance, tag=tag, requested_at=requested_at, snapshot_id=snapshot.snapshot_id
        )

    def _recover(self, instance: str | int, tag: str, requested_at: datetime, lost: AmbiguousRequest) -> SnapshotRequest:
        # The POST may have created the snapshot: find it by our unique tag instead of re-sending.
        found: list[SnapshotInfo] = []
        for attempt in range(self._recovery_attempts):
            if attempt:
                self._sleep(self._recovery_wait)
            try:
                found = [item for item in self._find_by_description(tag) if item.description == tag]
            except ProviderError as error:
                raise type(error)(
                    NAME,
                    f"snapshot of instance {instance} may or may not exist: the create answer was lost "
                    f"({lost.reason}) and looking it up failed ({error.provider_message})",
                    status=error.status,
                    correlation_id=error.correlation_id,
                    hint=error.hint,
                ) from None
            if found:
                break
        if not found:
            locked = lost.status == 500 and "locked" in lost.provider_message.lower()
            reason = "the instance is locked (another provider action is in progress)" if locked else ""
            raise AmbiguousRequest(
                NAME,
                f"snapshot of instance {instance} may or may not exist: the create answer was lost "
                f"({lost.reason}) and no snapshot with description {tag!r} was found"
                + (f"; {reason}" if reason else ""),
                status=lost.status,
                correlation_id=lost.correlation_id,
            )
        newest = max(found, key=lambda item: item.created_at or datetime.min.replace(tzinfo=UTC))
        return SnapshotRequest(
            provider=NAME,
            instance=instance,
            tag=tag,
            requested_at=requested_at,
            snapshot_id=newest.snapshot_id,
            recovered=True,
        )

    def _find_by_description(self, tag: str) -> list[SnapshotInfo]:
        return [self._snapshot(record) for record in self._pages("/snapshots", "snapshots", {"description": tag})]

    def poll_snapshot(self, request: SnapshotRequest) -> SnapshotProgress:
        """Given a handle, return its state: pending in progress, complete finished, deleted/404 failed, else unknown."""
        snapshot_id = self._snapshot_id(request)
        try:
            answer = self._api.get(f"/snapshots/{snapshot_id}")
        except ProviderNotFound:
            return SnapshotProgress(state="not found", finished=False, failed=True, detail=f"snapshot {snapshot_id} is gone (404)")
        snapshot = self._snapshot(self._object(answer, "snapshot"))
        state = snapshot.status or ""
        if state == "complete":
            return SnapshotProgress(state=state, finished=True, failed=False, detail=f"size {snapshot.size}")
        if state == "deleted":
            return SnapshotProgress(state=state, finished=False, failed=True, detail=f"snapshot {snapshot_id} was deleted")
        if state == "pending":
            return SnapshotProgress(state=state, finished=False, failed=False)
        # docs/design.md, guard rule 5: a state never seen before is not success; keep polling until the deadline.
        return SnapshotProgress(state=state, finished=False, failed=False, detail=f"unknown status {state!r}")

    def verify_snapshot(self, request: SnapshotRequest) -> VerifiedSnapshot:
        """Given a finished handle, return the verified snapshot; raise SnapshotNotVerified naming the failed check."""
        snapshot_id = self._snapshot_id(request)
        where = f"vultr snapshot {snapshot_id} of instance {request.instance}"
        try:
            answer = self._api.get(f"/snapshots/{snapshot_id}")
        except ProviderNotFound:
            raise SnapshotNotVerified(f"{where}: not found (404)") from None
        snapshot = self._snapshot(self._object(answer, "snapshot"))
        if snapshot.status != "complete":
            raise SnapshotNotVerified(f"{where}: status is {snapshot.status!r}, not 'complete'")
        if not snapshot.size or snapshot.size <= 0:
            raise SnapshotNotVerified(f"{where}: status 'complete' but size is {snapshot.size!r} (must be > 0)")
        if not request.tag or request.tag not in (snapshot.description or ""):
            raise SnapshotNotVerified(
                f"{where}: description {snapshot.description!r} does not carry our tag {request.tag!r}"
            )
        checks = (
            "status complete",
            f"size {snapshot.size} bytes",
            f"description carries tag {request.tag}",
        )
        return VerifiedSnapshot(snapshot=snapshot, checks=checks)

    def snapshot_details(self, instance: str | int, snapshot_id: str) -> SnapshotInfo | None:
        """Given a snapshot id, return it (GET /snapshots/{id}), or None on a 404.

        A Vultr snapshot does not say which instance it came from: callers check our description tag.
        """
        try:
            answer = self._api.get(f"/snapshots/{snapshot_id}")
        except ProviderNotFound:
            return None
        return self._snapshot(self._object(answer, "snapshot"))

    def _snapshot_id(self, request: SnapshotRequest) -> str:
        if not request.snapshot_id:
            raise ProviderError(NAME, f"snapshot handle for instance {request.instance} has no snapshot id")
        return request.snapshot_id

    def _snapshot(self, record: dict[str, Any]) -> SnapshotInfo:
        description = record.get("description")
        return SnapshotInfo(
            snapshot_id=str(record.get("id") or ""),
            created_at=parse_time(record.get("date_created")),
            size=as_int(record.get("size")),
            status=str(record["status"]) if record.get("status") is not None else None,
            description=description if isinstance(description, str) else None,
        )

    # -- backups -------------------------------------------------------------------------------

    def list_backups(self, instance: str | int) -> list[BackupInfo]:
        """Given an instance, return all its automatic backups (every cursor page; order not assumed)."""
        backups = []
        for record in self._pages("/backups", "backups", {"instance_id": str(instance)}):
            status = str(record["status"]) if record.get("status") is not None else None
            backups.append(
                BackupInfo(
                    backup_id=str(record.get("id") or ""),
                    created_at=parse_time(record.get("date_created")),
                    size=as_int(record.get("size")),
                    status=status,
                    complete=status == "complete",
                )
            )
        return backups

    def backup_schedule(self, instance: str | int) -> BackupSchedule | None:
        """Given an instance, return its backup schedule (a missing ``enabled`` means not enabled)."""
        answer = self._api.get(f"/instances/{instance}/backup-schedule")
        record = self._object(answer, "backup_schedule")
        kind = record.get("type")
        return BackupSchedule(
            enabled=record.get("enabled") is True,
            kind=kind if isinstance(kind, str) and kind else None,
            next_run=parse_time(record.get("next_scheduled_time_utc")),
        )

    # -- restore -------------------------------------------------------------------------------

    def poll_restore(self, request: RestoreRequest) -> RestoreProgress:
        """Given a restore, return how the instance looks: busy while locked or not running, ready again after.

        Vultr's API has no restore status: "ready" is not "finished" unless the caller saw it busy first.
        """
        facts = self.instance_facts(request.instance)
        busy = facts.locked or not facts.running
        return RestoreProgress(state=facts.state, busy=busy, finished=not busy, failed=False)

    def restore_snapshot(self, instance: str | int, snapshot_id: str) -> RestoreRequest:
        """Given an instance and a snapshot id, POST one restore (destructive) and return what it started.

        Raise AmbiguousRequest if the answer was lost (it may or may not have started: never re-sent),
        RateLimited if every attempt was answered 429 (no restore was started).
        """
        answer = self._api.send_once(
            "POST", f"/instances/{instance}/restore", {"snapshot_id": snapshot_id}, not_done="no restore was started"
        )
        status = as_dict(as_dict(answer.body).get("status"))
        return RestoreRequest(
            provider=NAME,
            instance=instance,
            restore_id=str(status.get("restore_id") or snapshot_id),
            state=str(status.get("status") or "unknown"),
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _object(self, answer: Answer, key: str) -> dict[str, Any]:
        body = answer.body
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise ProviderError(NAME, f"{answer.method} {answer.path}: answer has no {key!r} object", status=answer.status)
        record: dict[str, Any] = body[key]
        return record

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Given a list path, its item key and filters, return the items of every cursor page."""
        items: list[dict[str, Any]] = []
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query = dict(params, per_page=self._per_page)
            if cursor:
                query["cursor"] = cursor
            answer = self._api.get(path, query)
            body = as_dict(answer.body)
            page = body.get(key)
            if not isinstance(page, list):
                raise ProviderError(NAME, f"GET {path}: answer has no {key!r} list", status=answer.status)
            items.extend(item for item in page if isinstance(item, dict))
            next_cursor = as_dict(as_dict(body.get("meta")).get("links")).get("next") or ""
            if not isinstance(next_cursor, str) or not next_cursor:
                return items
            if next_cursor in seen:
                raise ProviderError(NAME, f"GET {path}: pagination cursor repeats; refusing to loop")
            seen.add(next_cursor)
            cursor = next_cursor
        raise ProviderError(NAME, f"GET {path}: more than {MAX_PAGES} pages; refusing to continue")
