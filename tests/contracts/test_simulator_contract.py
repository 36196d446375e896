"""The simulator against the providers' PUBLISHED API descriptions — what is checked, and what is not.

Checked here:
- tests/contracts/openapi/*.json are unedited excerpts of Vultr's and Hostinger's published
  OpenAPI descriptions (their headers say repository, path, commit, version and date);
- the JSON Schemas the tests use are derived from those excerpts (tests/contracts/derived_schemas.py)
  plus a small overlay where the descriptions are silent or wrong (tests/contracts/overlay.py,
  each entry with its reason and source); they allow fields the descriptions do not list;
- every answer the simulator gives on every route it serves — success and error bodies — validates
  against the derived schema of that operation and status, and a success status the description
  does not give for that operation fails the test;
- every success answer carries every property the description lists for its objects (neither
  description marks any response field ``required``, so this is the check that the simulator
  serves full objects, as the real APIs do).

Not checked, and not checkable without the real APIs: that the real APIs behave as their
descriptions say. Where the descriptions are silent (error bodies, "no snapshot", a locked Vultr
instance, Hostinger's 422 while an action runs) the simulator follows the clients' assumptions,
which docs/providers.md lists with their sources, or marks as unsourced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import requests

from opsguard.sandbox.simulator import Simulator
from tests.contracts.derived_schemas import (
    amended_excerpt,
    missing_published_properties,
    response_schema,
    to_json_schema,
    validate,
)
from tests.contracts.excerpts import HEADER, HOSTINGER_VMS, OPERATIONS, load_excerpt, make_excerpt
from tests.contracts.overlay import AMENDMENTS, NOT_IN_ANSWERS
from tests.fixtures.simulator_fixtures import HOSTINGER_CHAT2, HOSTINGER_IA, VULTR_CHAT

StartSimulator = Callable[..., Simulator]
VM = f"{HOSTINGER_VMS}/{{virtualMachineId}}"


class Driver:
    """Raw HTTP against one simulated API, validating every answer against the published description."""

    def __init__(self, api: str, base_url: str, token: str) -> None:
        self.api = api
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.validated: list[tuple[str, str, int]] = []  # (method, route, status)
        self.missing: list[str] = []  # "METHOD route: $.path" of every listed property an answer lacked

    def call(self, method: str, path: str, *, status: int, route: str | None = None, **kwargs: Any) -> Any:
        """Given a request and the status expected, return the decoded answer after validating it.

        ``route`` is the operation's path as the description spells it (default: ``path``).
        """
        route = route or path
        response = self.session.request(method, f"{self.base_url}{path}", timeout=5, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        schema = response_schema(self.api, method, route, status)
        if schema is None:
            assert response.content == b""
            body = None
        else:
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            validate(schema, body)
            if status < 300:
                self.missing += [f"{method} {route}: {where}" for where in missing_published_properties(schema, body)]
        self.validated.append((method, route, status))
        return body

    def vultr_pages(self, path: str, key: str, params: dict[str, str] | None = None) -> list[Any]:
        items: list[Any] = []
        cursor = ""
        for _ in range(50):
            query = dict(params or {}, per_page="100")
            if cursor:
                query["cursor"] = cursor
            body = self.call("GET", path, status=200, params=query)
            items.extend(body[key])
            cursor = body["meta"]["links"]["next"]
            if not cursor:
                return items
        raise AssertionError("pagination did not end")

    def hostinger_pages(self, path: str, route: str) -> list[Any]:
        items: list[Any] = []
        for page in range(1, 50):
            body = self.call("GET", path, status=200, route=route, params={"page": str(page)})
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


def _forbids_extra_fields(schema: Any) -> bool:
    if isinstance(schema, dict):
        return schema.get("additionalProperties") is False or any(
            _forbids_extra_fields(value) for value in schema.values()
        )
    if isinstance(schema, list):
        return any(_forbids_extra_fields(value) for value in schema)
    return False


def _routes(api: str) -> set[tuple[str, str]]:
    return {(method.upper(), path) for method, path in OPERATIONS[api]}


# -- the excerpts, the overlay and the derived schemas -----------------------------------------------


@pytest.mark.parametrize("api", sorted(OPERATIONS))
def test_contract_excerpts_are_exactly_the_cut_with_provenance(api: str) -> None:
    excerpt = load_excerpt(api)
    header = excerpt[HEADER]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", header["source_repository"]), header
    assert header["source_path"] and re.fullmatch(r"[0-9a-f]{40}", header["source_commit"]), header
    assert header["info_version"] == excerpt["info"]["version"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", header["taken_on"]) and re.fullmatch(
        r"\d{4}-\d{2}-\d{2}", header["source_file_last_changed"]
    )
    # Cutting the excerpt again gives it back unchanged: nothing was added or edited by hand
    # (hand-written knowledge belongs in tests/contracts/overlay.py).
    assert make_excerpt(excerpt, api, header) == excerpt


def test_contract_overlay_amendments_fill_only_what_the_excerpts_lack() -> None:
    # An amendment whose target the description now has is stale: re-read the new text, drop it.
    for amendment in AMENDMENTS:
        node: Any = load_excerpt(amendment.api)
        *parents, last = amendment.pointer.strip("/").split("/")
        for part in parents:
            assert part in node, (amendment.pointer, "its parent is not in the excerpt")
            node = node[part]
        assert last not in node, (amendment.pointer, "the published description has it now")
        assert len(amendment.why) > 40, amendment.pointer
    for component, properties in NOT_IN_ANSWERS.items():
        listed = {
            name
            for api in OPERATIONS
            for key, schema in amended_excerpt(api)["components"].get("schemas", {}).items()
            if schema.get("title", key) == component
            for name in schema.get("properties", {})
        }
        assert set(properties) <= listed, (component, "exempts a property the description does not list")


@pytest.mark.parametrize("api", sorted(OPERATIONS))
def test_contract_published_examples_validate_against_derived_schemas(api: str) -> None:
    document = amended_excerpt(api)
    checked = 0
    for method, path in OPERATIONS[api]:
        for status, answer in document["paths"][path][method]["responses"].items():
            schema = response_schema(api, method, path, int(status))
            if schema is None:
                continue
            jsonschema.Draft202012Validator.check_schema(schema)
            for example in answer.get("content", {}).get("application/json", {}).get("examples", {}).values():
                validate(schema, example["value"])
                assert missing_published_properties(schema, example["value"]) == [], (method, path)
                checked += 1
    # Vultr's operations carry whole-answer examples; Hostinger's carry per-property examples only.
    assert checked >= (8 if api == "vultr" else 0)


def test_contract_derived_schemas_accept_fields_the_descriptions_do_not_list() -> None:
    for api in OPERATIONS:
        for method, path in OPERATIONS[api]:
            for status in amended_excerpt(api)["paths"][path][method]["responses"]:
                assert not _forbids_extra_fields(response_schema(api, method, path, int(status))), (api, method, path)
    instance = {"id": VULTR_CHAT, "status": "active", "a_field_vultr_adds_later": {"x": 1}}
    validate(response_schema("vultr", "get", "/instances/{instance-id}", 200), {"instance": instance})
    vm = {"id": HOSTINGER_CHAT2, "state": "running", "a_field_hostinger_adds_later": [1]}
    validate(response_schema("hostinger", "get", VM, 200), vm)


def test_contract_derived_schemas_reject_values_the_descriptions_do_not_list() -> None:
    snapshot = {"id": "cb676a46-66fd-4dfb-b839-443f2e6c0b60", "status": "exporting"}
    with pytest.raises(jsonschema.ValidationError, match="exporting"):
        validate(response_schema("vultr", "get", "/snapshots/{snapshot-id}", 200), {"snapshot": snapshot})
    action = {"id": 1, "name": "x", "state": "queued", "created_at": "2025-02-27T11:54:22Z"}
    with pytest.raises(jsonschema.ValidationError, match="queued"):
        validate(response_schema("hostinger", "get", f"{VM}/actions/{{actionId}}", 200), action)
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        validate(
            response_schema("hostinger", "get", f"{VM}/snapshot", 200), {"id": 1, "created_at": "2025-02-27 11:54:22"}
        )
    with pytest.raises(jsonschema.ValidationError, match="'error' is a required property"):
        validate(response_schema("vultr", "get", "/instances", 401), {"message": "Invalid API token."})
    with pytest.raises(KeyError, match="does not describe a 200 answer"):
        response_schema("vultr", "post", "/snapshots", 200)  # the description says 201


def test_contract_converter_resolves_references_and_nullable() -> None:
    document = {
        "components": {
            "schemas": {"Thing": {"type": "object", "properties": {"n": {"type": "integer", "nullable": True}}}}
        }
    }
    converted = to_json_schema(
        {
            "type": "object",
            "properties": {"thing": {"oneOf": [{"$ref": "#/components/schemas/Thing"}], "nullable": True}},
        },
        document,
    )
    validate(converted, {"thing": None})
    validate(converted, {"thing": {"n": None}})
    with pytest.raises(jsonschema.ValidationError):
        validate(converted, {"thing": {"n": "1"}})
    assert missing_published_properties(converted, {"thing": {}}) == ["$.thing.n"]


# -- Vultr -----------------------------------------------------------------------------------------


def _vultr_success_walk(sim: Simulator, driver: Driver, wait_for: Any) -> str:
    """Given a simulator and a driver, call every Vultr route with a success answer; return the snapshot id made."""
    instance = f"/instances/{VULTR_CHAT}"
    instances = driver.vultr_pages("/instances", "instances")
    assert [item["id"] for item in instances] == [VULTR_CHAT]
    driver.call("GET", instance, status=200, route="/instances/{instance-id}")
    driver.call("GET", f"{instance}/backup-schedule", status=200, route="/instances/{instance-id}/backup-schedule")
    backups = driver.vultr_pages("/backups", "backups", {"instance_id": VULTR_CHAT})
    assert len(backups) == 5

    tag = f"opsguard:chat:{VULTR_CHAT}:contract"
    created = driver.call("POST", "/snapshots", status=201, json={"instance_id": VULTR_CHAT, "description": tag})
    assert created["snapshot"]["status"] == "pending" and created["snapshot"]["size"] == 0
    snapshot_id = str(created["snapshot"]["id"])
    driver.call("GET", f"/snapshots/{snapshot_id}", status=200, route="/snapshots/{snapshot-id}")
    wait_for(lambda: sim.snapshot_events()[0]["state"] == "complete")
    done = driver.call("GET", f"/snapshots/{snapshot_id}", status=200, route="/snapshots/{snapshot-id}")
    assert done["snapshot"]["status"] == "complete" and done["snapshot"]["size"] > 0
    found = driver.vultr_pages("/snapshots", "snapshots", {"description": tag})
    assert [item["id"] for item in found] == [snapshot_id]
    everything = driver.vultr_pages("/snapshots", "snapshots")
    assert len(everything) >= 2
    driver.call(
        "POST",
        f"{instance}/restore",
        status=202,
        route="/instances/{instance-id}/restore",
        json={"snapshot_id": snapshot_id},
    )
    return snapshot_id


@pytest.mark.parametrize(
    "faults",
    [{}, {"date_style": "space", "omit_optional": True}],
    ids=["iso-dates", "space-dates-no-optional"],
)
def test_contract_vultr_every_endpoint_matches_published_schema(
    simulator: StartSimulator, wait_for: Any, faults: dict[str, Any]
) -> None:
    sim = simulator({"vultr": {"page_size": 2, "snapshot_seconds": 0.05, "faults": faults,
                               "instances": [{"id": VULTR_CHAT, "backups": ["1h", "25h", "49h", "73h", "97h"]}]}})  # fmt: skip
    driver = Driver("vultr", sim.vultr_url, sim.env()["VULTR_API_KEY"])
    instance = f"/instances/{VULTR_CHAT}"
    snapshot_id = _vultr_success_walk(sim, driver, wait_for)
    driver.call("DELETE", f"/snapshots/{snapshot_id}", status=204, route="/snapshots/{snapshot-id}")

    # error answers
    driver.call("GET", f"/snapshots/{snapshot_id}", status=404, route="/snapshots/{snapshot-id}")
    driver.call("GET", "/instances/00000000-0000-4000-8000-000000000000", status=404, route="/instances/{instance-id}")
    driver.call(
        "POST", "/snapshots", status=500, json={"instance_id": VULTR_CHAT, "description": "x"}
    )  # the restore locked it
    driver.session.headers["Authorization"] = "Bearer wrong"
    driver.call("GET", "/instances", status=401, params={"per_page": "2"})
    driver.session.headers["Authorization"] = f"Bearer {sim.env()['VULTR_API_KEY']}"
    sim.set_fault("vultr", "rate_limit_every", 1)
    driver.call("GET", "/instances", status=429)
    sim.set_fault("vultr", "rate_limit_every", None)
    sim.set_fault("vultr", "fail_first", 1)
    driver.call("GET", "/instances", status=503)
    sim.set_fault("vultr", "locked_500", True)
    locked = driver.call("GET", instance, status=500, route="/instances/{instance-id}")
    assert "Server is currently locked" in locked["error"]

    assert {(method, route) for method, route, _ in driver.validated} == _routes("vultr")


def test_contract_vultr_success_answers_carry_every_published_property(
    simulator: StartSimulator, wait_for: Any
) -> None:
    sim = simulator(
        {
            "vultr": {
                "snapshot_seconds": 0.05,
                "instances": [{"id": VULTR_CHAT, "backups": ["1h", "25h", "49h", "73h", "97h"]}],
            }
        }
    )
    driver = Driver("vultr", sim.vultr_url, sim.env()["VULTR_API_KEY"])
    _vultr_success_walk(sim, driver, wait_for)
    assert driver.missing == []
    assert {(method, route) for method, route, _ in driver.validated} == _routes("vultr") - {
        ("DELETE", "/snapshots/{snapshot-id}")
    }


def test_contract_simulator_unknown_state_fault_is_outside_the_published_description(
    simulator: StartSimulator, wait_for: Any
) -> None:
    # The "unknown_state" fault exists to serve what the description does not promise: the schema must say so.
    sim = simulator({"vultr": {"snapshot_seconds": 0.02, "faults": {"snapshot": "unknown_state"}}})
    driver = Driver("vultr", sim.vultr_url, sim.env()["VULTR_API_KEY"])
    created = driver.call(
        "POST", "/snapshots", status=201, json={"instance_id": VULTR_CHAT, "description": "opsguard:chat:x:run"}
    )
    wait_for(lambda: sim.snapshot_events()[0]["state"] != "pending")
    response = driver.session.get(f"{sim.vultr_url}/snapshots/{created['snapshot']['id']}", timeout=5)
    with pytest.raises(jsonschema.ValidationError):
        validate(response_schema("vultr", "get", "/snapshots/{snapshot-id}", 200), response.json())


# -- Hostinger -------------------------------------------------------------------------------------


def _hostinger_success_walk(sim: Simulator, driver: Driver, wait_for: Any) -> list[Any]:
    """Given a simulator and a driver, call every Hostinger route with a success answer; return chat2's backups."""
    vm = f"{HOSTINGER_VMS}/{HOSTINGER_CHAT2}"
    vms = driver.call("GET", HOSTINGER_VMS, status=200)
    assert [item["id"] for item in vms] == [HOSTINGER_CHAT2, HOSTINGER_IA]
    assert vms[1]["ipv4"] is None
    driver.call("GET", vm, status=200, route=VM)
    before = driver.call("GET", f"{vm}/snapshot", status=200, route=f"{VM}/snapshot")
    actions = driver.hostinger_pages(f"{vm}/actions", f"{VM}/actions")
    assert len(actions) >= 5
    backups = driver.hostinger_pages(f"{vm}/backups", f"{VM}/backups")
    assert len(backups) == 2

    action = driver.call("POST", f"{vm}/snapshot", status=200, route=f"{VM}/snapshot")
    action_route = f"{VM}/actions/{{actionId}}"
    driver.call("GET", f"{vm}/actions/{action['id']}", status=200, route=action_route)
    locked = driver.call("GET", vm, status=200, route=VM)
    assert locked["actions_lock"] == "locked"
    wait_for(lambda: sim.snapshot_events()[0]["state"] == "success")
    final = driver.call("GET", f"{vm}/actions/{action['id']}", status=200, route=action_route)
    assert final["state"] == "success"
    after = driver.call("GET", f"{vm}/snapshot", status=200, route=f"{VM}/snapshot")
    assert after["id"] != before["id"]
    driver.call("POST", f"{vm}/snapshot/restore", status=200, route=f"{VM}/snapshot/restore")
    return backups


