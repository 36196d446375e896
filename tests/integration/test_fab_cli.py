"""`opsguard fab`: the team's Fabric tasks under the guard, through the real CLI against real sshd hosts and the simulator.

The sample task file (data/deploy_tasks.py) is written for plain Fabric (``from fabric import task``)
and uses run, sudo, put, get and cd. What the host received is judged by the session record: every
command line it got (``world.sessions``), and those that may have changed it (``world.changes``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsguard import ledger as events
from tests.fixtures.cli_fixtures import CliResult
from tests.integration.guard_support import GuardWorld, GuardWorlds, faults

pytestmark = pytest.mark.integration

TASKS = Path(__file__).resolve().parent / "data" / "deploy_tasks.py"


def fab(world: GuardWorld, host: str, task: str, *task_args: str, options: tuple[str, ...] = ()) -> CliResult:
    """Given a world, a host and a task of the sample file, run `opsguard fab HOST FILE:TASK --yes -- --root ROOT ARGS`."""
    root = str(world.hosts.host(host).root)
    return world.cli("fab", host, f"{TASKS}:{task}", "--yes", *options, "--", "--root", root, *task_args)


def app_dir(world: GuardWorld, host: str) -> Path:
    return world.hosts.host(host).root / "home" / "deployzdg" / "zpro.io"


def step_records(world: GuardWorld, host: str) -> list[tuple[str, str]]:
    return [(record["phase"], record["step"]) for record in world.ledger(host, "step")]


def assert_rollback_advice(world: GuardWorld, host: str, result: CliResult) -> str:
    """The error names the rollback point: the snapshot this run verified, and how to restore it."""
    (verified,) = world.ledger(host, "snapshot-verified")
    snapshot = verified["receipt"]["snapshot_id"]
    assert f"rollback point: snapshot {snapshot} (opsguard restore {host} --snapshot {snapshot})" in result.stderr
    return str(snapshot)


@pytest.mark.parametrize("host", ["chat", "chat2"], ids=["vultr", "hostinger"])
def test_fab_runs_a_fabric_task_after_the_verified_snapshot_each_call_a_ledger_step(worlds: GuardWorlds,
                                                                                   host: str) -> None:
    world = worlds()

    result = fab(world, host, "deploy", "--version", "1.4")

    assert result.exit_code == 0, result.output
    app = app_dir(world, host)
    assert (app / "RELEASE-NOTES").read_text() == (TASKS.parent / "release-notes.txt").read_text()
    assert (app / "VERSION").read_text() == "1.4\n" and (app / "DEPLOYED").read_text() == "1.4\n"
    assert "deployed version 1.4" in result.stdout
    # The sudo call reached the host's systemctl through sudo, as root.
    assert ["systemctl", "restart", "zpro-backend"] in world.commands(host)
    # Nothing that may change the host arrived before the provider completed the snapshot.
    (event,) = world.snapshot_events()
    changes = [record for record in world.hosts.sessions(host) if record.command in world.changes(host)]
    assert changes and all(record.time > event["completed_at"] for record in changes)
    # Each call is in the ledger: puts and runs as steps; reads (is the target a directory? the read-back) as reads.
    app_text = str(app)
    assert step_records(world, host) == [
        ("read", f"put: is {app_text}/RELEASE-NOTES a directory"),
        ("started", f"put: {TASKS.parent / 'release-notes.txt'} -> {app_text}/RELEASE-NOTES"),
        ("ended", f"put: {TASKS.parent / 'release-notes.txt'} -> {app_text}/RELEASE-NOTES"),
        ("read", f"put: is {app_text}/VERSION a directory"),
        ("started", f"put: file-like object -> {app_text}/VERSION"),
        ("ended", f"put: file-like object -> {app_text}/VERSION"),
        ("started", "run: echo 1.4 > DEPLOYED"),
        ("ended", "run: echo 1.4 > DEPLOYED"),
        ("started", "sudo: systemctl restart zpro-backend"),
        ("ended", "sudo: systemctl restart zpro-backend"),
        ("read", "run: cat DEPLOYED"),
    ]
    started = world.ledger(host, "run-started")[-1]
    assert started["command"] == f"fab {TASKS}:deploy --root {world.hosts.host(host).root} --version 1.4"
    end = world.last_run_end(host)
    assert end["outcome"] == events.OK and end["failed_step"] is None
    assert "summary of task deploy" in result.stderr and "is the rollback point" in result.stderr


def test_fab_refused_snapshot_means_nothing_of_the_task_reached_the_host(worlds: GuardWorlds) -> None:
    world = worlds(faults("vultr", snapshot="error"), settings={"snapshot_timeout": "10s"})

    result = fab(world, "chat", "deploy", "--version", "1.4")

    assert result.exit_code == 3, result.output
    assert "snapshot failed at the provider" in result.stderr and "nothing was changed" in result.stderr
    assert world.changes("chat") == [], "the host received changing commands although the snapshot failed"
    assert world.commands("chat") == []
    assert not any(record.is_sftp for record in world.hosts.sessions("chat"))
    assert not (app_dir(world, "chat") / "DEPLOYED").exists()
    assert world.ledger("chat", "step") == []
    assert world.last_run_end("chat")["outcome"] == events.REFUSED


def test_fab_task_whose_call_fails_mid_way_stops_there_failed_with_the_rollback_advice(worlds: GuardWorlds) -> None:
    world = worlds()

    result = fab(world, "chat", "half_done")

    assert result.exit_code == 1, result.output
    assert "task 'half_done': step 'run: mkdir STATE/sub' exited 1" in result.stderr
    assert_rollback_advice(world, "chat", result)
    assert (app_dir(world, "chat") / "STATE").read_text() == "started\n"
    assert not any("echo finished" in command for command in world.sessions("chat"))
    end = world.last_run_end("chat")
    assert (end["outcome"], end["failed_step"]) == (events.FAILED, "run: mkdir STATE/sub")
    ended = [(r["step"], r["result"]) for r in world.ledger("chat", "step") if r["phase"] == "ended"]
    assert ended == [("run: echo started > STATE", "ok"), ("run: mkdir STATE/sub", "failed")]


def test_fab_task_that_raises_mid_way_is_failed_with_the_rollback_advice(worlds: GuardWorlds) -> None:
    world = worlds()

    result = fab(world, "chat", "raises")

    assert result.exit_code == 1, result.output
    assert "task 'raises' raised RuntimeError: the release manifest lists no backend" in result.stderr
    assert_rollback_advice(world, "chat", result)
    assert world.last_run_end("chat")["outcome"] == events.FAILED


@pytest.mark.parametrize(("task", "fragment", "never_made"), [
    ("raw_client", "c.client is not offered under the snapshot guard", "BYPASS"),
    ("with_pty", "run(pty=True) is not offered under the snapshot guard", "PTY"),
])
def test_fab_task_using_a_feature_that_bypasses_the_recording_is_a_clear_error(
    worlds: GuardWorlds, task: str, fragment: str, never_made: str
) -> None:
    world = worlds()

    result = fab(world, "chat", task)

    assert result.exit_code == 1, result.output
    assert fragment in result.stderr and f"task {task!r}" in result.stderr
    assert "nothing was changed" in result.stderr
    assert world.changes("chat") == [] and not (app_dir(world, "chat") / never_made).exists()
    assert world.ledger("chat", "step") == []


@pytest.mark.parametrize(("spec", "task_args", "code", "fragments"), [
    ("absent.py:deploy", (), 78, ("task file absent.py: no such file",)),
    (f"{TASKS}:deplo", (), 78, ("no task 'deplo'", "deploy, half_done")),
    (f"{TASKS}", (), 2, ("name the task as FILE.py:TASK",)),
    (f"{TASKS}:deploy", ("--root", "/srv", "--colour", "red"), 2, ("task 'deploy'", "No idea what '--colour' is")),
])
def test_fab_typo_in_file_task_or_argument_costs_nothing(worlds: GuardWorlds, spec: str, task_args: tuple[str, ...],
                                                         code: int, fragments: tuple[str, ...]) -> None:
    world = worlds()

    result = world.cli("fab", "chat", spec, "--yes", "--", *task_args)

    assert result.exit_code == code, result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert world.snapshot_posts() == [] and world.sessions("chat") == []


def test_fab_without_yes_off_a_terminal_is_refused_before_the_snapshot(worlds: GuardWorlds) -> None:
    world = worlds()
    root = str(world.hosts.host("chat").root)

    result = world.cli("fab", "chat", f"{TASKS}:deploy", "--", "--root", root)

    assert result.exit_code == 3, result.output
    assert "no confirmation" in result.stderr and "nothing was changed" in result.stderr
    assert world.snapshot_posts() == [] and world.sessions("chat") == []


def test_fab_get_downloads_with_a_recorded_read_and_no_sftp_session(worlds: GuardWorlds, tmp_path: Path) -> None:
    world = worlds()
    into = tmp_path / "fetched"

    result = fab(world, "chat", "fetch", "--into", str(into))

    assert result.exit_code == 0, result.output
    source = world.hosts.host("chat").root / "etc" / "nginx" / "sites-enabled" / "zpro-backend"
    assert (into / "zpro-backend").read_bytes() == source.read_bytes()
    assert not any(record.is_sftp for record in world.hosts.sessions("chat"))
    assert world.changes("chat") == []
    assert [phase for phase, _ in step_records(world, "chat")] == ["read"]


def test_fab_list_prints_the_tasks_of_a_file_without_touching_anything(worlds: GuardWorlds) -> None:
    world = worlds()

    result = world.cli("fab", "--list", str(TASKS))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["deploy", "half_done", "raises", "raw_client", "with_pty", "fetch"]
    assert "--root" in lines[0] and "--version" in lines[0] and "Upload the release notes" in lines[0]
    assert world.requests() == []


def test_plan_of_a_task_says_its_calls_are_not_known_and_shows_the_guard_steps(worlds: GuardWorlds) -> None:
    world = worlds()

    shown = world.cli("plan", "chat", f"{TASKS}:deploy")
    as_json = world.cli("plan", "chat", f"{TASKS}:deploy", "--json")

    assert shown.exit_code == 0, shown.output
    assert "cannot know in advance what a Python task will run" in shown.stdout
    assert "ONE full snapshot requested, polled until complete, verified" in shown.stdout
    assert "then: the task's calls (run, sudo, put, get), each a recorded step" in shown.stdout
    document = json.loads(as_json.stdout)
    assert (document["kind"], document["task"], document["calls_known_in_advance"]) == ("fabric-task", "deploy", False)
    assert [step["phase"] for step in document["steps"]] == ["guard", "guard", "guard", "snapshot", "change", "guard"]
    assert world.requests() == [] and world.sessions("chat") == []


@pytest.fixture
def api_world(worlds: GuardWorlds, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuardWorld]:
    """A world whose environment is this process's, for the Python API."""
    world = worlds()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    yield world


def test_python_api_change_fabric_runs_a_fabric_task_under_the_guard(api_world: GuardWorld) -> None:
    import importlib.util

    from opsguard import snapshot_guard

    spec = importlib.util.spec_from_file_location("deploy_tasks_api", TASKS)
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    root = str(api_world.hosts.host("chat").root)

    with snapshot_guard("chat", reason="deploy 2.0", inventory=api_world.inventory) as change:
        tasks.deploy(change.fabric(), root=root, version="2.0")

    assert (app_dir(api_world, "chat") / "DEPLOYED").read_text() == "2.0\n"
    assert ("read", "run: cat DEPLOYED") in step_records(api_world, "chat")
    assert api_world.last_run_end("chat")["outcome"] == events.OK
