"""A stateful fake of the parts of Hostinger's VPS API opsguard uses (docs/providers.md), wire names exactly.

Served under ``/hostinger``: VMs (bare array), the ONE snapshot per VM (create overwrites it when
its Action succeeds; get; delete; restore), actions (paged, newest first), backups (paged, in the
scenario's order — clients must not assume one) and backup restore (deletes the snapshot).
While a snapshot or restore runs the VM's ``actions_lock`` is "locked"; it unlocks after.
Every object carries every field Hostinger's published description lists for it (see
tests/contracts/openapi/hostinger.json), with realistic values.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from opsguard.sandbox.fake_common import UNKNOWN_STATE, FakeApi, Reply, age_seconds, hostinger_time

_BASE = "/api/vps/v1/virtual-machines"
_VM = re.compile(rf"^{_BASE}/([^/]+)(/.*)?$")
_ACTION = re.compile(r"^/actions/([^/]+)$")
_BACKUP_RESTORE = re.compile(r"^/backups/([^/]+)/restore$")
_IN_FLIGHT = ("created", "sent", "delayed")
_SNAPSHOT_LIFETIME = 20 * 86400  # about 20 days, as in Hostinger's examples
# The wire fields of a VM, in the order of the published schema. Scenario items and
# update_instance() set them by these names; "created_at" comes from the scenario's "created" age.
_VM_FIELDS = (
    "id", "firewall_group_id", "subscription_id", "data_center_id", "plan", "hostname", "state", "actions_lock",
    "cpus", "memory", "disk", "bandwidth", "ns1", "ns2", "ipv4", "ipv6", "template", "created_at",
)  # fmt: skip
# A Hostinger "KVM 2" running Ubuntu 22.04, for fields a scenario leaves out.
_VM_DEFAULTS: dict[str, Any] = {
    "firewall_group_id": None,  # no firewall active
    "data_center_id": 521,
    "plan": "KVM 2",
    "state": "running",
    "actions_lock": "unlocked",
    "cpus": 2,
    "memory": 8192,  # MB
    "disk": 102400,  # MB
    "bandwidth": 8388608,  # MB per month (8 TB)
    "ns1": "1.1.1.1",
    "ns2": "8.8.8.8",
}
_TEMPLATE_DEFAULTS: dict[str, Any] = {
    "id": 1002,
    "name": "Ubuntu 22.04 64bit",
    "description": "Ubuntu 22.04",
    "documentation": "https://help.ubuntu.com/",
}


class FakeHostinger(FakeApi):
    """The simulated Hostinger account: VMs with their one snapshot, actions and backups."""

    name = "hostinger"
    prefix = "/hostinger"
    unauthorized_message = "Unauthenticated."

    def __init__(self, spec: dict[str, Any], lock: threading.RLock, clock: Callable[[], float] = time.time) -> None:
        super().__init__(spec, lock, clock)
        self._action_ids = itertools.count(int(spec.get("first_action_id", 80001)))
        self._snapshot_ids = itertools.count(int(spec.get("first_snapshot_id", 501)))
        self._backup_ids = itertools.count(9001)
        self._address_ids = itertools.count(301)
        self._correlation = itertools.count(1)
        now = self.clock()
        self.vms: dict[int, dict[str, Any]] = {}
        for item in spec.get("vms") or []:
            self._add_vm(item, now)

    def _add_vm(self, item: dict[str, Any], now: float) -> None:
        vm_id = int(item["id"])
        vm: dict[str, Any] = {key: copy.deepcopy(item.get(key, value)) for key, value in _VM_DEFAULTS.items()}
        template = item.get("template", _TEMPLATE_DEFAULTS)
        if isinstance(template, dict):  # a scenario's own template: the published fields it leaves out
            template = {"description": template.get("name", ""), "documentation": None, **template}
        vm.update(
            {
                "id": vm_id,
                # An opaque 17-character id in the real API; stable per VM here.
                "subscription_id": item.get("subscription_id", f"Az{vm_id:015d}"),
                "hostname": item.get("hostname", f"srv{vm_id}.hstgr.cloud"),
                "cpus": int(vm["cpus"]),
                "memory": int(vm["memory"]),
                "disk": int(vm["disk"]),
                "ipv4": self._addresses(item.get("ipv4", [])),
                "ipv6": self._addresses(item.get("ipv6", [])),
                "template": copy.deepcopy(template),
                "_created": now - age_seconds(item.get("created", "300d")),
                "_snapshot": None,
                "_actions": [],
                "_backups": [],
            }
        )
        snapshot = item.get("snapshot")
        if snapshot:
            created = now - age_seconds(snapshot.get("created", "10d"))
            expires = now + age_seconds(snapshot["expires"]) if "expires" in snapshot else created + _SNAPSHOT_LIFETIME
            vm["_snapshot"] = {
                "id": int(snapshot.get("id") or next(self._snapshot_ids)),
                "_created": created,
                "_expires": expires,
                "restore_time": int(snapshot.get("restore_time", 600)),
            }
        # Older actions, so the actions list has several pages before opsguard adds one.
        history = int(item.get("history_actions", 5))
        for index in range(history):
            created = now - 86400 * (history - index + 1)
            vm["_actions"].append(self._action("vps_backup_create", created, state="success", done_at=created + 600))
        for backup in item.get("backups") or []:
            backup = backup if isinstance(backup, dict) else {"age": backup}
            vm["_backups"].append(
                {
                    "id": int(backup.get("id") or next(self._backup_ids)),
                    "_created": now - age_seconds(backup["age"]),
                    "size": int(backup.get("size", 20971520)),  # KB
                    "restore_time": int(backup.get("restore_time", 900)),
                    "location": backup.get("location", "nl-srv-openstack"),
                }
            )
        self.vms[vm_id] = vm

    def _addresses(self, value: Any) -> list[dict[str, Any]] | None:
        if value is None:
            return None
        return [
            item if isinstance(item, dict) else {"id": next(self._address_ids), "address": str(item), "ptr": None}
            for item in value
        ]

    def _action(self, name: str, created: float, *, state: str = "created", done_at: float | None = None,
                kind: str = "", mode: str = "ok") -> dict[str, Any]:  # fmt: skip
        return {
            "id": next(self._action_ids),
            "name": name,
            "state": state,
            "_created": created,
            "_updated": created if done_at is None or state in _IN_FLIGHT else done_at,
            "_done_at": done_at,
            "_kind": kind,
            "_mode": mode,
            "_event": None,
        }

    # -- rendering -----------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"message": message, "correlation_id": f"00000000-0000-4000-8000-{next(self._correlation):012d}"}

    def _time(self, epoch: float) -> str:
        return hostinger_time(epoch, fractional=bool(self.faults.get("fractional_seconds")))

    def _vm_wire(self, vm: dict[str, Any]) -> dict[str, Any]:
        return {
            key: self._time(vm["_created"]) if key == "created_at" else copy.deepcopy(vm[key]) for key in _VM_FIELDS
        }

    def _action_wire(self, action: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": action["id"],
            "name": action["name"],
            "state": action["state"],
            "created_at": self._time(action["_created"]),
            "updated_at": self._time(action["_updated"]),
        }

    def _snapshot_wire(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        wire = {
            "id": snapshot["id"],
            "restore_time": snapshot["restore_time"],
            "created_at": self._time(snapshot["_created"]),
            "expires_at": self._time(snapshot["_expires"]),
        }
        if self.faults.get("omit_optional"):
            del wire["restore_time"]
        return wire

    def _backup_wire(self, backup: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": backup["id"],
            "size": backup["size"],
            "restore_time": backup["restore_time"],
            "location": backup["location"],
            "created_at": self._time(backup["_created"]),
        }

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            return self._invalid("page", "The page must be an integer.")
        start = (page - 1) * self.page_size
        data = items[start : start + self.page_size]
        return Reply(200, {"data": data, "meta": {"current_page": page, "per_page": self.page_size, "total": len(items)}})

    # -- time ----------------------------------------------------------------------------------

    def advance(self) -> None:
        now = self.clock()
        for vm in self.vms.values():
            for action in vm["_actions"]:
                if action["state"] == "created" and action["_kind"] and now >= action["_created"] + self._sent_after():
                    action["state"] = "sent"
                    action["_updated"] = now
                if action["state"] in _IN_FLIGHT and action["_done_at"] is not None and now >= action["_done_at"]:
                    self._finish(vm, action)

    def _sent_after(self) -> float:
        return min(0.05, self.snapshot_seconds / 3)

    def _finish(self, vm: dict[str, Any], action: dict[str, Any]) -> None:
        done_at = action["_done_at"]
        kind, mode, event = action["_kind"], action["_mode"], action["_event"]
        action["_updated"] = done_at
        if kind == "snapshot":
            if mode == "unknown_state":
                action["state"] = UNKNOWN_STATE  # never finishes; the VM stays locked
            elif mode == "error":
                action["state"] = "error"
                vm["actions_lock"] = "unlocked"
            else:
                action["state"] = "success"
                if mode != "stale_after_success":
                    # ONE snapshot per VM: the new one overwrites the old one only now.
                    vm["_snapshot"] = {
                        "id": next(self._snapshot_ids),
                        "_created": action["_created"],
                        "_expires": action["_created"] + _SNAPSHOT_LIFETIME,
                        "restore_time": max(60, vm["disk"] // 1024 * 6),
                    }
                if mode != "locked_after_success":
                    vm["actions_lock"] = "unlocked"
                if event is not None:
                    event["completed_at"] = done_at
                    event["snapshot_id"] = vm["_snapshot"]["id"] if vm["_snapshot"] else None
        else:  # restore of the snapshot or of a backup
            action["state"] = "success"
            vm["state"] = "running"
            vm["actions_lock"] = "unlocked"
            if event is not None:
                event["completed_at"] = done_at
        if event is not None:
            event["state"] = action["state"]

    # -- routes --------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if path == _BASE and method == "GET":
            return Reply(200, [self._vm_wire(vm) for vm in self.vms.values()])  # a bare array, no pagination
        match = _VM.match(path)
        if not match:
            return self._route_not_found()
        try:
            vm_id = int(match.group(1))
        except ValueError:
            return self._route_not_found()
        vm = self.vms.get(vm_id)
        if vm is None:
            return Reply(404, self.error_body(404, "[VPS:2001] Virtual machine not found."))
        rest = match.group(2) or ""
        if rest == "" and method == "GET":
            return Reply(200, self._vm_wire(vm))
        if rest == "/snapshot":
            if method == "GET":
                return self._get_snapshot(vm)
            if method == "POST":
                return self._create_snapshot(vm)
            if method == "DELETE":
                return self._delete_snapshot(vm)
        if rest == "/snapshot/restore" and method == "POST":
            return self._restore(vm, source="snapshot")
        if rest == "/actions" and method == "GET":
            actions = sorted(vm["_actions"], key=lambda action: action["id"], reverse=True)  # newest first
            return self._page([self._action_wire(action) for action in actions], query)
        action_match = _ACTION.match(rest)
        if action_match and method == "GET":
            wanted = action_match.group(1)
            for action in vm["_actions"]:
                if str(action["id"]) == wanted:
                    return Reply(200, self._action_wire(action))
            return Reply(404, self.error_body(404, "[VPS:2003] Action not found."))
        if rest == "/backups" and method == "GET":
            return self._page([self._backup_wire(backup) for backup in vm["_backups"]], query)
        backup_match = _BACKUP_RESTORE.match(rest)
        if backup_match and method == "POST":
            return self._restore(vm, source="backup", backup_id=backup_match.group(1))
        return self._route_not_found()

    def _route_not_found(self) -> Reply:
        return Reply(404, self.error_body(404, "[VPS:2002] Route is not found."))

    def _invalid(self, field_name: str, problem: str) -> Reply:
        body = self.error_body(422, problem)
        body["errors"] = {field_name: [problem]}
        return Reply(422, body)

    def _get_snapshot(self, vm: dict[str, Any]) -> Reply:
        if vm["_snapshot"] is not None:
            return Reply(200, self._snapshot_wire(vm["_snapshot"]))
        # The API does not document this answer: the scenario picks one of the three forms.
        style = str(self.faults.get("no_snapshot") or "404")
        if style == "empty":
            return Reply(200, raw=b"")
        if style == "{}":
            return Reply(200, {})
        return Reply(404, self.error_body(404, "[VPS:2004] Snapshot not found."))

    def _create_snapshot(self, vm: dict[str, Any]) -> Reply:
        if vm["actions_lock"] != "unlocked":
            return self._invalid("virtualMachineId", "The virtual machine has an action in progress.")
        now = self.clock()
        mode = self.snapshot_mode(vm["id"])
        done_at = None if mode == "stuck" else now + self.snapshot_seconds
        action = self._action("vps_snapshot_create", now, done_at=done_at, kind="snapshot", mode=mode)
        event = {
            "api": self.name,
            "instance": vm["id"],
            "action_id": action["id"],
            "snapshot_id": None,
            "requested_at": now,
            "completed_at": None,
            "state": action["state"],
        }
        action["_event"] = event
        self.snapshot_events.append(event)
        vm["_actions"].append(action)
        vm["actions_lock"] = "locked"
        return self.maybe_lose(Reply(200, self._action_wire(action)))

    def _delete_snapshot(self, vm: dict[str, Any]) -> Reply:
        if vm["_snapshot"] is None:
            return Reply(404, self.error_body(404, "[VPS:2004] Snapshot not found."))
        now = self.clock()
        vm["_snapshot"] = None
        action = self._action("vps_snapshot_delete", now, state="success", done_at=now)
        vm["_actions"].append(action)
        return Reply(200, self._action_wire(action))

    def _restore(self, vm: dict[str, Any], *, source: str, backup_id: str = "") -> Reply:
        if vm["actions_lock"] != "unlocked":
            return self._invalid("virtualMachineId", "The virtual machine has an action in progress.")
        if source == "snapshot" and vm["_snapshot"] is None:
            return Reply(404, self.error_body(404, "[VPS:2004] Snapshot not found."))
        restored: Any
        if source == "backup":
            if not any(str(backup["id"]) == backup_id for backup in vm["_backups"]):
                return Reply(404, self.error_body(404, "[VPS:2005] Backup not found."))
            restored = int(backup_id)
            vm["_snapshot"] = None  # restoring a backup deletes the existing snapshot (contract)
        else:
            restored = vm["_snapshot"]["id"]
        now = self.clock()
        action = self._action(f"vps_{source}_restore", now, done_at=now + self.restore_seconds, kind="restore")
        event = {
            "api": self.name,
            "instance": vm["id"],
            "action_id": action["id"],
            "kind": source,
            "restore_id": restored,
            "requested_at": now,
            "completed_at": None,
            "state": action["state"],
        }
        action["_event"] = event
        self.restore_events.append(event)
        vm["_actions"].append(action)
        vm["actions_lock"] = "locked"
        vm["state"] = "restoring"
        return Reply(200, self._action_wire(action))

    # -- run-time changes ----------------------------------------------------------------------

    def update_instance(self, instance_id: int | str, fields: dict[str, Any]) -> None:
        """Given a VM id and wire fields (state, actions_lock, ipv4 as addresses, ...), change them now."""
        with self.lock:
            vm = self.vms[int(instance_id)]
            for key, value in fields.items():
                if key not in _VM_FIELDS or key in ("id", "created_at"):
                    raise KeyError(f"hostinger VM has no settable field {key!r}")
                vm[key] = self._addresses(value) if key in ("ipv4", "ipv6") else value
