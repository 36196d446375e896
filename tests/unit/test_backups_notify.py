"""backup-check notifications: ping URLs are built right and never printed with their secret path."""

from __future__ import annotations

import pytest

from opsguard.notify import ping_url, redact_url


@pytest.mark.parametrize(
    ("base", "suffix", "expected"),
    [
        ("https://hc-ping.com/abc-123", "start", "https://hc-ping.com/abc-123/start"),
        ("https://hc-ping.com/abc-123/", "", "https://hc-ping.com/abc-123"),
        ("https://hc-ping.com/abc-123", "1", "https://hc-ping.com/abc-123/1"),
        ("http://127.0.0.1:8000/ping/x?rid=7", "78", "http://127.0.0.1:8000/ping/x/78?rid=7"),
    ],
)
def test_ping_url_appends_suffix_to_path(base: str, suffix: str, expected: str) -> None:
    assert ping_url(base, suffix) == expected


def test_redact_url_hides_path_and_query_when_printed() -> None:
    assert redact_url("https://hc-ping.com/0f1e2d3c-secret?x=1") == "https://hc-ping.com"
    assert redact_url("http://user:pw@127.0.0.1:8123/hook/secret") == "http://127.0.0.1:8123"