@pytest.mark.parametrize(
    "faults",
    [{}, {"fractional_seconds": True, "omit_optional": True}],
    ids=["plain-times", "fractional-times-no-optional"],
)
def test_contract_hostinger_every_endpoint_matches_published_schema(
    simulator: StartSimulator, wait_for: Any, faults: dict[str, Any]
) -> None:
    sim = simulator({"hostinger": {"page_size": 2, "snapshot_seconds": 0.05, "restore_seconds": 0.05, "faults": faults,
                                   "vms": [{"id": HOSTINGER_IA, "ipv4": None}]}})  # fmt: skip
    driver = Driver("hostinger", sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    vm = f"{HOSTINGER_VMS}/{HOSTINGER_CHAT2}"
    backups = _hostinger_success_walk(sim, driver, wait_for)
    driver.call("POST", f"{vm}/snapshot", status=422, route=f"{VM}/snapshot")  # locked by the restore
    wait_for(lambda: sim.restore_events()[0]["state"] == "success")
    driver.call("DELETE", f"{vm}/snapshot", status=200, route=f"{VM}/snapshot")
    driver.call("GET", f"{vm}/snapshot", status=404, route=f"{VM}/snapshot")
    backup_route = f"{VM}/backups/{{backupId}}/restore"
    driver.call("POST", f"{vm}/backups/{backups[0]['id']}/restore", status=200, route=backup_route)

    # error answers
    driver.call("GET", f"{HOSTINGER_VMS}/999999", status=404, route=VM)
    driver.call("GET", f"{vm}/actions/1", status=404, route=f"{VM}/actions/{{actionId}}")
    driver.session.headers["Authorization"] = "Bearer wrong"
    driver.call("GET", HOSTINGER_VMS, status=401)
    driver.session.headers["Authorization"] = f"Bearer {sim.env()['HOSTINGER_API_TOKEN']}"
    sim.set_fault("hostinger", "rate_limit_every", 1)
    driver.call("GET", HOSTINGER_VMS, status=429)
    sim.set_fault("hostinger", "rate_limit_every", None)
    sim.set_fault("hostinger", "fail_first", 1)
    driver.call("GET", HOSTINGER_VMS, status=503)

    assert {(method, route) for method, route, _ in driver.validated} == _routes("hostinger")


def test_contract_hostinger_success_answers_carry_every_published_property(
    simulator: StartSimulator, wait_for: Any
) -> None:
    sim = simulator({"hostinger": {"snapshot_seconds": 0.05, "restore_seconds": 0.05,
                                   "vms": [{"id": HOSTINGER_IA, "ipv4": None}]}})  # fmt: skip
    driver = Driver("hostinger", sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    _hostinger_success_walk(sim, driver, wait_for)
    assert driver.missing == []
    simulator_only = {("DELETE", f"{VM}/snapshot"), ("POST", f"{VM}/backups/{{backupId}}/restore")}
    assert {(method, route) for method, route, _ in driver.validated} == _routes("hostinger") - simulator_only


@pytest.mark.parametrize("style", ["empty", "{}"])
def test_contract_hostinger_no_snapshot_answers_are_the_undocumented_forms_the_client_accepts(
    simulator: StartSimulator, style: str
) -> None:
    # The description gives no answer for a VM without a snapshot (tests/contracts/overlay.py,
    # UNDOCUMENTED_ANSWERS); the default 404 is validated in the every-endpoint test above.
    sim = simulator({"hostinger": {"faults": {"no_snapshot": style}}})
    driver = Driver("hostinger", sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    response = driver.session.get(f"{sim.hostinger_url}{HOSTINGER_VMS}/{HOSTINGER_IA}/snapshot", timeout=5)
    assert response.status_code == 200
    assert response.content == (b"" if style == "empty" else b"{}")


def test_contract_simulator_scenario_and_update_instance_set_any_published_field(simulator: StartSimulator) -> None:
    sim = simulator(
        {
            "vultr": {
                "instances": [{"id": VULTR_CHAT, "region": "fra", "tags": ["web"], "v6_main_ip": "2001:db8:1:2::5"}]
            },
            "hostinger": {"vms": [{"id": HOSTINGER_IA, "bandwidth": 1024, "template": {"id": 7, "name": "Debian 12"}}]},
        }
    )
    sim.update_instance("vultr", VULTR_CHAT, ram=16384)
    sim.update_instance("hostinger", HOSTINGER_IA, ns1="9.9.9.9")
    with pytest.raises(KeyError):
        sim.update_instance("vultr", VULTR_CHAT, date_created="2020-01-01T00:00:00+00:00")  # from the scenario's age
    vultr = Driver("vultr", sim.vultr_url, sim.env()["VULTR_API_KEY"])
    instance = vultr.call("GET", f"/instances/{VULTR_CHAT}", status=200, route="/instances/{instance-id}")["instance"]
    assert (instance["region"], instance["tags"], instance["ram"]) == ("fra", ["web"], 16384)
    assert (instance["v6_network"], instance["v6_network_size"]) == ("2001:db8:1:2::", 64)
    hostinger = Driver("hostinger", sim.hostinger_url, sim.env()["HOSTINGER_API_TOKEN"])
    vm = hostinger.call("GET", f"{HOSTINGER_VMS}/{HOSTINGER_IA}", status=200, route=VM)
    assert (vm["bandwidth"], vm["ns1"]) == (1024, "9.9.9.9")
    assert vm["template"] == {"description": "Debian 12", "documentation": None, "id": 7, "name": "Debian 12"}
    assert vultr.missing == [] and hostinger.missing == []
