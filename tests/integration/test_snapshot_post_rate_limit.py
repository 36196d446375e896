"""A 429 on the snapshot POST: the provider did not carry it out, so it is sent again after the wait it asks for.

A 429 is the one error answer that says the request was refused before anything was done, so the
POST is re-sent (at most twice, each wait honouring Retry-After within the retry policy) instead
of being treated like a lost answer (look the snapshot up, exit 4 "may or may not exist"). A 5xx
or a lost answer stays ambiguous: looked up, never re-sent. The real clients run against the
simulator; ``sleeps`` records every wait instead of spending it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opsguard.errors import ProviderUnreachable
from opsguard.providers import provider_named
from opsguard.providers.base import Provider
from opsguard.providers.http import AmbiguousRequest, RetryPolicy
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.simulator_fixtures import (
    HOSTINGER_CHAT2,
    VULTR_CHAT,
    fast_client_options,
    poll_until_settled,
)
from tests.integration.guard_support import GuardWorlds, faults

StartSimulator = Callable[..., Simulator]
INSTANCES: dict[str, str | int] = {"vultr": VULTR_CHAT, "hostinger": HOSTINGER_CHAT2}
PROVIDERS = pytest.mark.parametrize("api", ["vultr", "hostinger"])


def start(simulator: StartSimulator, api: str, **knobs: Any) -> Simulator:
    """Given an API and fault knobs that apply to POSTs only, return a started simulator with fast snapshots."""
    return simulator({api: {"snapshot_seconds": 0.05, "faults": {**knobs, "fault_methods": ["POST"]}}})


def client(sim: Simulator, api: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Provider:
    for key, value in sim.env().items():
        monkeypatch.setenv(key, value)
    return provider_named(api, **options)


def snapshot_posts(sim: Simulator, api: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in sim.journal()
        if entry["api"] == api and entry["method"] == "POST" and entry["path"].endswith(("/snapshots", "/snapshot"))
    ]


def tag(api: str) -> str:
    return f"opsguard:test:{INSTANCES[api]}:run-rate-limit"


@PROVIDERS
def test_create_snapshot_resends_once_after_429_honouring_retry_after(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, fail_first=1, fail_status=429, retry_after="7")
    sleeps: list[float] = []
    provider = client(sim, api, monkeypatch, **fast_client_options(sleeps))

    request = provider.create_snapshot(INSTANCES[api], tag(api))

    statuses = [entry["status"] for entry in snapshot_posts(sim, api)]
    assert len(statuses) == 2 and statuses[0] == 429 and 200 <= statuses[1] < 300  # the 429 and one re-send
    assert sleeps == [7.0]  # Retry-After was honoured
    assert request.recovered is False  # a clear answer, not a lookup after a lost one
    assert len(sim.snapshot_events()) == 1
    assert poll_until_settled(provider, request).finished
    assert provider.verify_snapshot(request).snapshot.snapshot_id


@PROVIDERS
def test_create_snapshot_persistent_429_ends_unreachable_saying_no_snapshot_was_created(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, rate_limit_every=1, retry_after="2")
    sleeps: list[float] = []
    provider = client(sim, api, monkeypatch, **fast_client_options(sleeps))

    with pytest.raises(ProviderUnreachable) as caught:
        provider.create_snapshot(INSTANCES[api], tag(api))

    message = str(caught.value)
    assert not isinstance(caught.value, AmbiguousRequest)  # nothing may have been created: it was refused
    assert caught.value.exit_code == 4 and caught.value.status == 429
    assert "rate limit" in message and "no snapshot was created" in message, message
    assert "may or may not" not in message
    assert len(snapshot_posts(sim, api)) == 3  # the first POST and two re-sends, no more
    assert sleeps == [2.0, 2.0]
    assert sim.snapshot_events() == []


@PROVIDERS
def test_create_snapshot_429_retry_after_http_date_is_capped_by_wait_max(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, fail_first=1, fail_status=429, retry_after="Fri, 31 Dec 2099 23:59:59 GMT")
    sleeps: list[float] = []
    options = fast_client_options(sleeps)
    provider = client(sim, api, monkeypatch, **options)

    request = provider.create_snapshot(INSTANCES[api], tag(api))

    assert sleeps == [options["retry"].wait_max]
    assert len(snapshot_posts(sim, api)) == 2
    assert poll_until_settled(provider, request).finished


@PROVIDERS
def test_create_snapshot_429_without_retry_after_waits_a_bounded_backoff(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, fail_first=1, fail_status=429)
    sleeps: list[float] = []
    options = fast_client_options(sleeps)
    provider = client(sim, api, monkeypatch, **options)

    provider.create_snapshot(INSTANCES[api], tag(api))

    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= options["retry"].backoff_initial
    assert len(snapshot_posts(sim, api)) == 2


@PROVIDERS
def test_create_snapshot_429_wait_beyond_budget_is_not_resent(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, fail_first=1, fail_status=429, retry_after="30")
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, backoff_initial=0.005, wait_max=60.0, budget=10.0)
    provider = client(sim, api, monkeypatch, timeout=(2.0, 5.0), retry=policy, sleep=sleeps.append)

    with pytest.raises(ProviderUnreachable, match="no snapshot was created"):
        provider.create_snapshot(INSTANCES[api], tag(api))

    assert sleeps == []
    assert len(snapshot_posts(sim, api)) == 1
    assert sim.snapshot_events() == []


@PROVIDERS
def test_create_snapshot_5xx_is_never_resent(
    simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    sim = start(simulator, api, fail_first=1, fail_status=503)
    provider = client(sim, api, monkeypatch, **fast_client_options())

    with pytest.raises(AmbiguousRequest, match="may or may not exist"):
        provider.create_snapshot(INSTANCES[api], tag(api))

    assert len(snapshot_posts(sim, api)) == 1


@pytest.mark.parametrize(("host", "api"), [("chat", "vultr"), ("chat2", "hostinger")])
def test_cli_snapshot_after_one_429_on_the_post_is_verified(worlds: GuardWorlds, host: str, api: str) -> None:
    world = worlds(faults(api, fail_first=1, fail_status=429, retry_after="1", fault_methods=["POST"]))
    result = world.cli("snapshot", host)
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    statuses = [entry["status"] for entry in world.snapshot_posts()]
    assert len(statuses) == 2 and statuses[0] == 429 and 200 <= statuses[1] < 300


@pytest.mark.parametrize(("host", "api"), [("chat", "vultr"), ("chat2", "hostinger")])
def test_cli_snapshot_persistent_429_exits_4_saying_no_snapshot_was_created(
    worlds: GuardWorlds, host: str, api: str
) -> None:
    world = worlds(faults(api, rate_limit_every=1, retry_after="1", fault_methods=["POST"]))
    result = world.cli("snapshot", host)
    assert result.exit_code == 4, result.output
    assert "no snapshot was created" in result.stderr and "rate limit" in result.stderr, result.stderr
    assert "may or may not" not in result.stderr
    assert len(world.snapshot_posts()) == 3
    assert world.snapshot_events() == []
