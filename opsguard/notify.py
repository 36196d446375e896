"""Tell the outside world how an unattended run went: healthchecks.io-style pings and a JSON webhook.

Both are best effort by design: a failed ping or webhook is a warning returned to the caller
(printed on stderr) and never changes a command's exit code. Every request has a 5 s timeout.

Monitors (after borgmatic's monitoring hooks): each one is told the run's state — START when it
begins, FINISH when it ends with exit 0 (warnings included), FAIL with the exit code otherwise —
and does what its service understands: ``PingMonitor`` pings URL/start, URL, URL/<exit code>;
``WebhookMonitor`` POSTs the JSON report on FAIL only. backup-check, audit and health use the same
monitors; a failing monitor never hides or changes the real result.

Ping protocol (healthchecks.io, also understood by Uptime Kuma push URLs and similar):
``POST URL/start`` when the run starts, then ``POST URL`` on success or ``POST URL/<exit code>``
on failure, each with a short text body. The URL's path (the check's secret UUID) is never
printed: warnings name only scheme, host and port. Bodies and payloads carry provider messages,
so they are redacted (opsguard.redact) before they leave the machine.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from opsguard.redact import redact, redact_data

TIMEOUT_SECONDS = 5.0
MAX_BODY_BYTES = 10_000  # healthchecks keeps the first 100 kB; a short summary is enough
USER_AGENT = "opsguard"  # the same for backup-check, audit and health (the body names the command)


def redact_url(url: str) -> str:
    """Given a URL, return only its scheme://host[:port]: the path or query may hold a secret."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or '?'}://{host}{port}"


def ping_url(base: str, suffix: str = "") -> str:
    """Given a ping URL and a suffix ("", "start" or an exit code), return the URL to request.

    The suffix is appended to the path, keeping any query string: ``https://hc/x?rid=1`` + start
    -> ``https://hc/x/start?rid=1``.
    """
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/")
    if suffix:
        path = f"{path}/{suffix}"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _post(url: str, body: bytes, content_type: str, timeout: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, "User-Agent": USER_AGENT}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # the operator's own URL
        status: int = response.status
        return status


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"


def ping(base: str, suffix: str, text: str, *, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Given a ping URL, a suffix ("start", "" for success, or an exit code) and a text body,
    send the ping and return None, or a one-line warning if it failed (never raises)."""
    label = suffix or "success"
    try:
        body = redact(text).encode("utf-8")[:MAX_BODY_BYTES]
        _post(ping_url(base, suffix), body, "text/plain; charset=utf-8", timeout)
    except Exception as error:  # best effort: the caller prints the warning
        return redact(f"warning: health ping ({label}) to {redact_url(base)} failed: {_describe(error)}")
    return None


def post_json(url: str, payload: Any, *, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Given a webhook URL and JSON-ready data, POST it and return None, or a one-line warning
    if it failed (never raises)."""
    body = json.dumps(redact_data(payload), sort_keys=True).encode("utf-8")
    try:
        _post(url, body, "application/json", timeout)
    except Exception as error:  # best effort: the caller prints the warning
        return redact(f"warning: webhook to {redact_url(url)} failed: {_describe(error)}")
    return None


class MonitorState(Enum):
    """How far a run got, as its monitors are told (borgmatic's monitor states)."""

    START = "start"
    FINISH = "finish"  # ended with exit 0 (warnings included)
    FAIL = "fail"  # ended with another exit code, or stopped early


class Monitor(Protocol):
    """Something told how a run goes. ``notify`` returns None, or a one-line warning; it never raises."""

    def notify(self, state: MonitorState, *, exit_code: int, text: str, document: Mapping[str, Any] | None) -> str | None: ...


@dataclass(frozen=True)
class PingMonitor:
    """healthchecks.io-style pings: URL/start on START, URL on FINISH, URL/<exit code> on FAIL (text body)."""

    url: str

    def notify(self, state: MonitorState, *, exit_code: int, text: str, document: Mapping[str, Any] | None) -> str | None:
        """Send the ping for the state; return None, or a warning if it failed."""
        suffix = {MonitorState.START: "start", MonitorState.FINISH: ""}.get(state, str(exit_code))
        return ping(self.url, suffix, text)


@dataclass(frozen=True)
class WebhookMonitor:
    """POST the JSON report when a run fails with a report (not on START or FINISH; a warning alone does not post)."""

    url: str

    def notify(self, state: MonitorState, *, exit_code: int, text: str, document: Mapping[str, Any] | None) -> str | None:
        """POST the document on FAIL; return None, or a warning if it failed."""
        if state is not MonitorState.FAIL or document is None:
            return None
        return post_json(self.url, dict(document))


def notify_all(
    monitors: Iterable[Monitor],
    state: MonitorState,
    *,
    exit_code: int = 0,
    text: str = "",
    document: Mapping[str, Any] | None = None,
) -> list[str]:
    """Given monitors and a state, tell each one; return the warnings of those that failed (never raises)."""
    warnings = []
    for monitor in monitors:
        try:
            warning = monitor.notify(state, exit_code=exit_code, text=text, document=document)
        except Exception as error:  # best effort: a monitor must never hide the run's result
            warning = redact(f"warning: monitor {type(monitor).__name__} failed: {type(error).__name__}")
        if warning:
            warnings.append(warning)
    return warnings
