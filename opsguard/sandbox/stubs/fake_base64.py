"""base64: GNU coreutils' encoder (76-character lines), so a test rule can stand in for it and corrupt a copy.

opsguard copies files off a host through ``base64 -- FILE`` (opsguard/copies.py). This fake encodes a
file (or stdin) exactly as coreutils does; ``-d`` decodes. It is a stub only so that a rule can answer
instead (a corrupted download); it changes nothing on the host.
"""

from __future__ import annotations

import sys

from .core import Call, err, options_and_words, out

CONSUMES_STDIN = False  # it reads stdin itself, whole (the dispatcher would only count it)


def base64(call: Call) -> int:
    """Answer base64 [-d] [--] [FILE]: encode (or decode) the file, or stdin without one."""
    import base64 as codec
    import textwrap

    options, words = options_and_words([arg for arg in call.args if arg != "--"])
    try:
        if words and words[0] != "-":
            with open(words[0], "rb") as source:
                data = source.read()
        else:
            data = sys.stdin.buffer.read()
    except OSError as error:
        err(f"base64: {words[0]}: {error.strerror}\n")
        return 1
    if "-d" in options or "--decode" in options:
        sys.stdout.flush()
        sys.stdout.buffer.write(codec.b64decode(b"".join(data.split())))
        return 0
    encoded = codec.b64encode(data).decode("ascii")
    out("".join(line + "\n" for line in textwrap.wrap(encoded, 76)))
    return 0
