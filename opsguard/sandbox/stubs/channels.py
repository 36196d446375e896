"""The Zpro database's WhatsApp channels (table Whatsapps): what psql reads and what a backend restart does to them.

Shared by the psql fake (it answers the channel probe: the table's columns from information_schema, then
the rows) and the pm2 fake (a restart of the backend makes every Baileys channel reconnect). The model:

- a fresh host has DEFAULT_CHANNELS: four CONNECTED (three Baileys sessions on this host, one ``waba``
  on Meta's servers) and one Baileys channel that was already DISCONNECTED;
- ``pm2 restart|reload|start zpro-backend`` puts each Baileys channel that is not DISCONNECTED into
  OPENING; ``reconnect_seconds`` later it reads CONNECTED, or ``qrcode`` when its name is in
  ``lose_session`` (the test knob for a lost session: someone must scan again);
- the table and its columns answer under ``table`` (a test renames it to model Zpro's renamed models).

The knobs live in <root>/stub-state/channels-config (SandboxHosts.set_channels writes it); a reset wipes them.
"""

from __future__ import annotations

import time

from .core import Call, load_state, save_state

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# id, name, type, tenantId, status
DEFAULT_CHANNELS = (
    (1, "Atendimento", "baileys", 1, "CONNECTED"),
    (2, "Vendas", "baileys", 1, "CONNECTED"),
    (3, "Suporte", "baileys", 2, "CONNECTED"),
    (4, "Oficial", "waba", 2, "CONNECTED"),
    (5, "Antigo", "baileys", 2, "DISCONNECTED"),
)
COLUMNS = ("id", "name", "session", "qrcode", "status", "battery", "plugged", "isDefault", "type", "tenantId",
           "createdAt", "updatedAt")  # fmt: skip
DEFAULT_CONFIG: dict[str, Any] = {"table": "Whatsapps", "reconnect_seconds": 0.3, "lose_session": []}
LOCAL_TYPES = ("baileys",)  # sessions that live with this host's backend (waba runs at Meta)


def channels_config(call: Call) -> dict[str, Any]:
    """Return the knobs: the table name, the reconnect delay in seconds and the channels that lose their session."""
    saved = load_state(call, "channels-config", {})
    return {**DEFAULT_CONFIG, **(saved if isinstance(saved, dict) else {})}


def channel_rows(call: Call) -> list[dict[str, Any]]:
    """Return every channel as the database holds it now (OPENING ones past their delay have settled)."""
    saved = load_state(call, "channels", None)
    rows: list[dict[str, Any]] = saved if isinstance(saved, list) else [
        {"id": cid, "name": name, "type": kind, "tenantId": tenant, "status": status, "since": 0.0}
        for cid, name, kind, tenant, status in DEFAULT_CHANNELS
    ]
    config = channels_config(call)
    delay = float(config["reconnect_seconds"])
    now, changed = time.time(), False
    for row in rows:
        if row["status"] == "OPENING" and now - float(row["since"]) >= delay:
            row["status"] = "qrcode" if row["name"] in config["lose_session"] else "CONNECTED"
            changed = True
    if changed:
        save_state(call, "channels", rows)
    return rows


def backend_restarted(call: Call) -> None:
    """The backend started again: every local (Baileys) channel that was not DISCONNECTED goes OPENING now."""
    rows = channel_rows(call)
    for row in rows:
        if row["type"] in LOCAL_TYPES and row["status"] != "DISCONNECTED":
            row["status"], row["since"] = "OPENING", time.time()
    save_state(call, "channels", rows)


def column_value(row: dict[str, Any], column: str) -> str | None:
    """Given a channel row and a column name, return the value psql prints (None: no such column)."""
    if column in row:
        return str(row[column])
    return "" if column in COLUMNS else None
