"""A stateful fake of the parts of Vultr API v2 opsguard uses (docs/providers.md), wire names exactly.

Served under ``/vultr/v2``: instances (list with cursor pages, get, backup-schedule, restore),
snapshots (create, get, list by description with cursor pages, delete) and backups (cursor pages).
Snapshots move pending -> complete after ``snapshot_seconds`` unless a fault mode says otherwise.
Every object carries every field Vultr's published description lists for it (see
tests/contracts/openapi/vultr.json and tests/contracts/overlay.py), with realistic values.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from opsguard.sandbox.fake_common import UNKNOWN_STATE, FakeApi, Reply, age_seconds, vultr_time

_INSTANCE = re.compile(r"^/instances/([^/]+)$")
_SCHEDULE = re.compile(r"^/instances/([^/]+)/backup-schedule$")
_RESTORE = re.compile(r"^/instances/([^/]+)/restore$")
_SNAPSHOT = re.compile(r"^/snapshots/([^/]+)$")
_MAX_PER_PAGE = 500
# The wire fields of an instance, in the order of the published examples. Scenario items and
# update_instance() set them by these names; "date_created" comes from the scenario's "created" age.
_INSTANCE_FIELDS = (
    "id", "os", "ram", "disk", "main_ip", "vcpu_count", "region", "plan", "date_created", "status",
    "allowed_bandwidth", "netmask_v4", "gateway_v4", "power_status", "server_status", "v6_network",
    "v6_main_ip", "v6_network_size", "label", "internal_ip", "kvm", "hostname", "os_id", "app_id", "image_id",
    "firewall_group_id", "features", "tags", "user_scheme", "vpc_only", "snapshot_id",
)  # fmt: skip
# A Vultr "vc2-2c-4gb" running Ubuntu 22.04 (os_id 1743), for fields a scenario leaves out.
_INSTANCE_DEFAULTS: dict[str, Any] = {
    "os": "Ubuntu 22.04 LTS x64",
    "ram": 4096,  # MB
    "disk": 80,  # GB
    "main_ip": "0.0.0.0",
    "vcpu_count": 2,
    "region": "ewr",
    "plan": "vc2-2c-4gb",
    "status": "active",
    "allowed_bandwidth": 3000,  # GB per month
    "netmask_v4": "255.255.254.0",
    "power_status": "running",
    "server_status": "ok",
    "v6_main_ip": "",
    "internal_ip": "",
    "os_id": 1743,
    "app_id": 0,
    "image_id": "",
    "firewall_group_id": "",
    "features": ["auto_backups"],
    "tags": [],
    "user_scheme": "root",
    "vpc_only": False,  # govultr's Instance struct; not in the published schema
    "snapshot_id": "",  # govultr's Instance struct; not in the published schema
}
_LOCKED_MESSAGE = "Unable to {what}: Server is currently locked"


class FakeVultr(FakeApi):
    """The simulated Vultr account: instances, their backups and schedules, and snapshots."""

    name = "vultr"
    prefix = "/vultr/v2"
    unauthorized_message = "Invalid API token."

    def __init__(self, spec: dict[str, Any], lock: threading.RLock, clock: Callable[[], float] = time.time) -> None:
        super().__init__(spec, lock, clock)
        now = self.clock()
        self.instances: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}
        self.backups: dict[str, list[dict[str, Any]]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}  # id -> internal record (insertion order = age order)
        for item in spec.get("instances") or []:
            self._add_instance(item, now)

    def _add_instance(self, item: dict[str, Any], now: float) -> None:
        instance_id = str(item["id"])
        record: dict[str, Any] = {key: copy.deepcopy(item.get(key, value)) for key, value in _INSTANCE_DEFAULTS.items()}
        record["id"] = instance_id
        record["label"] = item.get("label", "")
        record["hostname"] = item.get("hostname", record["label"])
        record["gateway_v4"] = item.get("gateway_v4", _gateway(record["main_ip"]))
        with_ipv6 = bool(record["v6_main_ip"])
        record["v6_network"] = item.get("v6_network", _ipv6_network(record["v6_main_ip"]) if with_ipv6 else "")
        record["v6_network_size"] = item.get("v6_network_size", 64 if with_ipv6 else 0)
        console = f"https://my.vultr.com/subs/vps/novnc/api.php?data={instance_id.replace('-', '')}"
        record["kvm"] = item.get("kvm", console)
        record["_created"] = now - age_seconds(item.get("created", "400d"))
        self.instances[instance_id] = record
        schedule = item.get("backup_schedule")
        if schedule is not None:
            self.schedules[instance_id] = dict(schedule)
        self.backups[instance_id] = []
        for index, backup in enumerate(item.get("backups") or []):
            backup = backup if isinstance(backup, dict) else {"age": backup}
            self.backups[instance_id].append(
                {
                    "id": backup.get("id") or self.new_uuid(),
                    "_created": now - age_seconds(backup["age"]),
                    "description": backup.get("description", f"Automatic backup {index + 1}"),
                    "size": int(backup.get("size", 21474836480)),
                    "status": backup.get("status", "complete"),
                }
            )
        for snapshot in item.get("snapshots") or []:
            snapshot_id = snapshot.get("id") or self.new_uuid()
            self.snapshots[snapshot_id] = {
                "id": snapshot_id,
                "instance": instance_id,
                "description": snapshot.get("description", ""),
                "_created": now - age_seconds(snapshot.get("age", "30d")),
                "size": int(snapshot.get("size", 16106127360)),
                "compressed_size": int(snapshot.get("compressed_size", 3221225472)),
                "status": snapshot.get("status", "complete"),
                "_done_at": None,
                "_mode": "ok",
                "_event": None,
            }

    # -- rendering -----------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message, "status": status}

    def _time(self, epoch: float) -> str:
        return vultr_time(epoch, style=str(self.faults.get("date_style") or "iso"))

    def _instance_wire(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            key: self._time(record["_created"]) if key == "date_created" else copy.deepcopy(record[key])
            for key in _INSTANCE_FIELDS
        }

    def _snapshot_wire(self, record: dict[str, Any]) -> dict[str, Any]:
        instance = self.instances.get(record["instance"], {})
        wire = {
            "id": record["id"],
            "date_created": self._time(record["_created"]),
            "description": record["description"],
            "size": record["size"],
            "compressed_size": record["compressed_size"],
            "status": record["status"],
            "os_id": instance.get("os_id", 1743),
            "app_id": instance.get("app_id", 0),
        }
        if self.faults.get("omit_optional"):
            del wire["compressed_size"]
        return wire

    def _backup_wire(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "date_created": self._time(record["_created"]),
            "description": record["description"],
            "size": record["size"],
            "status": record["status"],
        }

    def _page(self, key: str, items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            per_page = int(query.get("per_page") or 100)
        except ValueError:
            return Reply(400, self.error_body(400, "per_page must be an integer"))
        per_page = max(1, min(per_page, _MAX_PER_PAGE, self.page_size))
        offset = 0
        if query.get("cursor"):
            try:
                decoded = base64.b64decode(query["cursor"].encode(), validate=True).decode()
                offset = int(decoded.removeprefix("next__").removeprefix("prev__"))
            except (ValueError, binascii.Error):
                return Reply(400, self.error_body(400, "Invalid cursor."))
        chunk = items[offset : offset + per_page]
        next_cursor = _cursor("next", offset + per_page) if offset + per_page < len(items) else ""
        prev_cursor = _cursor("prev", max(0, offset - per_page)) if offset > 0 else ""
        meta = {"total": len(items), "links": {"next": next_cursor, "prev": prev_cursor}}
        return Reply(200, {key: chunk, "meta": meta})

    # -- time ----------------------------------------------------------------------------------

    def advance(self) -> None:
        now = self.clock()
        for record in self.snapshots.values():
            if record["status"] != "pending" or record["_done_at"] is None or now < record["_done_at"]:
                continue
            mode = record["_mode"]
            event = record["_event"]
            if mode == "error":
                record["status"] = "deleted"
            elif mode == "unknown_state":
                record["status"] = UNKNOWN_STATE
            else:
                record["status"] = "complete"
                instance = self.instances.get(record["instance"], {})
                disk_bytes = int(instance.get("disk", 80)) * 1024**3
                record["size"] = 0 if mode == "zero_size" else disk_bytes // 3
                record["compressed_size"] = 0 if mode == "zero_size" else disk_bytes // 9
                if mode == "untagged":
                    record["description"] = ""
                if event is not None:
                    event["completed_at"] = record["_done_at"]
            if event is not None:
                event["state"] = record["status"]
        for restore in self.restore_events:
            if restore["completed_at"] is None and now >= restore["_done_at"]:
                restore["completed_at"] = restore["_done_at"]
                restore["state"] = "complete"
                restored = self.instances.get(restore["instance"])
                if restored is not None and restored["server_status"] == "locked":
                    restored["server_status"] = "ok"

    # -- routes --------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if method == "GET" and path == "/instances":
            items = [self._instance_wire(record) for record in self.instances.values()]
            for key in ("main_ip", "label"):
                if query.get(key):
                    items = [item for item in items if item[key] == query[key]]
            return self._page("instances", items, query)
        match = _INSTANCE.match(path)
        if match and method == "GET":
            record = self.instances.get(match.group(1))
            if record is None:
                return self._not_found("Invalid instance-id.")
            if self.fault_for("locked_500", record["id"]):
                return Reply(500, self.error_body(500, _LOCKED_MESSAGE.format(what="get instance")))
            return Reply(200, {"instance": self._instance_wire(record)})
        match = _SCHEDULE.match(path)
        if match and method == "GET":
            return self._schedule(match.group(1))
        match = _RESTORE.match(path)
        if match and method == "POST":
            return self._restore(match.group(1), body)
        if path == "/snapshots" and method == "POST":
            return self._create_snapshot(body)
        if path == "/snapshots" and method == "GET":
            records = list(self.snapshots.values())
            if query.get("description"):
                records = [record for record in records if record["description"] == query["description"]]
            return self._page("snapshots", [self._snapshot_wire(record) for record in records], query)
        match = _SNAPSHOT.match(path)
        if match and method in ("GET", "DELETE"):
            record = self.snapshots.get(match.group(1))
            if record is None:
                return self._not_found("Invalid snapshot ID.")
            if method == "DELETE":
                del self.snapshots[record["id"]]
                return Reply(204)
            return Reply(200, {"snapshot": self._snapshot_wire(record)})
        if path == "/backups" and method == "GET":
            instance_id = query.get("instance_id")
            if instance_id:
                records = self.backups.get(instance_id, [])
            else:
                records = [backup for backups in self.backups.values() for backup in backups]
            return self._page("backups", [self._backup_wire(record) for record in records], query)
        return self._not_found(f"{method} {path} is not a route.")

    def _not_found(self, message: str) -> Reply:
        return Reply(404, self.error_body(404, message))

    def _schedule(self, instance_id: str) -> Reply:
        if instance_id not in self.instances:
            return self._not_found("Invalid instance-id.")
        spec = self.schedules.get(instance_id, {})
        schedule: dict[str, Any] = {}
        if spec.get("enabled") is not None:  # null in a scenario = the field is missing (seen in the wild)
            schedule["enabled"] = bool(spec["enabled"])
        schedule["type"] = spec.get("type", "daily")
        hour = int(spec.get("hour", 0))
        now = self.clock()
        day = now - now % 86400
        next_run = day + hour * 3600
        if next_run <= now:
            next_run += 86400
        schedule["next_scheduled_time_utc"] = vultr_time(next_run, style="space")  # always this form (contract)
        schedule["hour"] = hour
        schedule["dow"] = int(spec.get("dow", 1))
        schedule["dom"] = int(spec.get("dom", 1))
        return Reply(200, {"backup_schedule": schedule})

    def _create_snapshot(self, body: Any) -> Reply:
        body = body if isinstance(body, dict) else {}
        instance_id = str(body.get("instance_id") or "")
        record = self.instances.get(instance_id)
        if record is None:
            return Reply(400, self.error_body(400, "Invalid instance_id."))
        if record["server_status"] == "locked" or self.fault_for("locked_500", instance_id):
            return Reply(500, self.error_body(500, _LOCKED_MESSAGE.format(what="create snapshot")))
        now = self.clock()
        mode = self.snapshot_mode(instance_id)
        snapshot_id = self.new_uuid()
        event = {
            "api": self.name,
            "instance": instance_id,
            "snapshot_id": snapshot_id,
            "requested_at": now,
            "completed_at": None,
            "state": "pending",
        }
        self.snapshot_events.append(event)
        self.snapshots[snapshot_id] = {
            "id": snapshot_id,
            "instance": instance_id,
            "description": str(body.get("description") or ""),
            "_created": now,
            "size": 0,
            "compressed_size": 0,
            "status": "pending",
            "_done_at": None if mode == "stuck" else now + self.snapshot_seconds,
            "_mode": mode,
            "_event": event,
        }
        reply = Reply(201, {"snapshot": self._snapshot_wire(self.snapshots[snapshot_id])})
        return self.maybe_lose(reply)

    def _restore(self, instance_id: str, body: Any) -> Reply:
        record = self.instances.get(instance_id)
        if record is None:
            return self._not_found("Invalid instance-id.")
        body = body if isinstance(body, dict) else {}
        if record["server_status"] == "locked" or self.fault_for("locked_500", instance_id):
            return Reply(500, self.error_body(500, _LOCKED_MESSAGE.format(what="restore instance")))
        if body.get("snapshot_id"):
            kind, source = "snapshot_id", str(body["snapshot_id"])
            snapshot = self.snapshots.get(source)
            if snapshot is None or snapshot["status"] != "complete":
                return Reply(400, self.error_body(400, "Invalid snapshot_id."))
        elif body.get("backup_id"):
            kind, source = "backup_id", str(body["backup_id"])
            if not any(backup["id"] == source for backup in self.backups.get(instance_id, [])):
                return Reply(400, self.error_body(400, "Invalid backup_id."))
        else:
            return Reply(400, self.error_body(400, "Either snapshot_id or backup_id is required."))
        now = self.clock()
        record["server_status"] = "locked"  # locked until the restore is done
        self.restore_events.append(
            {
                "api": self.name,
                "instance": instance_id,
                "restore_id": source,
                "kind": kind,
                "requested_at": now,
                "completed_at": None,
                "state": "inprogress",
                "_done_at": now + self.restore_seconds,
            }
        )
        return Reply(202, {"status": {"restore_type": kind, "restore_id": source, "status": "inprogress"}})

    # -- run-time changes ----------------------------------------------------------------------

    def update_instance(self, instance_id: str, fields: dict[str, Any]) -> None:
        """Given an instance id and wire fields (status, server_status, main_ip, ...), change them now."""
        with self.lock:
            record = self.instances[str(instance_id)]
            for key, value in fields.items():
                if key not in _INSTANCE_FIELDS or key in ("id", "date_created"):
                    raise KeyError(f"vultr instance has no settable field {key!r}")
                record[key] = value


def _gateway(address: str) -> str:
    """Given an IPv4 address, return the .1 of its /24 (Vultr's gateway is the first address of the subnet)."""
    parts = address.split(".")
    if len(parts) != 4 or address == "0.0.0.0":
        return "0.0.0.0"
    return ".".join([*parts[:3], "1"])


def _ipv6_network(address: str) -> str:
    """Given an IPv6 address, return its /64 network as Vultr writes it ("2001:db8:1112:18fb::")."""
    try:
        network = ipaddress.IPv6Network(f"{address}/64", strict=False)
    except ValueError:
        return ""
    return str(network.network_address)


def _cursor(direction: str, offset: int) -> str:
    return base64.b64encode(f"{direction}__{offset}".encode()).decode()
