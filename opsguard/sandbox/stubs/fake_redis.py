"""redis-cli, on the host and inside the redis container: PING answers PONG, anything else OK."""

from __future__ import annotations

from .core import Call, out


def redis_cli(call: Call) -> int:
    """Answer redis-cli on the host."""
    return redis_answer(call.args)


def redis_answer(args: list[str]) -> int:
    """Given redis-cli's arguments, answer PONG to a ping and OK to anything else; return 0."""
    out("PONG\n" if any(word.lower() == "ping" for word in args) else "OK\n")
    return 0
