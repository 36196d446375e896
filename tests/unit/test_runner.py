"""The plan runner against a fake provider and a recording connection (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsguard import ledger as events
from opsguard.errors import ConfigError, ConnectionDropped, ReadOnlyViolation, Refused, StepFailed
from opsguard.inventory import Inventory
from opsguard.ledger import Ledger
from opsguard.plan import Check, Facts, Plan, Poll, Step
from opsguard.runner import PlanRunner
from tests.unit.fakes import FakeConnection, FakeProvider, FakeResult, fake_world, write_inventory


class ScriptedConnection(FakeConnection):
    """Answers chosen commands with chosen output/exit codes; records everything."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers = answers or {}

    def run(self, command: str, *, timeout: float, **kwargs: Any) -> FakeResult:
        for key, (status, stdout) in self.answers.items():
            if key in command and "ACQUIRED" not in command:
                self.commands.append(command)
                return FakeResult(command, status, stdout)
        return super().run(command, timeout=timeout, **kwargs)


def disk_below_90(stdout: str) -> str | None:
    used = int(stdout.strip().rstrip("%"))
    return None if used < 90 else f"/ is {used}% full (limit 90%)"


def sample_plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {
        "playbook": "sample",
        "host": "chat",
        "kind": "change",
        "summary": "a sample change",
        "preflight": (
            Step("disk", "df -P /", mutates=False, check=Check("/ below 90%", disk_below_90)),
            Step("read port", "cat .env", mutates=False,
                 facts=Facts(("port",), lambda out: {"port": out.strip().split("=")[1]})),
        ),
        "change": (
            Step("stop", "pm2 stop zpro-backend", mutates=True, downtime="starts"),
            Step("migrate", "npx sequelize db:migrate", mutates=True),
        ),
        "verify": (
            Step("health", "curl localhost:{{port}}", mutates=False, downtime="ends"),
        ),
        "rollback": ("pg_restore --clean --if-exists {{dump_file}}", "opsguard restore chat --snapshot {snapshot_id}"),
    }
    values.update(overrides)
    return Plan(**values)


class FakeRunner:
    """A PlanRunner whose guard and sessions use the fake provider and connection."""

    def __init__(self, runner: PlanRunner, provider: FakeProvider, connection: FakeConnection) -> None:
        self.runner, self.provider, self.connection = runner, provider, connection

    def run(self) -> Any:
        with fake_world(self.provider, self.connection):
            return self.runner.run()


def runner(inventory: Inventory, plan: Plan, connection: FakeConnection, provider: FakeProvider | None = None) -> FakeRunner:
    real = PlanRunner(plan, inventory.host("chat"), inventory, reason="test", stream=False)
    return FakeRunner(real, provider or FakeProvider(), connection)


def mutating(connection: FakeConnection) -> list[str]:
    return [c for c in connection.user_commands() if c.startswith(("pm2", "npx"))]


