"""What both simulated provider APIs share: replies, auth, fault knobs, paging and time rendering.

A fake API (fake_vultr.py, fake_hostinger.py) subclasses :class:`FakeApi`, implements
``route()`` and ``advance()``, and keeps all of its state behind the simulator's one lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsguard.durations import parse_duration

# The snapshot fault modes a scenario may set (``faults.snapshot``), and what each one does.
SNAPSHOT_MODES = {
    "ok": "completes normally after snapshot_seconds",
    "stuck": "never completes (Vultr pending / Hostinger action sent, VM locked)",
    "error": "fails (Vultr status deleted / Hostinger action error)",
    "zero_size": "Vultr: complete with size 0",
    "untagged": "Vultr: complete, but the description lost our tag",
    "stale_after_success": "Hostinger: action success but the old snapshot is left unchanged",
    "locked_after_success": "Hostinger: action success but the VM stays locked",
    "unknown_state": "reaches a state string no client has seen before, forever",
}
UNKNOWN_STATE = "processing_v2"  # deliberately not in any contract


@dataclass
class Reply:
    """One simulated HTTP answer. ``drop`` closes the connection without answering (after ``delay`` s)."""

    status: int
    body: Any = None  # JSON-ready value; None = empty body
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of JSON (e.g. an empty 200)
    drop: bool = False
    delay: float = 0.0


def age_seconds(value: Any) -> float:
    """Given an age such as "3h" or "9d" (or a number of seconds), return seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return parse_duration(str(value))


def vultr_time(epoch: float, *, style: str = "iso") -> str:
    """Given epoch seconds, return a Vultr timestamp: "2020-10-10T01:56:20+00:00" or, style "space", "2020-07-28 00:00:00"."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if style == "space":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def hostinger_time(epoch: float, *, fractional: bool = False) -> str:
    """Given epoch seconds, return a Hostinger timestamp: "2025-02-27T11:54:22Z" (or with ".123456")."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if fractional:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeApi:
    """State and fault handling common to both simulated APIs. Subclasses route the requests."""

    name = ""
    prefix = ""

    def __init__(self, spec: dict[str, Any], lock: threading.RLock, clock: Callable[[], float] = time.time) -> None:
        self.lock = lock
        self.clock = clock
        self.token = str(spec.get("token") or f"sim-{self.name}-token")
        self.page_size = max(1, int(spec.get("page_size", 2)))
        self.snapshot_seconds = float(spec.get("snapshot_seconds", 0.3))
        self.restore_seconds = float(spec.get("restore_seconds", 0.3))
        self.faults: dict[str, Any] = {}
        self._request_count = 0  # requests subject to rate limiting since the knob was set
        for name, value in (spec.get("faults") or {}).items():
            self.set_fault(name, value)
        self.snapshot_events: list[dict[str, Any]] = []
        self.restore_events: list[dict[str, Any]] = []

    # -- fault knobs -----------------------------------------------------------------------------

    def set_fault(self, name: str, value: Any) -> None:
        """Given a knob name and value (None removes it), set it from now on; raise ValueError for an unknown snapshot mode."""
        if name == "snapshot" and value is not None:
            modes = value.values() if isinstance(value, dict) else [value]
            unknown = [mode for mode in modes if mode not in SNAPSHOT_MODES]
            if unknown:
                raise ValueError(f"unknown snapshot fault mode {unknown[0]!r} (known: {', '.join(SNAPSHOT_MODES)})")
        with self.lock:
            if value is None:
                self.faults.pop(name, None)
            else:
                self.faults[name] = value
            if name == "rate_limit_every":
                self._request_count = 0

    def fault_for(self, name: str, instance: Any = None, default: Any = None) -> Any:
        """Given a knob and an instance id, return its value: a dict value is read per instance (keys as text)."""
        value = self.faults.get(name, default)
        if isinstance(value, dict):
            return value.get(str(instance), default)
        return value

    def snapshot_mode(self, instance: Any) -> str:
        """Given an instance id, return the snapshot fault mode that applies to it ("ok" when none)."""
        return str(self.fault_for("snapshot", instance, "ok") or "ok")

    def before_route(self, method: str, authorization: str | None) -> Reply | None:
        """Given a request's method and Authorization header, return the fault or 401 answer, or None to route it."""
        with self.lock:
            methods = self.faults.get("fault_methods") or ["GET"]
            subject = method in methods
            if subject and int(self.faults.get("fail_first") or 0) > 0:
                self.faults["fail_first"] = int(self.faults["fail_first"]) - 1
                status = int(self.faults.get("fail_status") or 503)
                headers = {}
                message = "Service temporarily unavailable"
                if status == 429:
                    message = "Too many requests"
                    if self.faults.get("retry_after") is not None:
                        headers["Retry-After"] = str(self.faults["retry_after"])
                return Reply(status, self.error_body(status, message), headers=headers)
            every = int(self.faults.get("rate_limit_every") or 0)
            if subject and every > 0:
                self._request_count += 1
                if self._request_count % every == 0:
                    retry_after = str(self.faults.get("retry_after", "1"))
                    return Reply(429, self.error_body(429, "Too many requests"), headers={"Retry-After": retry_after})
            if self.faults.get("reject_token") or authorization != f"Bearer {self.token}":
                return Reply(401, self.error_body(401, self.unauthorized_message))
        return None

    def maybe_lose(self, reply: Reply) -> Reply:
        """Given the answer to a snapshot create POST, return it, or what ``post_lost`` makes of it.

        ``post_lost`` = "drop": the snapshot exists but the connection closes without an answer
        (after ``post_lost_delay`` seconds); "5xx": a 502 arrives instead of the answer.
        """
        lost = self.faults.get("post_lost")
        if not lost:
            return reply
        delay = float(self.faults.get("post_lost_delay") or 0.0)
        if lost == "5xx":
            return Reply(502, self.error_body(502, "Bad Gateway"), delay=delay)
        return Reply(0, drop=True, delay=delay)

    # -- for subclasses ------------------------------------------------------------------------

    unauthorized_message = "Unauthorized"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """Given a status and message, return this API's error body."""
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        """Given a request (path relative to the API prefix), return its answer."""
        raise NotImplementedError

    def advance(self) -> None:
        """Move every running snapshot / restore forward to the current time."""
        raise NotImplementedError

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, authorization: str | None) -> Reply:
        """Given a request, return its answer: faults and auth first, then the route, state advanced to now."""
        early = self.before_route(method, authorization)
        if early is not None:
            return early
        with self.lock:
            self.advance()
            return self.route(method, path, query, body)

    @staticmethod
    def new_uuid() -> str:
        return str(uuid.uuid4())
