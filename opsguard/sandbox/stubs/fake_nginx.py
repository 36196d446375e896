"""nginx: its configuration test passes and it reports its version (both on stderr, as the real one).

Other calls (nginx -s reload) print nothing and succeed; certbot has no fake.
"""

from __future__ import annotations

from .core import Call, err


def nginx(call: Call) -> int:
    """Answer nginx: -t / -T (the test is successful) and -v / -V."""
    if "-t" in call.args or "-T" in call.args:
        err("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n")
        err("nginx: configuration file /etc/nginx/nginx.conf test is successful\n")
    elif "-v" in call.args or "-V" in call.args:
        err("nginx version: nginx/1.22.1\n")
    return 0
