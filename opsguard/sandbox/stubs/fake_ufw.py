"""ufw: the firewall is active and allows SSH and the web (22, 80, 443); other calls succeed silently."""

from __future__ import annotations

from .core import Call, out


def ufw(call: Call) -> int:
    """Answer ufw: status lists the rules."""
    if call.args[:1] == ["status"]:
        out(
            "Status: active\n\nTo                         Action      From\n--                         ------      ----\n"
        )
        out("22/tcp                     ALLOW       Anywhere\n80,443/tcp                 ALLOW       Anywhere\n")
    return 0
