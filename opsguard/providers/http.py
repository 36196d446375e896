"""The HTTP plumbing both provider clients share: timeouts, retries, error mapping, token hygiene.

Rules this module enforces (docs/design.md, docs/providers.md):
- every request has a connect and a read timeout, and TLS is always verified;
- only GETs are retried (connection errors, timeouts, 5xx, 429), with exponential backoff and
  jitter, honouring ``Retry-After`` (seconds or an HTTP date), each wait capped and the whole
  retrying capped by a time budget;
- a POST/DELETE is sent once: when its outcome is unknown (timeout, dropped connection, 5xx)
  :class:`AmbiguousRequest` is raised so the client can look the result up instead of re-sending
  it (a blind re-POST makes duplicate snapshots). The one exception is a 429: the provider says
  it refused the request without carrying it out, so it is sent again after the wait the
  provider asks for, at most RATE_LIMIT_RESENDS times within the retry policy; if the 429
  persists, :class:`RateLimited` says the request was not carried out;
- the token is only ever put into the ``Authorization`` header of an outgoing request. It is not
  kept in any repr, never logged (headers are never logged), and every text that reaches an
  exception or a log record is scrubbed of it (and of every token set in the environment, in
  every form opsguard.redact knows) in case a server or a library echoes it back.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter

from opsguard.errors import ProviderAuthError, ProviderError, ProviderNotFound, ProviderUnreachable
from opsguard.redact import MARKER, redact, redact_values

LOG = logging.getLogger("opsguard.providers")

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
HIDDEN = MARKER
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
# A POST answered 429 is sent again at most this many times (each after the wait it asks for).
RATE_LIMIT_RESENDS = 2
# Tests and the sandbox shorten every retry wait through this variable (seconds, a float).
RETRY_WAIT_MAX_VARIABLE = "OPSGUARD_HTTP_RETRY_WAIT_MAX"

# (message, correlation id) from an error answer; each provider has its own body shape.
ErrorParser = Callable[["Answer"], tuple[str, str | None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a GET is retried: attempts, first backoff, cap on any one wait, and total time budget."""

    attempts: int = 6
    backoff_initial: float = 1.0
    wait_max: float = 60.0  # also caps a Retry-After the server asks for
    budget: float = 180.0  # seconds from the first attempt; no retry would start after it

    @classmethod
    def from_environment(cls) -> RetryPolicy:
        """Return the default policy, with every wait capped by $OPSGUARD_HTTP_RETRY_WAIT_MAX if set."""
        text = os.environ.get(RETRY_WAIT_MAX_VARIABLE, "").strip()
        if not text:
            return cls()
        try:
            wait_max = float(text)
        except ValueError:
            from opsguard.errors import ConfigError

            raise ConfigError(f"{RETRY_WAIT_MAX_VARIABLE}={text!r} is not a number of seconds") from None
        wait_max = max(0.0, wait_max)
        return cls(backoff_initial=min(1.0, wait_max), wait_max=wait_max)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers, the raw text and the decoded JSON (None when empty or not JSON)."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    text: str
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class AmbiguousRequest(ProviderUnreachable):
    """A request that must not be re-sent got no clear answer: it may or may not have taken effect.

    ``reason`` is the short cause ("POST /snapshots: HTTP 502: Bad Gateway") for callers that
    recover (look the result up) and phrase their own message.
    """

    reason: str = ""


class RateLimited(ProviderUnreachable):
    """A mutating request was answered 429 every time it was sent: the provider did not carry it out.

    Unlike :class:`AmbiguousRequest` the outcome is known (nothing was done), but the API was
    unavailable to us, so it stays a ProviderUnreachable (exit 4).
    """


