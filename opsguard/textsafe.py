"""Text from records (a --reason, a provider's error) made safe to show on a terminal.

SAFETY: a value written by one person is read by another at a terminal. A newline in it would
print what looks like a second, forged line; an escape sequence could clear the screen, recolour
or retitle it; a bidirectional override could make "failed" read like something else. Human views
show such characters escaped (``\\n``, ``\\x1b``, ``\\u202e``), so every line shown is exactly one
line of what was recorded. Machine output (JSON) stays exact and does not use this.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# C0 controls, DEL, C1 controls; the Unicode line and paragraph separators; the bidirectional
# marks, embeddings, overrides and isolates; lone surrogates (they cannot even be encoded).
_UNSAFE = re.compile(
    "[\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ud800-\\udfff]"
)


def printable(text: str) -> str:
    """Given any text, return it with every control character escaped, as one printable line.

    \\n, \\r and \\t are shown so; other characters below U+0100 as \\xNN, the rest as \\uNNNN.
    Every other character, accented letters and emoji included, is kept as is.
    """
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
