"""fuser, lsof, pkill and killall on an idle host: nothing holds the file, no process matches, exit 1.

fuser answering 1 is what tells a playbook that nobody holds the dpkg/apt locks.
"""

from __future__ import annotations

from .core import Call


def nothing_found(call: Call) -> int:
    """Report "nothing found" (exit 1), as the real fuser, lsof, pkill and killall do on an idle host."""
    return 1