class _Retryable(Exception):
    """Internal: this GET attempt may be retried. Carries the answer (or the network error text)."""

    def __init__(self, reason: str, *, answer: Answer | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer
        self.retry_after = retry_after


class _BearerAuth(requests.auth.AuthBase):
    """Adds the bearer header to each request; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {HIDDEN}>"


def parse_time(value: Any) -> datetime | None:
    """Given a provider timestamp, return an aware UTC datetime, or None when absent or unparsable.

    Accepts ISO-8601 with an offset or ``Z`` and optional fractional seconds
    (``2025-02-27T11:54:22.123Z``) and Vultr's zone-less ``2020-07-28 00:00:00`` (meaning UTC).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Given a Retry-After header (seconds or an HTTP date), return seconds to wait (>= 0), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class ApiSession:
    """An authenticated HTTP session to one provider API, with the rules of this module's docstring."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        token: str,
        parse_error: ErrorParser,
        auth_hint: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        no_retry: Callable[[Answer], bool] | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy.from_environment()
        self._token = token
        self._parse_error = parse_error
        self._auth_hint = auth_hint
        self._sleep = sleep
        self._no_retry = no_retry
        self._session = requests.Session()
        # No transport-level retries: this class decides what may be re-sent.
        adapter = HTTPAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.auth = _BearerAuth(token)
        # Both APIs speak JSON both ways (Hostinger's POSTs have no body but still say so).
        self._session.headers.update(
            {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "opsguard"}
        )

    def __repr__(self) -> str:
        return f"<ApiSession {self.provider} {self.base_url} token={HIDDEN}>"

    def close(self) -> None:
        """Close the underlying connections."""
        self._session.close()

    # -- text hygiene --------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Given any text bound for a message or a log, return it with this session's token (and any
        configured one) replaced, in every form opsguard.redact knows."""
        return redact(redact_values(text, [self._token]))

    # -- requests ------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, accept: tuple[int, ...] = ()) -> Answer:
        """Given a path and query, return the 2xx answer (or one whose status is in ``accept``).

        Retries connection errors, timeouts, 5xx and 429 (honouring Retry-After) within the
        policy; raise ProviderUnreachable when they are exhausted, ProviderAuthError on 401/403,
        ProviderNotFound on 404, ProviderError on any other error answer.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(max(1, self.retry.attempts)) | tenacity.stop_before_delay(self.retry.budget),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            answer: Answer = retrying(self._attempt_get, path, params, accept)
        except _Retryable as exhausted:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self._unreachable(exhausted.reason, exhausted.answer, path, attempts) from None
        return answer

    def send_once(
        self, method: str, path: str, json_body: Any = None, *, not_done: str = "it was not carried out"
    ) -> Answer:
        """Given a mutating request, send it and return its 2xx answer; re-send it only after a 429.

        ``not_done`` says what a refusal means for the caller ("no snapshot was created").
        Raise AmbiguousRequest when its outcome is unknown (timeout, dropped connection, 5xx): the
        caller must look the result up, never re-send. Raise RateLimited when the answer is 429
        on every attempt (or the wait asked for does not fit the retry budget): nothing was done.
        Raise ProviderAuthError, ProviderNotFound or ProviderError on another clear refusal (4xx).
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._request(method, path, None, json_body)
            except requests.RequestException as error:
                raise self._ambiguous(f"{method} {path}: no answer ({self._network_reason(error)})") from None
            if answer.ok:
                return answer
            if answer.status != 429:
                break
            # SAFETY: 429 is the one error answer that says the request was refused before it was
            # carried out, so sending it again cannot make a second snapshot (a 5xx can: see below).
            wait = self._rate_limit_wait(answer, attempt)
            if attempt > RATE_LIMIT_RESENDS:
                raise self._rate_limited(answer, f"on all {attempt} attempts", not_done)
            if time.monotonic() - started + wait > self.retry.budget:
                raise self._rate_limited(
                    answer, f"and the wait it asks for ({wait:g}s) exceeds the retry budget", not_done
                )
            LOG.warning(
                "%s API: %s %s: HTTP 429 (rate limited, not carried out); sending it again in %.2fs",
                self.provider, method, path, wait,
            )  # fmt: skip
            self._sleep(wait)
        if answer.status >= 500:
            message, correlation_id = self._parse_error(answer)
            raise self._ambiguous(f"{method} {path}: HTTP {answer.status}: {message}", answer.status, correlation_id)
        raise self.error_for(answer)

    def _rate_limit_wait(self, answer: Answer, attempt: int) -> float:
        """Given a 429 answer and how many times the request was sent, return seconds to wait before the next send.

        Retry-After (seconds or an HTTP date) when given, else an exponential backoff with jitter;
        either way at most the policy's wait_max.
        """
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if retry_after is not None:
            return min(self.retry.wait_max, retry_after)
        base = min(self.retry.wait_max, self.retry.backoff_initial * (2 ** (attempt - 1)))
        return base / 2 + random.uniform(0, base / 2)

    def _rate_limited(self, answer: Answer, how: str, not_done: str) -> RateLimited:
        message, correlation_id = self._parse_error(answer)
        return RateLimited(
            self.provider,
            self.scrub(
                f"{answer.method} {answer.path}: rate limited (HTTP 429: {message}) {how}; "
                f"the provider refused it without carrying it out, so {not_done}; try again later"
            ),
            status=answer.status,
            correlation_id=correlation_id,
        )

    def _ambiguous(self, reason: str, status: int | None = None, correlation_id: str | None = None) -> AmbiguousRequest:
        reason = self.scrub(reason)
        error = AmbiguousRequest(
            self.provider,
            f"{reason}; it may or may not have taken effect (not re-sent)",
            status=status,
            correlation_id=correlation_id,
        )
        error.reason = reason
        return error

    def _attempt_get(self, path: str, params: Mapping[str, Any] | None, accept: tuple[int, ...]) -> Answer:
        try:
            answer = self._request("GET", path, params, None)
        except requests.RequestException as error:
            raise _Retryable(self._network_reason(error)) from None
        if answer.ok or answer.status in accept:
            return answer
        retryable = answer.status >= 500 or answer.status == 429
        if retryable and not (self._no_retry and self._no_retry(answer)):
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            raise _Retryable(f"HTTP {answer.status}", answer=answer, retry_after=retry_after)
        raise self.error_for(answer)

    def _request(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any) -> Answer:
        url = f"{self.base_url}{path}"
        kwargs: dict[str, Any] = {"params": dict(params) if params else None, "timeout": self.timeout, "verify": True}
        if json_body is not None:
            kwargs["json"] = json_body
        response = self._session.request(method, url, **kwargs)
        text = response.text
        body: Any = None
        if text.strip():
            try:
                body = response.json()
            except ValueError:
                body = None
        LOG.debug("%s API: %s %s -> %s", self.provider, method, path, response.status_code)
        return Answer(method, path, response.status_code, dict(response.headers), text, body)

    # -- retry policy --------------------------------------------------------------------------

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(self.retry.wait_max, error.retry_after)
        base = min(self.retry.wait_max, self.retry.backoff_initial * (2 ** (retry_state.attempt_number - 1)))
        return base / 2 + random.uniform(0, base / 2)  # jitter so parallel runs do not retry in step

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        reason = error.reason if isinstance(error, _Retryable) else "error"
        path = retry_state.args[0] if retry_state.args else "?"
        LOG.warning(
            "%s API: GET %s: %s; retry %d in %.2fs",
            self.provider, path, self.scrub(reason), retry_state.attempt_number, retry_state.upcoming_sleep,
        )  # fmt: skip

    # -- errors --------------------------------------------------------------------------------

    def _network_reason(self, error: requests.RequestException) -> str:
        # requests' messages are long and carry the URL and library internals: keep a short,
        # scrubbed cause ("[Errno 111] Connection refused", "read timed out after 30s").
        text = self.scrub(str(error))
        if isinstance(error, requests.ConnectTimeout):
            return f"connect timed out after {self.timeout[0]:g}s"
        if isinstance(error, requests.ReadTimeout):
            return f"read timed out after {self.timeout[1]:g}s"
        errno = _ERRNO.search(text)
        if errno:
            return errno.group(0).strip()
        if "RemoteDisconnected" in text or "without response" in text:
            return "connection closed without an answer"
        if "reset" in text.lower():
            return "connection reset"
        if isinstance(error, requests.exceptions.SSLError):
            return "TLS verification failed"
        return f"{type(error).__name__}"

    def _unreachable(self, reason: str, answer: Answer | None, path: str, attempts: int) -> ProviderUnreachable:
        gave_up = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
        if answer is None:
            return ProviderUnreachable(self.provider, self.scrub(f"GET {path} at {self.base_url}: {reason}; {gave_up}"))
        message, correlation_id = self._parse_error(answer)
        return ProviderUnreachable(
            self.provider,
            self.scrub(f"GET {path}: {message}; {gave_up}"),
            status=answer.status,
            correlation_id=correlation_id,
        )

    def error_for(self, answer: Answer) -> ProviderError:
        """Given an error answer, return the matching ProviderError subclass (never raised here)."""
        message, correlation_id = self._parse_error(answer)
        message = self.scrub(f"{answer.method} {answer.path}: {message}")
        if answer.status in (401, 403):
            return ProviderAuthError(
                self.provider, message, status=answer.status, correlation_id=correlation_id, hint=self._auth_hint
            )
        if answer.status == 404:
            return ProviderNotFound(self.provider, message, status=answer.status, correlation_id=correlation_id)
        if answer.status >= 500 or answer.status == 429:
            return ProviderUnreachable(self.provider, message, status=answer.status, correlation_id=correlation_id)
        return ProviderError(self.provider, message, status=answer.status, correlation_id=correlation_id)


# Providers rate-limit: never poll one snapshot more often than once a second. The simulator on a
# loopback address is not a provider; tests and the sandbox poll it faster.
MIN_POLL_GAP = 1.0


def poll_floor(base_url: str) -> float:
    """Given a provider base URL, return the shortest gap between two polls: 1 s, or none for a loopback simulator."""
    from opsguard.providers import is_loopback_url

    return 0.0 if is_loopback_url(base_url) else MIN_POLL_GAP


def as_dict(value: Any) -> dict[str, Any]:
    """Given a decoded JSON value, return it if it is an object, else an empty dict (lenient parsing)."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    """Given a decoded JSON value, return it as an int (numbers and digit strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def short_text(text: str, limit: int = 200) -> str:
    """Given a response text, return it on one line, shortened for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
