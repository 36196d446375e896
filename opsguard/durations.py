"""Duration strings of the inventory ("0.2s", "15s", "60m", "26h", "8d") to seconds and back."""

from __future__ import annotations

import math
import re

# The longest wait or timeout opsguard accepts: a longer one is a typo, or a run that never ends.
MAX_DURATION_SECONDS = 7 * 86400.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# ASCII digits only (\d would also take other scripts' digits); fullmatch, so no trailing junk.
_PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", re.ASCII)


def parse_duration(text: str) -> float:
    """Given a duration string such as "15s" or "8d", return seconds (maybe 0); raise ValueError if malformed or infinite."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string such as \"15s\", got {text!r}")
    match = _PATTERN.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use a number and one of ms, s, m, h, d, e.g. \"15s\")")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):  # hundreds of digits overflow to inf: a wait that would never end
        raise ValueError(f"{text!r} is too long a duration")
    return seconds


def parse_positive_duration(text: str, *, maximum: float = MAX_DURATION_SECONDS) -> float:
    """Given a duration string that must be positive (a timeout, a wait), return seconds.

    Raise ValueError if it is malformed, zero, or longer than ``maximum`` seconds (default 7 days).
    """
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"{text!r} must be greater than zero")
    if seconds > maximum:
        raise ValueError(f"{text!r} is longer than the maximum of {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Given seconds, return a short human form: "850ms", "12.3s", "4m05s", "26h", "8d"."""
    # Each threshold sits where the rounded text would reach the next unit ("1000ms", "60.0s", "60m00s").
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    if seconds < 3599.5:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    return f"{seconds / 86400:.1f}d".replace(".0d", "d")
