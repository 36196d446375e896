"""The provider simulator: one threaded HTTP server on 127.0.0.1 serving fake Vultr AND Hostinger APIs.

Usage (tests, the sandbox, `python -m opsguard.sandbox serve --scenario FILE`)::

    with Simulator(load_scenario()) as sim:          # or sim.start() ... sim.stop()
        os.environ.update(sim.env())                  # VULTR_API_URL/KEY, HOSTINGER_API_URL/TOKEN
        ...
        sim.journal()           # every request: time, api, method, path, query, body, status
        sim.snapshot_events()   # every snapshot: requested_at, completed_at, state
        sim.set_fault("vultr", "snapshot", "stuck")
        sim.update_instance("hostinger", 1001, actions_lock="locked")

URLs: ``sim.vultr_url`` = ``http://127.0.0.1:PORT/vultr/v2``, ``sim.hostinger_url`` =
``http://127.0.0.1:PORT/hostinger``. Both APIs follow the providers' published OpenAPI descriptions, and
docs/providers.md where those are silent (tests/contracts/ validates every answer against JSON Schemas
derived from vendored excerpts of the descriptions, and checks that objects carry every listed field).

Scenario format (a dict, or a JSON file; opsguard/sandbox/scenarios/default.json is the example).
Ages are durations relative to the simulator's start ("3h", "9d", or seconds as a number)::

    {
      "vultr": {
        "token": "sim-vultr-token",          # the bearer token the fake accepts
        "page_size": 2,                      # max items per page (cursor pages)
        "snapshot_seconds": 0.3,             # pending -> complete after this many seconds (float)
        "restore_seconds": 0.3,
        "faults": {},                        # see the knobs below
        "instances": [{
          "id": "<uuid>", "label": "chat", "hostname": "...", "main_ip": "127.0.0.2", "v6_main_ip": "",
          "status": "active", "power_status": "running", "server_status": "ok",
          "disk": 160, "os_id": 1743, "app_id": 0, "features": ["auto_backups"], "created": "400d",
          # any other published instance field (os, ram, vcpu_count, region, plan, tags, ...) may be set too
          "backup_schedule": {"enabled": true, "type": "daily", "hour": 3},   # "enabled": null = field left out
          "backups": ["5h", "29h"]            # or [{"age": "5h", "size": 1234, "status": "complete"}]
          "snapshots": [{"description": "manual", "age": "30d"}]              # pre-existing, optional
        }]
      },
      "hostinger": {
        "token": "sim-hostinger-token", "page_size": 2, "snapshot_seconds": 0.3, "restore_seconds": 0.3,
        "faults": {},
        "vms": [{
          "id": 1001, "hostname": "...", "ipv4": ["127.0.0.3"] (or null), "ipv6": [],
          "state": "running", "actions_lock": "unlocked", "plan": "KVM 4", "cpus": 4, "memory": 16384,
          "disk": 204800, "created": "300d",     # and any other published VM field (bandwidth, ns1, template, ...)
          "snapshot": {"created": "12d", "expires": "8d"},   # the ONE existing snapshot; omit for none
          "backups": ["2d", "9d"],            # or [{"age": "2d", "size": <KB>}]; served in this order
          "history_actions": 5                # old finished actions, so the actions list has pages
        }]
      }
    }

Fault knobs (``faults`` in the scenario, or ``sim.set_fault(api, name, value)`` at run time;
None removes one). ``snapshot`` and ``locked_500`` also accept {"<instance id>": value}:

- ``snapshot``: "ok" | "stuck" | "error" | "zero_size" (Vultr) | "untagged" (Vultr) |
  "stale_after_success" (Hostinger) | "locked_after_success" (Hostinger) | "unknown_state";
- ``fail_first``: N — the next N requests answer ``fail_status`` (default 503); a 429 carries
  ``Retry-After: <retry_after>`` when ``retry_after`` is set;
- ``rate_limit_every``: K — every Kth request answers 429 with ``Retry-After: <retry_after>`` (default "1");
- ``fault_methods``: methods the two knobs above apply to (default ["GET"]);
- ``latency``: seconds to wait before answering any request;
- ``post_lost``: "drop" | "5xx" — the snapshot create POST creates the snapshot, then the
  connection is closed without an answer / a 502 is sent, after ``post_lost_delay`` seconds;
- ``reject_token``: true — every request answers 401;
- ``locked_500`` (Vultr): true — instance GET, snapshot POST and restore answer 500
  "... Server is currently locked" (a Vultr instance with server_status "locked" does so for POSTs);
- ``date_style`` (Vultr): "iso" (default, "2020-10-10T01:56:20+00:00") | "space" ("2020-07-28 00:00:00");
- ``fractional_seconds`` (Hostinger): true — timestamps like "2025-02-27T11:54:22.123456Z";
- ``omit_optional``: true — leave out optional fields (Vultr compressed_size, Hostinger restore_time);
- ``no_snapshot`` (Hostinger): how "no snapshot" is answered: "404" (default) | "empty" | "{}".
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opsguard.sandbox.fake_common import FakeApi, Reply
from opsguard.sandbox.fake_hostinger import FakeHostinger
from opsguard.sandbox.fake_vultr import FakeVultr

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "default.json"


# The default scenario's instances as inventory hosts with a backup policy: what backup-check's tests and
# benchmark check (chat on Vultr, chat2 and ia on Hostinger, as the runbook's three hosts).
DEFAULT_VULTR_INSTANCE = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"
BACKUP_CHECK_INVENTORY = f"""
[hosts.chat]
address = "127.0.0.2"
provider = "vultr"
instance = "{DEFAULT_VULTR_INSTANCE}"
[hosts.chat.backups]
schedule = "daily"
max_age = "26h"

