"""Command-line input checked before anything happens: text sent to a host, durations, and `exec`'s arguments.

Every check here runs before the snapshot: on Hostinger a new snapshot replaces the previous one, so
input that can only fail later must cost nothing now.
"""

from __future__ import annotations

from opsguard.durations import MAX_DURATION_SECONDS, parse_positive_duration
from opsguard.errors import ConfigError

# surrogateescape maps an undecodable byte 0xXX to U+DCXX (PEP 383): this is how argv bytes that are
# not UTF-8 reach Python.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def validate_command_text(text: str, *, what: str, allow_empty: bool = False) -> None:
    """Given text bound for a host or the ledger (a command, a --var value, a reason) and what it is, return None if usable.

    Raise ConfigError naming ``what`` if it is not a string, cannot be encoded as strict UTF-8 (bytes
    that were not UTF-8 arrive as surrogate escapes and would fail only when sent), contains a NUL,
    or is empty or only whitespace (unless ``allow_empty``).
    """
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(f"{what}: not valid UTF-8 ({_describe_surrogate(text, error.start)})") from None
    if "\x00" in text:
        raise ConfigError(f"{what}: contains a NUL character (at character {text.index(chr(0)) + 1})")
    if not allow_empty and not text.strip():
        raise ConfigError(f"{what}: is empty")


def positive_duration_option(text: str, *, option: str, maximum: float = MAX_DURATION_SECONDS) -> float:
    """Given an option's duration text (e.g. --timeout "60m") and the option's name, return seconds.

    Raise ConfigError naming the option if the text is malformed, zero, or longer than ``maximum``
    (default 7 days).
    """
    try:
        return parse_positive_duration(text, maximum=maximum)
    except ValueError as error:
        raise ConfigError(f"{option}: {error}") from None


def _describe_surrogate(text: str, index: int) -> str:
    code = ord(text[index])
    where = f"at character {index + 1}"
    if code in _ESCAPED_BYTES:
        return f"byte 0x{code - 0xDC00:02x} {where}"
    return f"lone surrogate U+{code:04X} {where}"

