"""The shared HTTP helper: timestamps, Retry-After, retry policy from the environment, token hygiene (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsguard.errors import ConfigError
from opsguard.providers.http import (
    HIDDEN,
    RETRY_WAIT_MAX_VARIABLE,
    ApiSession,
    RetryPolicy,
    as_int,
    parse_retry_after,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-10-10T01:56:20+00:00", datetime(2020, 10, 10, 1, 56, 20, tzinfo=UTC)),
        ("2020-07-28 00:00:00", datetime(2020, 7, 28, 0, 0, 0, tzinfo=UTC)),
        ("2025-02-27T11:54:22Z", datetime(2025, 2, 27, 11, 54, 22, tzinfo=UTC)),
        ("2025-02-27T11:54:22.5Z", datetime(2025, 2, 27, 11, 54, 22, 500000, tzinfo=UTC)),
        ("2025-02-27T11:54:22.123456Z", datetime(2025, 2, 27, 11, 54, 22, 123456, tzinfo=UTC)),
        ("2025-02-27T08:54:22-03:00", datetime(2025, 2, 27, 11, 54, 22, tzinfo=UTC)),
    ],
)
def test_parse_time_returns_aware_utc_for_every_provider_form(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", 12, {"a": 1}])
def test_parse_time_returns_none_when_absent_or_unparsable(value: object) -> None:
    assert parse_time(value) is None


def test_parse_retry_after_reads_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0


def test_parse_retry_after_reads_http_date_relative_to_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon"])
def test_parse_retry_after_returns_none_when_missing_or_garbage(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_policy_from_environment_defaults_when_unset() -> None:
    policy = RetryPolicy.from_environment()
    assert policy == RetryPolicy()
    assert policy.wait_max == 60.0


def test_retry_policy_from_environment_caps_waits_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRY_WAIT_MAX_VARIABLE, "0.05")
    policy = RetryPolicy.from_environment()
    assert policy.wait_max == 0.05
    assert policy.backoff_initial == 0.05


def test_retry_policy_from_environment_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRY_WAIT_MAX_VARIABLE, "fast")
    with pytest.raises(ConfigError, match=RETRY_WAIT_MAX_VARIABLE):
        RetryPolicy.from_environment()


def test_as_int_reads_numbers_and_digit_strings_only() -> None:
    assert as_int(5) == 5
    assert as_int("42") == 42
    assert as_int(True) is None
    assert as_int("4x") is None
    assert as_int(None) is None


def _session(token: str) -> ApiSession:
    return ApiSession(
        provider="vultr",
        base_url="https://api.example.invalid/v2/",
        token=token,
        parse_error=lambda answer: ("x", None),
        auth_hint="hint",
    )


def test_api_session_scrub_replaces_the_token_everywhere() -> None:
    session = _session("tok-SECRET-unit-1")
    assert session.scrub("Bearer tok-SECRET-unit-1 and tok-SECRET-unit-1") == f"Bearer {HIDDEN} and {HIDDEN}"


def test_api_session_repr_hides_the_token() -> None:
    session = _session("tok-SECRET-unit-2")
    texts = [repr(session), repr(session._session.auth), str(vars(session._session))]
    assert all("tok-SECRET-unit-2" not in text for text in texts)
    assert session.base_url == "https://api.example.invalid/v2"
