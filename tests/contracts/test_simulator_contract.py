"""The simulator cannot drift from the real APIs: every answer it serves validates against JSON Schemas.

The schemas (tests/contracts/schemas/, draft 2020-12) are written from contracts/vultr.md and
contracts/hostinger.md, not from the simulator. Each test drives the simulator through every
endpoint opsguard uses, with raw HTTP, and validates each answer — success and error bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from referencing import Registry, Resource

from opsguard.sandbox.simulator import Simulator
from tests.fixtures.simulator_fixtures import HOSTINGER_CHAT2, HOSTINGER_IA, VULTR_CHAT

SCHEMAS = Path(__file__).resolve().parent / "schemas"
BASE = "https://opsguard.invalid/schemas/"
VMS = "/api/vps/v1/virtual-machines"
StartSimulator = Callable[..., Simulator]


def _load_schemas() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))}


ALL_SCHEMAS = _load_schemas()
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in ALL_SCHEMAS.values()
)


def validate(schema_name: str, body: Any) -> None:
    """Given a schema file stem and a decoded answer, raise jsonschema.ValidationError if it does not fit."""
    validator = jsonschema.Draft202012Validator(
        ALL_SCHEMAS[schema_name], registry=REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(body)


class Driver:
    """Raw HTTP against one simulated API, validating every answer and remembering which routes it used."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.validated: list[tuple[str, str, int, str]] = []  # (method, route, status, schema)

    def call(self, method: str, path: str, schema: str | None, *, status: int, route: str | None = None,
             **kwargs: Any) -> Any:  # fmt: skip
        response = self.session.request(method, f"{self.base_url}{path}", timeout=5, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        if schema is None:
            assert response.content == b""
            body = None
        else:
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            validate(schema, body)
        self.validated.append((method, route or path, status, schema or "(empty)"))
        return body

    def vultr_pages(self, path: str, schema: str, key: str, route: str, params: dict[str, str] | None = None) -> list[Any]:
        items: list[Any] = []
        cursor = ""
        for _ in range(50):
            query = dict(params or {}, per_page="100")
            if cursor:
                query["cursor"] = cursor
            body = self.call("GET", path, schema, status=200, route=route, params=query)
            items.extend(body[key])
            cursor = body["meta"]["links"]["next"]
            if not cursor:
                return items
        raise AssertionError("pagination did not end")

    def hostinger_pages(self, path: str, schema: str, route: str) -> list[Any]:
        items: list[Any] = []
        for page in range(1, 50):
            body = self.call("GET", path, schema, status=200, route=route, params={"page": str(page)})
            if not body["data"]:
                break
            items.extend(body["data"])
            if len(items) >= body["meta"]["total"]:
                break
        return items


@pytest.fixture
def wait_for() -> Iterator[Callable[[Callable[[], bool]], None]]:
    def wait(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            time.sleep(0.02)

    yield wait


# -- the schemas themselves ------------------------------------------------------------------------


def test_contract_schemas_are_valid_draft_2020_12() -> None:
    assert len(ALL_SCHEMAS) >= 20
    for name, schema in ALL_SCHEMAS.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["$id"] == f"{BASE}{name}.json", name
        jsonschema.Draft202012Validator.check_schema(schema)


def test_contract_schemas_reject_states_the_contract_does_not_know() -> None:
    snapshot = {"id": "cb676a46-66fd-4dfb-b839-443f2e6c0b60", "date_created": "2020-10-10T01:56:20+00:00",
                "description": "", "size": 0, "status": "exporting", "os_id": 1, "app_id": 0}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        validate("vultr_snapshot", snapshot)
    action = {"id": 1, "name": "x", "state": "queued", "created_at": "2025-02-27T11:54:22Z", "updated_at": "2025-02-27T11:54:22Z"}
    with pytest.raises(jsonschema.ValidationError):
        validate("hostinger_action", action)
    with pytest.raises(jsonschema.ValidationError):
        validate("hostinger_date", "2025-02-27 11:54:22")


def test_contract_simulator_unknown_state_fault_is_outside_the_contract(simulator: StartSimulator, wait_for: Any) -> None:
    # The "unknown_state" fault exists to serve what the contract does not promise: the schema must say so.
    sim = simulator({"vultr": {"snapshot_seconds": 0.02, "faults": {"snapshot": "unknown_state"}}})
    driver = Driver(sim.vultr_url, sim.env()["VULTR_API_KEY"])
    created = driver.call("POST", "/snapshots", "vultr_snapshot_answer", status=201,
                          json={"instance_id": VULTR_CHAT, "description": "opsguard:chat:x:run"})  # fmt: skip
    snapshot_id = created["snapshot"]["id"]
    wait_for(lambda: sim.snapshot_events()[0]["state"] != "pending")
    response = driver.session.get(f"{sim.vultr_url}/snapshots/{snapshot_id}", timeout=5)
    with pytest.raises(jsonschema.ValidationError):
        validate("vultr_snapshot_answer", response.json())


# -- Vultr -----------------------------------------------------------------------------------------

VULTR_ROUTES = {
    ("GET", "/instances"), ("GET", "/instances/{id}"), ("GET", "/instances/{id}/backup-schedule"),
    ("POST", "/instances/{id}/restore"), ("POST", "/snapshots"), ("GET", "/snapshots"), ("GET", "/snapshots/{id}"),
    ("DELETE", "/snapshots/{id}"), ("GET", "/backups"),
}  # fmt: skip


@pytest.mark.parametrize(
    "faults",
    [{}, {"date_style": "space", "omit_optional": True}],
    ids=["iso-dates", "space-dates-no-optional"],
)
def test_contract_vultr_every_endpoint_matches_schema(simulator: StartSimulator, wait_for: Any, faults: dict[str, Any]) -> None:
    sim = simulator({"vultr": {"page_size": 2, "snapshot_seconds": 0.05, "faults": faults,
                               "instances": [{"id": VULTR_CHAT, "backups": ["1h", "25h", "49h", "73h", "97h"]}]}})  # fmt: skip
    driver = Driver(sim.vultr_url, sim.env()["VULTR_API_KEY"])
    instance = f"/instances/{VULTR_CHAT}"

    instances = driver.vultr_pages("/instances", "vultr_instances_list", "instances", "/instances")
    assert [item["id"] for item in instances] == [VULTR_CHAT]
    driver.call("GET", instance, "vultr_instance_answer", status=200, route="/instances/{id}")
    driver.call("GET", f"{instance}/backup-schedule", "vultr_backup_schedule", status=200, route="/instances/{id}/backup-schedule")
    backups = driver.vultr_pages("/backups", "vultr_backups_list", "backups", "/backups", {"instance_id": VULTR_CHAT})
    assert len(backups) == 5

    tag = f"opsguard:chat:{VULTR_CHAT}:contract"
    created = driver.call("POST", "/snapshots", "vultr_snapshot_answer", status=201,
                          json={"instance_id": VULTR_CHAT, "description": tag})  # fmt: skip
    assert created["snapshot"]["status"] == "pending" and created["snapshot"]["size"] == 0
    snapshot_id = created["snapshot"]["id"]
    driver.call("GET", f"/snapshots/{snapshot_id}", "vultr_snapshot_answer", status=200, route="/snapshots/{id}")
    wait_for(lambda: sim.snapshot_events()[0]["state"] == "complete")
    done = driver.call("GET", f"/snapshots/{snapshot_id}", "vultr_snapshot_answer", status=200, route="/snapshots/{id}")
    assert done["snapshot"]["status"] == "complete" and done["snapshot"]["size"] > 0
    found = driver.vultr_pages("/snapshots", "vultr_snapshots_list", "snapshots", "/snapshots", {"description": tag})
    assert [item["id"] for item in found] == [snapshot_id]
    everything = driver.vultr_pages("/snapshots", "vultr_snapshots_list", "snapshots", "/snapshots")
    assert len(everything) >= 2

    driver.call("POST", f"{instance}/restore", "vultr_restore", status=202, route="/instances/{id}/restore",
                json={"snapshot_id": snapshot_id})  # fmt: skip
    driver.call("DELETE", f"/snapshots/{snapshot_id}", None, status=204, route="/snapshots/{id}")

    # error answers
    driver.call("GET", f"/snapshots/{snapshot_id}", "vultr_error", status=404, route="/snapshots/{id}")
    driver.call("GET", "/instances/00000000-0000-4000-8000-000000000000", "vultr_error", status=404, route="/instances/{id}")
    driver.call("POST", "/snapshots", "vultr_error", status=500, json={"instance_id": VULTR_CHAT, "description": "x"})  # restore locked it
    driver.session.headers["Authorization"] = "Bearer wrong"
    driver.call("GET", "/instances", "vultr_error", status=401, params={"per_page": "2"})
    driver.session.headers["Authorization"] = f"Bearer {sim.env()['VULTR_API_KEY']}"
    sim.set_fault("vultr", "rate_limit_every", 1)
    driver.call("GET", "/instances", "vultr_error", status=429)
    sim.set_fault("vultr", "rate_limit_every", None)
    sim.set_fault("vultr", "fail_first", 1)
    driver.call("GET", "/instances", "vultr_error", status=503)
    sim.set_fault("vultr", "locked_500", True)
    locked = driver.call("GET", instance, "vultr_error", status=500, route="/instances/{id}")
    assert "Server is currently locked" in locked["error"]

    assert {(method, route) for method, route, _, _ in driver.validated} == VULTR_ROUTES


# -- Hostinger -------------------------------------------------------------------------------------

HOSTINGER_ROUTES = {
    ("GET", VMS), ("GET", f"{VMS}/{{id}}"), ("GET", f"{VMS}/{{id}}/snapshot"), ("POST", f"{VMS}/{{id}}/snapshot"),
    ("DELETE", f"{VMS}/{{id}}/snapshot"), ("POST", f"{VMS}/{{id}}/snapshot/restore"), ("GET", f"{VMS}/{{id}}/actions"),
    ("GET", f"{VMS}/{{id}}/actions/{{actionId}}"), ("GET", f"{VMS}/{{id}}/backups"),
    ("POST", f"{VMS}/{{id}}/backups/{{backupId}}/restore"),
}  # fmt: skip


@pytest.mark.parametrize(
    "faults",
    [{}, {"fractional_seconds": True, "omit_optional": True}],
    ids=["plain-times", "fractional-times-no-optional"],
)
def test_contract_hostinger_every_endpoint_matches_schema(simulator: StartSimulator, wait_for: Any, faults: dict[str, Any]) -> None:
    sim = simulator({"hostinger": {"page_size": 2, "snapshot_seconds": 0.05, "restore_seconds": 0.05, "faults": faults,
                                   "vms": [{"id": HOSTINGER_IA, "ipv4": None}]}})  # fmt: skip
    driver = Driver(sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    vm = f"{VMS}/{HOSTINGER_CHAT2}"

    vms = driver.call("GET", VMS, "hostinger_vm_list", status=200)
    assert [item["id"] for item in vms] == [HOSTINGER_CHAT2, HOSTINGER_IA]
    assert vms[1]["ipv4"] is None
    driver.call("GET", vm, "hostinger_vm", status=200, route=f"{VMS}/{{id}}")
    before = driver.call("GET", f"{vm}/snapshot", "hostinger_snapshot", status=200, route=f"{VMS}/{{id}}/snapshot")
    actions = driver.hostinger_pages(f"{vm}/actions", "hostinger_actions_list", f"{VMS}/{{id}}/actions")
    assert len(actions) >= 5
    backups = driver.hostinger_pages(f"{vm}/backups", "hostinger_backups_list", f"{VMS}/{{id}}/backups")
    assert len(backups) == 2

    action = driver.call("POST", f"{vm}/snapshot", "hostinger_action", status=200, route=f"{VMS}/{{id}}/snapshot")
    action_route = f"{VMS}/{{id}}/actions/{{actionId}}"
    driver.call("GET", f"{vm}/actions/{action['id']}", "hostinger_action", status=200, route=action_route)
    locked = driver.call("GET", vm, "hostinger_vm", status=200, route=f"{VMS}/{{id}}")
    assert locked["actions_lock"] == "locked"
    wait_for(lambda: sim.snapshot_events()[0]["state"] == "success")
    final = driver.call("GET", f"{vm}/actions/{action['id']}", "hostinger_action", status=200, route=action_route)
    assert final["state"] == "success"
    after = driver.call("GET", f"{vm}/snapshot", "hostinger_snapshot", status=200, route=f"{VMS}/{{id}}/snapshot")
    assert after["id"] != before["id"]

    restore_route = f"{VMS}/{{id}}/snapshot/restore"
    driver.call("POST", f"{vm}/snapshot/restore", "hostinger_action", status=200, route=restore_route)
    driver.call("POST", f"{vm}/snapshot", "hostinger_error", status=422, route=f"{VMS}/{{id}}/snapshot")  # locked by the restore
    wait_for(lambda: sim.restore_events()[0]["state"] == "success")
    driver.call("DELETE", f"{vm}/snapshot", "hostinger_action", status=200, route=f"{VMS}/{{id}}/snapshot")
    driver.call("GET", f"{vm}/snapshot", "hostinger_error", status=404, route=f"{VMS}/{{id}}/snapshot")
    backup_route = f"{VMS}/{{id}}/backups/{{backupId}}/restore"
    driver.call("POST", f"{vm}/backups/{backups[0]['id']}/restore", "hostinger_action", status=200, route=backup_route)

    # error answers
    driver.call("GET", f"{VMS}/999999", "hostinger_error", status=404, route=f"{VMS}/{{id}}")
    driver.call("GET", f"{vm}/actions/1", "hostinger_error", status=404, route=action_route)
    driver.session.headers["Authorization"] = "Bearer wrong"
    driver.call("GET", VMS, "hostinger_error", status=401)
    driver.session.headers["Authorization"] = f"Bearer {sim.env()['HOSTINGER_API_TOKEN']}"
    sim.set_fault("hostinger", "rate_limit_every", 1)
    driver.call("GET", VMS, "hostinger_error", status=429)
    sim.set_fault("hostinger", "rate_limit_every", None)
    sim.set_fault("hostinger", "fail_first", 1)
    driver.call("GET", VMS, "hostinger_error", status=503)

    assert {(method, route) for method, route, _, _ in driver.validated} == HOSTINGER_ROUTES


@pytest.mark.parametrize("style", ["empty", "{}"])
def test_contract_hostinger_no_snapshot_answers_are_the_documented_forms(simulator: StartSimulator, style: str) -> None:
    sim = simulator({"hostinger": {"faults": {"no_snapshot": style}}})
    driver = Driver(sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    response = driver.session.get(f"{sim.hostinger_url}{VMS}/{HOSTINGER_IA}/snapshot", timeout=5)
    assert response.status_code == 200
    assert response.content == (b"" if style == "empty" else b"{}")
