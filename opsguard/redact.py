"""The one redactor: every text opsguard emits passes through here, so no provider token ever leaves.

Tokens come only from the environment (``VULTR_API_KEY``, ``HOSTINGER_API_TOKEN``) and are read
again at each call, so a value set after start-up (or changed by a test) is known too. Each value
is replaced by :data:`MARKER` wherever it appears, also in the forms a library or an error
message gives it: JSON-escaped, ``repr()`` (of the text or of its bytes), URL-encoded, and, for a
value with whitespace or control characters inside, each of its pieces on its own (a message cut
at its first line keeps only part of the token).

Who calls it: ``cli.main`` (every error line and the --debug traceback), the log filter that
``cli`` installs (every log record), ``output.print_json``, ``notify`` (webhook payloads and ping
bodies), the provider clients' own scrubbing, and the ledger (``redact_data`` on each record).

SAFETY: this is defence in depth, not the first line. Code still must not put a token into any
text; a malformed token is refused before any request (``opsguard.providers.check_token``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

MARKER = "[token hidden]"
TOKEN_VARIABLES = ("VULTR_API_KEY", "HOSTINGER_API_TOKEN")
# Shorter values are not redacted: replacing every "a" or "ab" would wreck every message, and
# such a value is no usable token anyway (the API rejects it).
MIN_SECRET_LENGTH = 4
# What splits a malformed value into pieces that may be printed apart: whitespace, C0, DEL, C1.
_SEPARATORS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def configured_tokens() -> list[str]:
    """Return the token values set in the environment now (as set and stripped), each long enough to redact."""
    values: set[str] = set()
    for variable in TOKEN_VARIABLES:
        value = os.environ.get(variable, "")
        values.update(candidate for candidate in (value, value.strip()) if len(candidate) >= MIN_SECRET_LENGTH)
    return sorted(values)


def secret_forms(value: str) -> set[str]:
    """Given a secret value, return it and the forms it takes in messages, logs and documents.

    The forms: as is; JSON-escaped (ASCII and not); ``repr()`` of the text and of its UTF-8 bytes;
    URL-encoded (path, component and form style); and the pieces between whitespace or control
    characters. Forms shorter than MIN_SECRET_LENGTH are left out.
    """
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        repr(value.encode("utf-8", errors="backslashreplace"))[2:-1],
        urllib.parse.quote(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    }
    forms.update(_SEPARATORS.split(value))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """Given a text and secret values, return the text with every form of each value replaced by MARKER."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            forms.update(secret_forms(secret))
    # Longest first, so a whole token becomes one marker rather than a marker per piece.
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MARKER)
    return text


def redact(text: str) -> str:
    """Given any text bound for a person, a log, a file or another machine, return it without token values."""
    tokens = configured_tokens()
    if not tokens:
        return text
    return redact_values(text, tokens)


def redact_data(data: Any) -> Any:
    """Given JSON-ready data, return a copy with every string (keys too) redacted.

    Dicts, lists and tuples are walked (a tuple becomes a list, as in JSON); numbers, booleans
    and None are kept; any other object becomes its redacted ``str()``, which is what
    ``json.dumps(..., default=str)`` would have written. The input is not modified.
    """
    if isinstance(data, str):
        return redact(data)
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, dict):
        return {(redact(key) if isinstance(key, str) else key): redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(item) for item in data]
    return redact(str(data))


class RedactingFilter(logging.Filter):
    """A logging filter (for handlers) that redacts a record's message, traceback and stack text.

    The message is formatted with its arguments here, so a token passed as an argument is caught
    too; the traceback is formatted here (and kept as the record's ``exc_text``) so the handler's
    formatter prints the redacted text instead of formatting it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: keep what is there, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(*loggers: logging.Logger) -> None:
    """Given loggers (default: the root logger), add a RedactingFilter to each of their handlers once.

    On handlers, not loggers: a logger's own filters do not see records from its child loggers.
    """
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
                handler.addFilter(RedactingFilter())
