"""Tokens never leak: every client call, success and error paths, leaves no token in any text a person could see.

Recognisable tokens go through every call; the test collects exception texts (str, repr, args,
full chained tracebacks), client reprs, every log record (DEBUG, all loggers, urllib3 included)
and everything printed, and asserts no token is in any of them.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opsguard.errors import OpsguardError
from opsguard.providers import provider_named
from opsguard.providers.base import Provider
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.cli_fixtures import run_cli
from tests.fixtures.simulator_fixtures import (
    FAST_RETRY_ENV,
    HOSTINGER_CHAT2,
    VULTR_CHAT,
    fast_client_options,
    poll_until_settled,
)

VULTR_TOKEN = "tok-SECRET-vultr-123"
HOSTINGER_TOKEN = "tok-SECRET-hostinger-456"
WRONG_TOKEN = "tok-SECRET-wrong-789"
SECRETS = (VULTR_TOKEN, HOSTINGER_TOKEN, WRONG_TOKEN, "SECRET")
INSTANCES = {"vultr": VULTR_CHAT, "hostinger": HOSTINGER_CHAT2}
StartSimulator = Callable[..., Simulator]


class Leaks:
    """Collects every text that could reach a person or a log."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, value: Any) -> None:
        self.texts.append(str(value))
        self.texts.append(repr(value))
        if isinstance(value, BaseException):
            self.texts.extend(str(argument) for argument in value.args)
            self.texts.append("".join(traceback.format_exception(value)))
            self.texts.append(repr(vars(value)))

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            result = function(*args)
        except OpsguardError as error:
            self.add(error)
            return None
        self.add(result)
        return result

    def assert_clean(self, *more: str) -> None:
        for text in [*self.texts, *more]:
            for secret in SECRETS:
                assert secret not in text, f"token leaked: {text[:300]!r}"


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Iterator[Leaks]:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's connection logs included
    yield Leaks()


def _scenario() -> dict[str, Any]:
    return {"vultr": {"token": VULTR_TOKEN, "snapshot_seconds": 0.05}, "hostinger": {"token": HOSTINGER_TOKEN, "snapshot_seconds": 0.05}}


def _every_call(leaks: Leaks, provider: Provider, instance: str | int) -> None:
    leaks.add(provider)
    leaks.call(provider.list_instances)
    leaks.call(provider.instance_facts, instance)
    leaks.call(provider.current_snapshot, instance)
    leaks.call(provider.list_backups, instance)
    leaks.call(provider.backup_schedule, instance)
    request = leaks.call(provider.create_snapshot, instance, f"opsguard:test:{instance}:run")
    if request is None:
        request = _made_up_request(provider.name, instance)
    leaks.call(poll_until_settled, provider, request)
    verified = leaks.call(provider.verify_snapshot, request)
    snapshot_id = verified.snapshot.snapshot_id if verified else "1"
    leaks.call(provider.restore_snapshot, instance, snapshot_id)


def _made_up_request(name: str, instance: str | int) -> Any:
    from datetime import UTC, datetime

    from opsguard.providers.base import SnapshotRequest

    return SnapshotRequest(provider=name, instance=instance, tag="t", requested_at=datetime.now(UTC), snapshot_id="x", action_id=1)


def _clients(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Provider]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {name: provider_named(name, **fast_client_options()) for name in INSTANCES}


def test_token_secrecy_success_paths(
    simulator: StartSimulator, leaks: Leaks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sim = simulator(_scenario())
    for name, provider in _clients(monkeypatch, sim.env()).items():
        _every_call(leaks, provider, INSTANCES[name])
    assert len(sim.snapshot_events()) == 2  # the calls really ran
    printed = capfd.readouterr()
    leaks.assert_clean(caplog.text, printed.out, printed.err, str(sim.journal()))


def test_token_secrecy_wrong_token_401(
    simulator: StartSimulator, leaks: Leaks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sim = simulator(_scenario())
    env = {**sim.env(), "VULTR_API_KEY": WRONG_TOKEN, "HOSTINGER_API_TOKEN": WRONG_TOKEN}
    for name, provider in _clients(monkeypatch, env).items():
        _every_call(leaks, provider, INSTANCES[name])
    assert any("401" in text for text in leaks.texts)
    printed = capfd.readouterr()
    leaks.assert_clean(caplog.text, printed.out, printed.err)


@pytest.mark.parametrize("fault", [{"fail_first": 1000}, {"rate_limit_every": 1, "retry_after": "0"}, {"post_lost": "drop"}, {"post_lost": "5xx"}])
def test_token_secrecy_server_errors(
    simulator: StartSimulator, leaks: Leaks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], fault: dict[str, Any],
) -> None:  # fmt: skip
    scenario = _scenario()
    for api in ("vultr", "hostinger"):
        scenario[api]["faults"] = dict(fault, fault_methods=["GET", "POST"])
    sim = simulator(scenario)
    for name, provider in _clients(monkeypatch, sim.env()).items():
        _every_call(leaks, provider, INSTANCES[name])
    assert any(status not in (200, 201, 202) for status in (entry["status"] for entry in sim.journal()))
    printed = capfd.readouterr()
    leaks.assert_clean(caplog.text, printed.out, printed.err)


def test_token_secrecy_unreachable_api(
    leaks: Leaks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "VULTR_API_URL": f"http://127.0.0.1:{port}/v2",
        "VULTR_API_KEY": VULTR_TOKEN,
        "HOSTINGER_API_URL": f"http://127.0.0.1:{port}/hostinger",
        "HOSTINGER_API_TOKEN": HOSTINGER_TOKEN,
    }
    for name, provider in _clients(monkeypatch, env).items():
        _every_call(leaks, provider, INSTANCES[name])
    assert any("Connection refused" in text for text in leaks.texts)
    printed = capfd.readouterr()
    leaks.assert_clean(caplog.text, printed.out, printed.err)


def test_token_secrecy_when_server_echoes_the_token(
    simulator: StartSimulator, leaks: Leaks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misbehaving proxy could echo the Authorization header into an error body: it is scrubbed.
    sim = simulator(_scenario())
    sim._apis["vultr"].unauthorized_message = f"bad token Bearer {WRONG_TOKEN}"  # type: ignore[misc]
    env = {**sim.env(), "VULTR_API_KEY": WRONG_TOKEN}
    provider = _clients(monkeypatch, env)["vultr"]
    leaks.call(provider.list_instances)
    assert any("[token hidden]" in text for text in leaks.texts)
    leaks.assert_clean()


def test_token_secrecy_in_snapshot_handles_and_records(simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = simulator(_scenario())
    clients = _clients(monkeypatch, sim.env())
    request = clients["hostinger"].create_snapshot(HOSTINGER_CHAT2, "tag")
    texts = [repr(request), str(dataclasses.asdict(request)), repr(clients["hostinger"])]
    assert all(secret not in text for text in texts for secret in SECRETS)


def test_token_secrecy_cli_discover_with_wrong_tokens(simulator: StartSimulator, tmp_path: Any) -> None:
    sim = simulator(_scenario())
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.chat]\naddress = "127.0.0.2"\nprovider = "vultr"\n')
    env = {**sim.env(), **FAST_RETRY_ENV, "VULTR_API_KEY": WRONG_TOKEN, "HOSTINGER_API_TOKEN": WRONG_TOKEN}
    result = run_cli("-i", str(inventory), "--debug", "discover", env=env)
    assert result.exit_code == 78
    assert "VULTR_API_KEY" in result.output
    assert all(secret not in result.output for secret in SECRETS)
