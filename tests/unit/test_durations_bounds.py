"""opsguard.durations: a duration is always finite, and one that must be positive is never 0 nor unbounded."""

from __future__ import annotations

import pytest

from opsguard.durations import MAX_DURATION_SECONDS, parse_duration, parse_positive_duration


def test_parse_duration_raises_value_error_when_number_overflows_to_infinity() -> None:
    text = "9" * 400 + "s"  # float() of 400 nines is inf: a wait that never ends

    with pytest.raises(ValueError) as caught:
        parse_duration(text)

    assert "too long" in str(caught.value)


def test_max_duration_seconds_is_seven_days() -> None:
    assert MAX_DURATION_SECONDS == 7 * 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("60m", 3600.0, id="minutes"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("7d", 604800.0, id="exactly-the-maximum"),
    ],
)
def test_parse_positive_duration_returns_seconds_when_in_range(text: str, seconds: float) -> None:
    assert parse_positive_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0s", "0ms", "0.0h", " 0 d "])
def test_parse_positive_duration_raises_value_error_when_zero(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_positive_duration(text)

    assert str(caught.value) == f"{text!r} must be greater than zero"


def test_parse_positive_duration_raises_value_error_above_default_maximum() -> None:
    with pytest.raises(ValueError) as caught:
        parse_positive_duration("8d")

    assert str(caught.value) == "'8d' is longer than the maximum of 7d"


def test_parse_positive_duration_raises_value_error_above_given_maximum() -> None:
    with pytest.raises(ValueError) as caught:
        parse_positive_duration("2h", maximum=3600.0)

    assert str(caught.value) == "'2h' is longer than the maximum of 1h"


@pytest.mark.parametrize("text", ["soon", "15", "-5s", "9" * 400 + "d"])
def test_parse_positive_duration_raises_value_error_when_malformed_or_infinite(text: str) -> None:
    with pytest.raises(ValueError):
        parse_positive_duration(text)