[hosts.chat2]
address = "127.0.0.3"
provider = "hostinger"
instance = 1001
[hosts.chat2.backups]
schedule = "weekly"
max_age = "8d"

[hosts.ia]
address = "127.0.0.4"
provider = "hostinger"
instance = 1002
[hosts.ia.backups]
schedule = "weekly"
max_age = "8d"
"""


def load_scenario(path: str | Path | None = None) -> dict[str, Any]:
    """Given a scenario JSON path (default: the shipped default.json), return the scenario dict."""
    source = Path(path) if path is not None else DEFAULT_SCENARIO
    with source.open(encoding="utf-8") as handle:
        scenario: dict[str, Any] = json.load(handle)
    return scenario


def merge_scenario(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Given a scenario and overrides, return a deep merge: dicts merge key by key, anything else replaces.

    Lists replace as a whole, except ``instances`` / ``vms`` lists of dicts, which merge item by
    item on ``id`` (an override item with a new id is appended).
    """
    result = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_scenario(result[key], value)
        elif key in ("instances", "vms") and isinstance(value, list) and isinstance(result.get(key), list):
            merged = {str(item.get("id")): item for item in result[key]}
            for item in value:
                identifier = str(item.get("id"))
                merged[identifier] = merge_scenario(merged[identifier], item) if identifier in merged else copy.deepcopy(item)
            result[key] = list(merged.values())
        else:
            result[key] = copy.deepcopy(value)
    return result


