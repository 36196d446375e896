"""`opsguard sandbox up|down|status`: the provider simulator and three loopback sshd hosts, in the background.

``up`` writes into the sandbox dir (default ``$OPSGUARD_SANDBOX_DIR`` or ``/tmp/opsguard-sandbox``):
``inventory.toml`` (the three hosts on 127.0.0.2-4 with their simulated instance ids), ``sandbox.env``
(the simulator URLs and its fake tokens, to ``source``), ``scenario.json`` and ``state.json`` (the
PIDs ``down`` stops). Nothing here ever talks to a real provider: the URLs point at 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsguard.errors import ConfigError, OutcomeUnknown

# The sandbox inventory's hosts and their simulated instance ids (scenarios/default.json).
SANDBOX_HOSTS: dict[str, tuple[str, str | int | None]] = {
    "chat": ("vultr", "cb676a46-66fd-4dfb-b839-443f2e6c0b60"),
    "chat2": ("hostinger", 1001),
    "ia": ("hostinger", 1002),
}


def default_dir() -> Path:
    """Return the sandbox directory: $OPSGUARD_SANDBOX_DIR, else <tmp>/opsguard-sandbox."""
    return Path(os.environ.get("OPSGUARD_SANDBOX_DIR") or Path(tempfile.gettempdir()) / "opsguard-sandbox")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OutcomeUnknown(f"sandbox: the simulator exited at start ({log_path.read_text(errors='replace').strip()[-300:]})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise OutcomeUnknown(f"sandbox: the simulator did not listen on 127.0.0.1:{port} within {within:g}s (see {log_path})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Sandbox:
    """The sandbox in one directory."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = Path(base_dir or default_dir())
        self.state_path = self.base_dir / "state.json"
        self.inventory_path = self.base_dir / "inventory.toml"
        self.env_path = self.base_dir / "sandbox.env"
        self.scenario_path = self.base_dir / "scenario.json"

    def state(self) -> dict[str, Any] | None:
        """Return what ``up`` recorded, or None if the sandbox is not up."""
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data

    def up(self, scenario: dict[str, Any] | None = None, settings: dict[str, str] | None = None) -> dict[str, Any]:
        """Given an optional scenario and inventory settings, start everything; return the recorded state.

        Raise ConfigError if this sandbox is already up, OutcomeUnknown if a process fails to start.
        """
        from opsguard.sandbox.hosts import SandboxHosts
        from opsguard.sandbox.simulator import load_scenario

        if self.state() is not None and any(_alive(pid) for pid in self._pids(self.state() or {})):
            raise ConfigError(f"sandbox: already up in {self.base_dir} (opsguard sandbox down first)")
        self.base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        scenario = scenario or load_scenario()
        self.scenario_path.write_text(json.dumps(scenario, indent=2), encoding="utf-8")
        port = _free_port()
        log_path = self.base_dir / "simulator.log"
        with log_path.open("wb") as log:
            simulator = subprocess.Popen(
                [sys.executable, "-m", "opsguard.sandbox", "serve", "--scenario", str(self.scenario_path),
                 "--port", str(port), "--journal", str(self.base_dir / "api-journal.jsonl")],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        state: dict[str, Any] = {"base_dir": str(self.base_dir), "simulator_pid": simulator.pid, "port": port}
        self._write_state(state)
        try:
            _wait_for_port(port, simulator, log_path)
            hosts = SandboxHosts(self.base_dir / "hosts", die_with_parent=False)
            hosts.start()
            state["sshd_pids"] = {name: host.pid for name, host in hosts.hosts.items()}
            state["hosts"] = {name: f"{host.address}:{host.port}" for name, host in hosts.hosts.items()}
            self._write_state(state)
            values = {"state_dir": str(self.base_dir / "state")}
            values.update(settings or {})
            self.inventory_path.write_text(hosts.inventory_text(SANDBOX_HOSTS, settings=values), encoding="utf-8")
        except BaseException:
            self.down()
            raise
        base = f"http://127.0.0.1:{port}"
        environment = {
            "OPSGUARD_INVENTORY": str(self.inventory_path),
            "OPSGUARD_STATE_DIR": str(self.base_dir / "state"),
            "VULTR_API_URL": f"{base}/vultr/v2",
            "HOSTINGER_API_URL": f"{base}/hostinger",
            # The simulator's own fake tokens (from the scenario), never a real provider's.
            "VULTR_API_KEY": str(scenario["vultr"]["token"]),
            "HOSTINGER_API_TOKEN": str(scenario["hostinger"]["token"]),
        }
        self.env_path.write_text("".join(f"export {key}={value}\n" for key, value in environment.items()), encoding="utf-8")
        self.env_path.chmod(0o600)
        state["environment"] = environment
        return state

    def environment(self) -> dict[str, str]:
        """Return the variables of sandbox.env (to run opsguard against this sandbox)."""
        values: dict[str, str] = {}
        for line in self.env_path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = value
        return values

    def down(self) -> list[int]:
        """Stop every process ``up`` started (by PID) and remove the sandbox dir; return the PIDs stopped."""
        state = self.state() or {}
        stopped = []
        for pid in self._pids(state):
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                    stopped.append(pid)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in stopped):
            for pid in stopped:
                self._reap(pid)
            time.sleep(0.05)
        for pid in stopped:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                self._reap(pid)
        if self.base_dir.exists() and (self.state_path.exists() or not any(self.base_dir.iterdir())):
            shutil.rmtree(self.base_dir, ignore_errors=True)
        return stopped

    def status(self) -> dict[str, Any]:
        """Return which sandbox processes are running."""
        state = self.state()
        if state is None:
            return {"up": False, "base_dir": str(self.base_dir)}
        processes = {"simulator": state.get("simulator_pid")}
        processes.update({f"sshd {name}": pid for name, pid in (state.get("sshd_pids") or {}).items()})
        running = {name: bool(pid and _alive(pid)) for name, pid in processes.items()}
        return {"up": all(running.values()), "base_dir": str(self.base_dir), "processes": running,
                "inventory": str(self.inventory_path), "env_file": str(self.env_path), "hosts": state.get("hosts", {})}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")

    @staticmethod
    def _pids(state: dict[str, Any]) -> list[int]:
        pids = [state.get("simulator_pid"), *list((state.get("sshd_pids") or {}).values())]
        return [int(pid) for pid in pids if pid]

    @staticmethod
    def _reap(pid: int) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
