"""opsguard: no change reaches a VPS until a full snapshot of it is created and verified.

The Python API for other scripts::

    from opsguard import snapshot_guard

    with snapshot_guard("chat", reason="rotate logs") as change:
        change.run("logrotate -f /etc/logrotate.conf")

Names are imported lazily so that ``import opsguard`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "read_only_session", "snapshot_guard"]


def __getattr__(name: str) -> Any:
    if name in ("snapshot_guard", "read_only_session"):
        from opsguard import guard

        return getattr(guard, name)
    raise AttributeError(f"module 'opsguard' has no attribute {name!r}")
