"""printable(): what a human view may send to a terminal, with control characters made visible."""

from __future__ import annotations

import pytest

from opsguard import textsafe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("line one\n2025-01-01T00:00:00Z  chat2  fake  ended: ok", "line one\\n2025-01-01T00:00:00Z  chat2  fake  ended: ok"),
        ("carriage\rreturn\ttab", "carriage\\rreturn\\ttab"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("nul\x00bell\x07del\x7f", "nul\\x00bell\\x07del\\x7f"),
        ("c1\x85\x9b31m", "c1\\x85\\x9b31m"),
        ("sep\u2028para\u2029end", "sep\\u2028para\\u2029end"),
        ("bidi\u202eko\u202c isolate\u2066x\u2069", "bidi\\u202eko\\u202c isolate\\u2066x\\u2069"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
    ids=["newline", "cr-tab", "ansi", "c0-del", "c1", "line-separators", "bidi", "surrogate"],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    assert textsafe.printable(text) == shown


def test_printable_keeps_ordinary_text_unchanged() -> None:
    text = "atualização de segurança — ação “rápida” 日本語 😀 C:\\temp ~/a b"
    assert textsafe.printable(text) == text


def test_printable_result_is_one_line_that_encodes_as_utf8() -> None:
    text = "".join(chr(code) for code in range(0x0, 0x3000))
    shown = textsafe.printable(text)
    assert "\n" not in shown and len(shown.splitlines()) == 1
    shown.encode("utf-8")  # a lone surrogate would raise here
