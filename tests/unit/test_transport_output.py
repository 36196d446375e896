"""opsguard.transport._LineStream: output reaches the callback line by line in linear time; the kept text is a bounded tail.

No network: the stream is fed bytes the way Connection.run feeds it what a channel hands over.
"""

from __future__ import annotations

import string
import time
import tracemalloc

import pytest

from opsguard import transport
from opsguard.transport import _LineStream

SSH_PACKET = 32768  # what one SSH channel read usually hands over
TWENTY_MB = 20_000_000
ONE_MIB = 1 << 20


def feed_in_reads(stream: _LineStream, data: bytes, read_size: int = SSH_PACKET) -> str:
    """Given a stream and bytes, feed them in reads of read_size, then return what finish() returns."""
    view = memoryview(data)
    for start in range(0, len(data), read_size):
        stream.feed(bytes(view[start : start + read_size]))
    return stream.finish()


def no_newline_bytes(size: int) -> bytes:
    """Given a size, return that many bytes of a repeating alphabet without any newline (so a tail is recognisable)."""
    alphabet = (string.ascii_letters + string.digits).encode()
    return (alphabet * (size // len(alphabet) + 1))[:size]


def best_feed_seconds(size: int, rounds: int = 5) -> float:
    """Given a size, feed that much output without newlines to a stream with a callback; return the best time of rounds."""
    data = no_newline_bytes(size)
    best = float("inf")
    for _ in range(rounds):
        stream = _LineStream("stdout", lambda stream, line: None)
        started = time.perf_counter()
        feed_in_reads(stream, data)
        best = min(best, time.perf_counter() - started)
    return best


def test_line_stream_feed_scales_linearly_when_output_has_no_newline() -> None:
    # Linear work makes 10x the output cost about 10x; the old re-split of the whole pending line
    # on every read made it about 100x. Best of 5 on both sides keeps a busy machine's noise out.
    small = best_feed_seconds(TWENTY_MB // 10)
    large = best_feed_seconds(TWENTY_MB)
    assert large / small < 20, f"2 MB took {small:.4f}s, 20 MB took {large:.4f}s"


def test_line_stream_memory_stays_bounded_when_fed_20_mb_without_newline() -> None:
    data = no_newline_bytes(TWENTY_MB)
    tracemalloc.start()
    try:
        kept = feed_in_reads(_LineStream("stdout", lambda stream, line: None), data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(kept) == ONE_MIB  # the default tail
    assert peak < 4 * ONE_MIB, f"peak traced memory {peak} bytes for 20 MB of output"


def test_line_stream_keeps_exactly_the_last_max_kept_characters_when_fed_20_mb() -> None:
    data = no_newline_bytes(TWENTY_MB)
    stream = _LineStream("stdout", lambda stream, line: None)
    kept = feed_in_reads(stream, data)
    assert kept == data[-transport.DEFAULT_MAX_KEPT_CHARACTERS :].decode()
    assert stream.dropped == TWENTY_MB - transport.DEFAULT_MAX_KEPT_CHARACTERS
    assert transport.DEFAULT_MAX_KEPT_CHARACTERS == ONE_MIB


def test_line_stream_hands_every_character_to_callback_in_bounded_pieces_when_line_is_endless() -> None:
    data = no_newline_bytes(TWENTY_MB)
    pieces: list[str] = []
    feed_in_reads(_LineStream("stdout", lambda stream, line: pieces.append(line)), data)
    assert "".join(pieces) == data.decode()  # the terminal still sees everything, in order
    assert len(pieces) > 1
    assert max(len(piece) for piece in pieces) <= 2 * 64 * 1024


def test_line_stream_keeps_tail_in_characters_when_multibyte_text_is_split_across_reads() -> None:
    text = "aé€" * 1000 + "end"
    stream = _LineStream("stdout", None, max_kept=10)
    kept = feed_in_reads(stream, text.encode(), read_size=7)  # 7 bytes: cuts "é" and "€" in half
    assert kept == text[-10:]
    assert stream.dropped == len(text) - 10


def test_line_stream_keeps_whole_output_and_drops_nothing_when_under_max_kept() -> None:
    stream = _LineStream("stdout", None, max_kept=100)
    assert feed_in_reads(stream, b"one\ntwo\n", read_size=3) == "one\ntwo\n"
    assert stream.dropped == 0


def test_line_stream_keeps_nothing_when_max_kept_is_zero() -> None:
    lines: list[str] = []
    stream = _LineStream("stderr", lambda stream, line: lines.append(line), max_kept=0)
    assert feed_in_reads(stream, b"warn\nmore", read_size=2) == ""
    assert stream.dropped == 9
    assert lines == ["warn", "more"]


def test_line_stream_calls_back_lines_without_newline_or_carriage_return_when_reads_split_them() -> None:
    seen: list[tuple[str, str]] = []
    stream = _LineStream("stderr", lambda stream, line: seen.append((stream, line)))
    kept = feed_in_reads(stream, b"one\r\ntwo\n\nthree\r", read_size=1)
    assert seen == [("stderr", "one"), ("stderr", "two"), ("stderr", ""), ("stderr", "three")]
    assert kept == "one\r\ntwo\n\nthree\r"  # the kept text is the output as it came


def test_line_stream_long_line_pieces_join_to_the_line_when_crlf_follows_a_piece() -> None:
    # A piece handed over early must not end in the "\r" of a "\r\n", nor leave an empty extra "line".
    pieces: list[str] = []
    stream = _LineStream("stdout", lambda stream, line: pieces.append(line), max_pending=8)
    feed_in_reads(stream, b"abcdefgh\r" + b"\nnext\n", read_size=9)
    assert pieces == ["abcdefgh", "next"]


@pytest.mark.parametrize("read_size", [1, 3, 7, 16, 64])
def test_line_stream_long_line_pieces_join_to_the_line_when_split_at_any_read_size(read_size: int) -> None:
    long_line = "0123456789" * 5
    pieces: list[str] = []
    stream = _LineStream("stdout", lambda stream, line: pieces.append(line), max_pending=8)
    feed_in_reads(stream, (long_line + "\nshort\n" + long_line).encode(), read_size=read_size)
    short_at = pieces.index("short")
    assert "".join(pieces[:short_at]) == long_line
    assert "".join(pieces[short_at + 1 :]) == long_line
    assert all(0 < len(piece) <= 8 + read_size for piece in pieces), pieces
