"""Shared set-up for the backup-check integration tests: the simulator, an inventory, a receiver.

The real CLI runs as a subprocess (run_cli) against the provider simulator on 127.0.0.1, with an
inventory written in tmp_path whose hosts are the default scenario's instances.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsguard.sandbox.simulator import (
    BACKUP_CHECK_INVENTORY,
    DEFAULT_VULTR_INSTANCE,
    Simulator,
    load_scenario,
    merge_scenario,
)
from tests.fixtures.cli_fixtures import CliResult, run_cli

VULTR_ID = DEFAULT_VULTR_INSTANCE
INVENTORY = BACKUP_CHECK_INVENTORY
# Variables a developer's shell might set that would change what the CLI does.
_UNSET = ("OPSGUARD_PING_URL", "OPSGUARD_WEBHOOK_URL", "OPSGUARD_BACKUP_CHECK_LOCK_WAIT", "http_proxy", "HTTP_PROXY")


def vultr(**fields: Any) -> dict[str, Any]:
    """Given instance fields, return a scenario override of the Vultr instance of host chat."""
    return {"vultr": {"instances": [{"id": VULTR_ID, **fields}]}}


def hostinger(vm_id: int, **fields: Any) -> dict[str, Any]:
    """Given a VM id (1001 = chat2, 1002 = ia) and fields, return a scenario override of that VM."""
    return {"hostinger": {"vms": [{"id": vm_id, **fields}]}}


def combine(*overrides: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for override in overrides:
        result = merge_scenario(result, override)
    return result


@dataclass
class BackupCheckWorld:
    """A running simulator, the inventory that points at it, and a way to run the CLI."""

    sim: Simulator
    inventory: Path
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **self.sim.env(),
            "OPSGUARD_INVENTORY": str(self.inventory),
            "OPSGUARD_HTTP_RETRY_WAIT_MAX": "0.02",  # retries in milliseconds, not seconds
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        """Run `opsguard backup-check ARGS`; check that no token appears in what it printed."""
        result = run_cli("backup-check", *args, env={**self.env(), **(env or {})}, timeout=60)
        for token in (self.sim.env()["VULTR_API_KEY"], self.sim.env()["HOSTINGER_API_TOKEN"]):
            assert token not in result.output
        return result

    def methods(self) -> set[str]:
        return {entry["method"] for entry in self.sim.journal()}


def world_factories(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Yield make(overrides) -> BackupCheckWorld (the default scenario merged with overrides, started);
    stop every simulator afterwards. Test modules wrap this in their ``world_factory`` fixture."""
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    started: list[Simulator] = []
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(INVENTORY, encoding="utf-8")

    def make(overrides: dict[str, Any] | None = None) -> BackupCheckWorld:
        sim = Simulator(merge_scenario(load_scenario(), overrides or {})).start()
        started.append(sim)
        return BackupCheckWorld(sim=sim, inventory=inventory, state_dir=state_dir)

    yield make
    for sim in started:
        sim.stop()


@dataclass
class Received:
    method: str
    path: str
    body: bytes
    content_type: str


class Receiver:
    """A loopback HTTP server that records every request (health pings, webhooks) and answers 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.command, self.path, body, self.headers.get("Content-Type", ""))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def json_bodies(self) -> list[Any]:
        with self._lock:
            return [json.loads(request.body) for request in self.requests]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens (a port just released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
