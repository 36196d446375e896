"""curl: every URL answers 200 with a small JSON body, but for a Zpro app's port while pm2 has it stopped.

A localhost URL on the port of a stopped Zpro app (fake_pm2.app_listening) refuses the
connection: exit 7, "000" for -w %{http_code}, and the error on stderr unless -s without -S.
-I/--head prints the status line and headers; -o drops the body; -w prints its text with
%{http_code} / %{response_code}.
"""

from __future__ import annotations

from .core import Call, err, has_flag, option_value, options_and_words, out
from .fake_pm2 import app_listening

# The options of curl that take a value (the next word is not the URL).
CURL_VALUE_OPTIONS = (
    "-o", "--output", "-w", "--write-out", "-H", "--header", "-X", "--request", "-d", "--data", "-u", "--user",
    "-m", "--max-time", "--connect-timeout", "-A", "--user-agent", "-e", "--referer", "--retry", "-T", "-F",
)  # fmt: skip


def curl(call: Call) -> int:
    """Answer curl for the URL given (http://localhost when none)."""
    from urllib.parse import urlsplit

    options, words = options_and_words(call.args, CURL_VALUE_OPTIONS)
    write_out = option_value(call.args, ("-w", "--write-out"))
    output = option_value(call.args, ("-o", "--output"))
    silent = has_flag(options, "s", "--silent")
    show_error = has_flag(options, "S", "--show-error")
    url = urlsplit(words[0] if words and "://" in words[0] else "http://" + (words[0] if words else "localhost"))
    host = url.hostname or "localhost"
    port = url.port or (443 if url.scheme == "https" else 80)
    # A Zpro app's port answers only while pm2 runs it (after `pm2 stop` it refuses, as on a real host).
    listening = host not in ("localhost", "127.0.0.1", "::1") or app_listening(call, str(port))
    code = "200" if listening else "000"
    if listening and ("-I" in options or "--head" in options):
        out("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    elif listening and output is None:
        out('{"status":"ok"}\n')
    if write_out is not None:
        text = write_out.replace("%{http_code}", code).replace("%{response_code}", code)
        out(text.replace("\\n", "\n").replace("\\t", "\t"))
    if not listening:
        if not silent or show_error:
            err(f"curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n")
        return 7
    return 0