class Simulator:
    """A running (after start()) fake of both provider APIs on 127.0.0.1, with journal and fault knobs."""

    def __init__(
        self,
        scenario: dict[str, Any] | str | Path | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        journal_path: str | Path | None = None,
    ) -> None:
        if scenario is None or isinstance(scenario, (str, Path)):
            scenario = load_scenario(scenario)
        self.scenario = copy.deepcopy(scenario)
        self._lock = threading.RLock()
        self._apis: dict[str, FakeApi] = {
            "vultr": FakeVultr(self.scenario.get("vultr") or {}, self._lock),
            "hostinger": FakeHostinger(self.scenario.get("hostinger") or {}, self._lock),
        }
        self._host = host
        self._port = port
        self._journal: list[dict[str, Any]] = []
        self._journal_path = Path(journal_path) if journal_path else None
        self._journal_file: Any = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Start serving on an ephemeral port (or the one given); return self."""
        if self._server is not None:
            return self
        handler = type("SimulatorHandler", (_Handler,), {"simulator": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        if self._journal_path is not None:
            self._journal_path.parent.mkdir(parents=True, exist_ok=True)
            self._journal_file = self._journal_path.open("a", encoding="utf-8")
        # A short poll interval so stop() (server.shutdown) returns quickly in tests.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="opsguard-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection and the journal file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._journal_file is not None:
                self._journal_file.close()
                self._journal_file = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the simulator listens on (after start())."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def vultr_url(self) -> str:
        return f"{self.url}{FakeVultr.prefix}"

    @property
    def hostinger_url(self) -> str:
        return f"{self.url}{FakeHostinger.prefix}"

    def env(self) -> dict[str, str]:
        """Return the environment that points opsguard at this simulator with the scenario's tokens."""
        return {
            "VULTR_API_URL": self.vultr_url,
            "VULTR_API_KEY": self._apis["vultr"].token,
            "HOSTINGER_API_URL": self.hostinger_url,
            "HOSTINGER_API_TOKEN": self._apis["hostinger"].token,
        }

    # -- observation ---------------------------------------------------------------------------

    def journal(self) -> list[dict[str, Any]]:
        """Return a copy of every request served so far: time, api, method, path, query, body, status."""
        with self._lock:
            return copy.deepcopy(self._journal)

    def snapshot_events(self) -> list[dict[str, Any]]:
        """Return every snapshot requested: api, instance, snapshot_id/action_id, requested_at, completed_at, state."""
        return self._events("snapshot_events")

    def restore_events(self) -> list[dict[str, Any]]:
        """Return every restore requested: api, instance, restore_id (and action_id), requested_at, completed_at, state."""
        return self._events("restore_events")

    def _events(self, attribute: str) -> list[dict[str, Any]]:
        with self._lock:
            events = []
            for api in self._apis.values():
                api.advance()  # so a completion that is due shows without another request
                for event in getattr(api, attribute):
                    events.append({key: value for key, value in event.items() if not key.startswith("_")})
            return sorted(events, key=lambda event: event["requested_at"])

    def instance(self, api: str, instance_id: str | int) -> dict[str, Any]:
        """Given an API and instance id, return a copy of the simulator's record of it (wire fields and internals)."""
        fake = self._api(api)
        with self._lock:
            fake.advance()
            if isinstance(fake, FakeVultr):
                return copy.deepcopy(fake.instances[str(instance_id)])
            assert isinstance(fake, FakeHostinger)
            return copy.deepcopy(fake.vms[int(instance_id)])

    # -- run-time control ----------------------------------------------------------------------

    def set_fault(self, api: str, name: str, value: Any) -> None:
        """Given an API ("vultr" | "hostinger"), a fault knob and its value (None clears it), set it now."""
        self._api(api).set_fault(name, value)

    def update_instance(self, api: str, instance_id: str | int, **fields: Any) -> None:
        """Given an API, an instance id and wire fields, change the instance now (e.g. server_status="locked")."""
        fake = self._api(api)
        assert isinstance(fake, (FakeVultr, FakeHostinger))
        fake.update_instance(instance_id, fields)  # type: ignore[arg-type]

    def _api(self, api: str) -> FakeApi:
        try:
            return self._apis[api]
        except KeyError:
            raise ValueError(f"unknown api {api!r} (vultr or hostinger)") from None

    # -- used by the handler -------------------------------------------------------------------

    def _dispatch(self, method: str, target: str, body: Any, authorization: str | None) -> tuple[str, str, dict[str, str], Reply]:
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        for fake in self._apis.values():
            if split.path == fake.prefix or split.path.startswith(fake.prefix + "/"):
                path = split.path[len(fake.prefix) :] or "/"
                latency = float(fake.faults.get("latency") or 0.0)
                if latency > 0:
                    time.sleep(latency)
                try:
                    reply = fake.handle(method, path, query, body, authorization)
                except Exception as error:  # a simulator bug: answer it visibly instead of dropping the connection
                    traceback.print_exc()
                    reply = Reply(500, fake.error_body(500, f"simulator error: {type(error).__name__}: {error}"))
                return fake.name, path, query, reply
        return "", split.path, query, Reply(404, {"error": "no such API", "status": 404})

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._journal.append(entry)
            if self._journal_file is not None:
                self._journal_file.write(json.dumps(entry, sort_keys=True) + "\n")
                self._journal_file.flush()

    def _track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into Simulator._dispatch calls. Never logs headers (they hold the token)."""

    simulator: Simulator
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    server_version = "opsguard-simulator"
    sys_version = ""

    # Buffer the answer so headers and body leave in one write, and disable Nagle: otherwise each
    # answer waits ~40 ms for a delayed ACK (handle_one_request flushes after each request).
    wbufsize = 64 * 1024

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.simulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.simulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the journal records requests; stderr stays quiet

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        api, path, query, reply = self.simulator._dispatch(method, self.path, body, self.headers.get("Authorization"))
        if reply.delay > 0:
            time.sleep(reply.delay)
        entry = {
            "time": time.time(),
            "api": api,
            "method": method,
            "path": path,
            "query": query,
            "body": body,
            "status": None if reply.drop else reply.status,
        }
        self.simulator._record(entry)
        if reply.drop:
            # The answer is lost: close the connection without writing a byte.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.raw is not None:
            payload = reply.raw
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if payload or reply.raw is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and method != "HEAD":
            self.wfile.write(payload)
