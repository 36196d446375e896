"""opsguard.durations: the inventory's duration strings to seconds, and seconds to short text."""

from __future__ import annotations

import pytest

from opsguard.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("0.2s", 0.2, id="fraction-of-second"),
        pytest.param("15s", 15.0, id="seconds"),
        pytest.param("60m", 3600.0, id="minutes"),
        pytest.param("26h", 93600.0, id="hours"),
        pytest.param("8d", 691200.0, id="days"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("1.5h", 5400.0, id="fraction-of-hour"),
        pytest.param(" 15 s ", 15.0, id="spaces-around"),
        pytest.param("0s", 0.0, id="zero-is-parsed-the-inventory-rejects-it"),
    ],
)
def test_parse_duration_returns_seconds_when_well_formed(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("15", id="no-unit"),
        pytest.param("s", id="no-number"),
        pytest.param("-5m", id="negative"),
        pytest.param("15 seconds", id="unit-spelled-out"),
        pytest.param("1h30m", id="compound"),
        pytest.param("15S", id="upper-case-unit"),
        pytest.param("1e3s", id="exponent"),
        pytest.param(".5s", id="no-leading-digit"),
        pytest.param("15s\nx", id="trailing-junk"),
        pytest.param("\u0661\u0665s", id="non-ascii-digits"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_duration_raises_value_error_when_malformed(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == f'{text!r} is not a duration (use a number and one of ms, s, m, h, d, e.g. "15s")'


@pytest.mark.parametrize(
    "value", [pytest.param(15, id="int"), pytest.param(None, id="none"), pytest.param(True, id="bool")]
)
def test_parse_duration_raises_value_error_when_not_a_string(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(caught.value) == f'expected a duration string such as "15s", got {value!r}'


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.85, "850ms", id="milliseconds"),
        pytest.param(0.9994, "999ms", id="just-under-a-second"),
        pytest.param(0.9996, "1.0s", id="rounds-up-to-a-second"),
        pytest.param(12.34, "12.3s", id="seconds"),
        pytest.param(59.96, "1m00s", id="rounds-up-to-a-minute"),
        pytest.param(245, "4m05s", id="minutes"),
        pytest.param(3599.6, "1h", id="rounds-up-to-an-hour"),
        pytest.param(93600, "26h", id="hours"),
        pytest.param(5400, "1.5h", id="fraction-of-hour"),
        pytest.param(691200, "8d", id="days"),
    ],
)
def test_format_duration_returns_short_text(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