def test_runner_runs_preflight_then_change_then_verify_with_facts(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    connection = ScriptedConnection({"df -P": (0, "41%\n"), "cat .env": (0, "PORT=3000\n")})
    summary = runner(inventory, sample_plan(), connection).run()
    assert connection.user_commands() == ["df -P /", "cat .env", "pm2 stop zpro-backend",
                                          "npx sequelize db:migrate", "curl localhost:3000"]
    assert summary.outcome == "ok"
    assert summary.downtime is not None and summary.downtime >= 0
    assert [s.result for s in summary.steps] == ["ok"] * 5


def test_runner_refuses_at_failed_preflight_without_snapshot(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    connection = ScriptedConnection({"df -P": (0, "95%\n")})
    with pytest.raises(Refused, match=r"preflight step 'disk' failed: .*95% full.*no snapshot was taken.*nothing was changed"):
        runner(inventory, sample_plan(), connection, provider).run()
    assert provider.created == 0
    assert mutating(connection) == []


def test_runner_stops_at_failed_change_step_and_prints_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path)
    connection = ScriptedConnection({"df -P": (0, "41%\n"), "cat .env": (0, "PORT=3000\n"), "pm2 stop": (1, "")})
    with pytest.raises(StepFailed, match="step 'stop' exited 1"):
        runner(inventory, sample_plan(), connection).run()
    assert "npx sequelize db:migrate" not in connection.commands
    err = capsys.readouterr().err
    assert "ROLLBACK" in err and "opsguard restore chat --snapshot snap-1" in err
    end = [r for r in Ledger(inventory.settings.state_dir).records() if r["event"] == events.RUN_ENDED][-1]
    assert (end["outcome"], end["failed_step"]) == (events.FAILED, "stop")


def test_runner_failed_verification_is_a_failed_change(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    connection = ScriptedConnection({"df -P": (0, "41%\n"), "cat .env": (0, "PORT=3000\n"), "curl": (7, "")})
    with pytest.raises(StepFailed, match="health"):
        runner(inventory, sample_plan(), connection).run()
    end = [r for r in Ledger(inventory.settings.state_dir).records() if r["event"] == events.RUN_ENDED][-1]
    assert end["outcome"] == events.FAILED


def test_runner_mutating_preflight_step_is_refused_in_read_only_session(tmp_path: Path) -> None:
    inventory, provider = write_inventory(tmp_path), FakeProvider()
    plan = sample_plan(preflight=(Step("sneaky", "apt-get -y upgrade", mutates=True),))
    connection = ScriptedConnection()
    with pytest.raises(ReadOnlyViolation):
        runner(inventory, plan, connection, provider).run()
    assert provider.created == 0 and connection.user_commands() == []


def test_runner_poll_step_retries_until_it_passes(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    answers = iter([(7, ""), (7, ""), (0, "200")])

    class Flaky(ScriptedConnection):
        def run(self, command: str, *, timeout: float, **kwargs: Any) -> FakeResult:
            if command == "curl health":
                self.commands.append(command)
                status, out = next(answers)
                return FakeResult(command, status, out)
            return super().run(command, timeout=timeout, **kwargs)

    plan = sample_plan(preflight=(), change=(Step("touch", "touch x", mutates=True),),
                       verify=(Step("health", "curl health", mutates=False, poll=Poll(every=0.01, within=2)),))
    connection = Flaky()
    runner(inventory, plan, connection).run()
    assert connection.commands.count("curl health") == 3


def test_runner_poll_step_fails_after_its_window(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    plan = sample_plan(preflight=(), change=(Step("touch", "touch x", mutates=True),),
                       verify=(Step("health", "curl health", mutates=False, poll=Poll(every=0.01, within=0.05)),))
    connection = ScriptedConnection({"curl health": (7, "")})
    with pytest.raises(StepFailed, match="health"):
        runner(inventory, plan, connection).run()


def test_runner_dropped_connection_is_outcome_unknown(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    connection = ScriptedConnection({"df -P": (0, "41%\n"), "cat .env": (0, "PORT=3000\n")}, drop_on="db:migrate")
    with pytest.raises(ConnectionDropped):
        runner(inventory, sample_plan(), connection).run()
    end = [r for r in Ledger(inventory.settings.state_dir).records() if r["event"] == events.RUN_ENDED][-1]
    assert (end["outcome"], end["failed_step"]) == (events.UNKNOWN, "migrate")


def test_runner_first_mutating_command_reaches_host_after_provider_reported_snapshot_complete(tmp_path: Path) -> None:
    """Judged by what the host received and when, against when the PROVIDER said complete — not by the ledger."""
    inventory, provider = write_inventory(tmp_path), FakeProvider(states=["pending", "pending", "complete"])
    connection = ScriptedConnection({"df -P": (0, "41%\n"), "cat .env": (0, "PORT=3000\n")})
    runner(inventory, sample_plan(), connection, provider).run()
    assert provider.completed_at is not None
    assert connection.first_sent("pm2 stop zpro-backend") > provider.completed_at
    assert connection.first_sent("df -P /") < provider.completed_at  # the preflight ran before the snapshot


def test_runner_refuses_the_rollback_playbook_without_the_run_it_undoes(tmp_path: Path) -> None:
    """A rollback plan run like any playbook would skip guard rule 3d (R's snapshot, R still the last change)."""
    inventory = write_inventory(tmp_path)
    connection, provider = ScriptedConnection(), FakeProvider()
    plan = sample_plan(playbook="rollback", params={"rolled_back_run": "20250101T000000Z-abcdef"})

    with pytest.raises(ConfigError, match="opsguard rollback chat"):
        runner(inventory, plan, connection, provider).run()

    assert connection.commands == [] and provider.created == 0
