"""The Hostinger client against the simulator on loopback: the one snapshot, actions, pages, retries, verification."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from opsguard.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderUnreachable,
    Refused,
    SnapshotNotVerified,
)
from opsguard.providers.hostinger import HostingerClient
from opsguard.providers.http import AmbiguousRequest
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.simulator_fixtures import HOSTINGER_CHAT2, HOSTINGER_IA, fast_client_options, poll_until_settled

TAG = f"opsguard:chat2:{HOSTINGER_CHAT2}:run-test-1"
VMS = "/api/vps/v1/virtual-machines"
StartSimulator = Callable[..., Simulator]


def client(sim: Simulator, *, token: str | None = None, sleeps: list[float] | None = None) -> HostingerClient:
    return HostingerClient(sim.hostinger_url, token or sim.env()["HOSTINGER_API_TOKEN"], **fast_client_options(sleeps))


def hostinger(faults: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {"hostinger": {"snapshot_seconds": 0.1, **settings, "faults": faults or {}}}


def requests_to(sim: Simulator, method: str, path: str) -> list[dict[str, Any]]:
    return [entry for entry in sim.journal() if entry["api"] == "hostinger" and entry["method"] == method and entry["path"] == path]


def raw_get(sim: Simulator, path: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {sim.env()['HOSTINGER_API_TOKEN']}"}
    return requests.get(f"{sim.hostinger_url}{path}", headers=headers, timeout=5)


# -- VMs -------------------------------------------------------------------------------------------


def test_hostinger_instance_facts_running_unlocked_with_ips(simulator: StartSimulator) -> None:
    facts = client(simulator()).instance_facts(HOSTINGER_CHAT2)
    assert facts.instance == HOSTINGER_CHAT2
    assert facts.running and not facts.locked and facts.ready_for_snapshot
    assert facts.public_ips == ("127.0.0.3",)
    assert facts.label == "chat2.ia.nuvemjti.com.br"
    assert facts.backups_enabled is None


def test_hostinger_instance_facts_locked_when_actions_lock_locked(simulator: StartSimulator) -> None:
    sim = simulator()
    sim.update_instance("hostinger", HOSTINGER_CHAT2, actions_lock="locked")
    facts = client(sim).instance_facts(HOSTINGER_CHAT2)
    assert facts.locked and not facts.ready_for_snapshot


def test_hostinger_instance_facts_null_ipv4_is_fine(simulator: StartSimulator) -> None:
    sim = simulator({"hostinger": {"vms": [{"id": HOSTINGER_IA, "ipv4": None, "ipv6": ["2001:db8::4"]}]}})
    assert raw_get(sim, f"{VMS}/{HOSTINGER_IA}").json()["ipv4"] is None
    facts = client(sim).instance_facts(HOSTINGER_IA)
    assert facts.public_ips == ("2001:db8::4",)


def test_hostinger_list_instances_reads_bare_array(simulator: StartSimulator) -> None:
    sim = simulator()
    facts = client(sim).list_instances()
    assert [item.instance for item in facts] == [HOSTINGER_CHAT2, HOSTINGER_IA]
    assert isinstance(raw_get(sim, VMS).json(), list)


def test_hostinger_unknown_vm_raises_not_found_with_correlation_id(simulator: StartSimulator) -> None:
    with pytest.raises(ProviderNotFound) as caught:
        client(simulator()).instance_facts(999999)
    assert caught.value.status == 404
    assert caught.value.correlation_id
    assert caught.value.correlation_id in str(caught.value)


# -- backups ---------------------------------------------------------------------------------------


def test_hostinger_list_backups_reads_three_or_more_pages_in_any_order(simulator: StartSimulator) -> None:
    ages = ["9d", "2d", "16d", "1d", "30d", "23d"]  # deliberately not sorted
    sim = simulator(hostinger(page_size=2, vms=[{"id": HOSTINGER_CHAT2, "backups": ages}]))
    backups = client(sim).list_backups(HOSTINGER_CHAT2)
    pages = requests_to(sim, "GET", f"{VMS}/{HOSTINGER_CHAT2}/backups")
    assert [page["query"]["page"] for page in pages] == ["1", "2", "3"]
    assert len(backups) == 6
    newest = max(backup.created_at for backup in backups if backup.created_at)
    assert timedelta(hours=23) < datetime.now(UTC) - newest < timedelta(hours=25)
    assert all(backup.size and backup.size % 1024 == 0 for backup in backups)  # KB converted to bytes


def test_hostinger_list_backups_stops_at_empty_page_without_total(simulator: StartSimulator) -> None:
    sim = simulator(hostinger(page_size=2, vms=[{"id": HOSTINGER_IA, "backups": ["1d", "8d", "15d"]}]))
    assert len(client(sim).list_backups(HOSTINGER_IA)) == 3
    assert len(requests_to(sim, "GET", f"{VMS}/{HOSTINGER_IA}/backups")) == 2  # total reached on page 2


def test_hostinger_backup_schedule_is_none(simulator: StartSimulator) -> None:
    assert client(simulator()).backup_schedule(HOSTINGER_CHAT2) is None


def test_hostinger_fractional_timestamps_parse(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"fractional_seconds": True}))
    raw = raw_get(sim, f"{VMS}/{HOSTINGER_CHAT2}/snapshot").json()["created_at"]
    assert raw.endswith("Z") and "." in raw
    snapshot = client(sim).current_snapshot(HOSTINGER_CHAT2)
    assert snapshot is not None and snapshot.created_at is not None
    assert snapshot.created_at.utcoffset() == timedelta(0)
    assert snapshot.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == raw
    backups = client(sim).list_backups(HOSTINGER_CHAT2)
    assert all(backup.created_at is not None for backup in backups)


# -- "no snapshot" ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["404", "empty", "{}"])
def test_hostinger_current_snapshot_none_for_every_no_snapshot_answer(simulator: StartSimulator, style: str) -> None:
    sim = simulator(hostinger({"no_snapshot": style}))
    assert client(sim).current_snapshot(HOSTINGER_IA) is None
    [lookup] = requests_to(sim, "GET", f"{VMS}/{HOSTINGER_IA}/snapshot")
    assert lookup["status"] == (404 if style == "404" else 200)


def test_hostinger_current_snapshot_without_restore_time_is_fine(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"omit_optional": True}))
    assert "restore_time" not in raw_get(sim, f"{VMS}/{HOSTINGER_CHAT2}/snapshot").json()
    snapshot = client(sim).current_snapshot(HOSTINGER_CHAT2)
    assert snapshot is not None and snapshot.expires_at is not None


# -- retries and auth ------------------------------------------------------------------------------


def test_hostinger_get_retries_5xx_then_succeeds(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"fail_first": 3}))
    assert client(sim).instance_facts(HOSTINGER_CHAT2).running
    statuses = [entry["status"] for entry in requests_to(sim, "GET", f"{VMS}/{HOSTINGER_CHAT2}")]
    assert statuses == [503, 503, 503, 200]


def test_hostinger_429_honours_retry_after_and_eventually_succeeds(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"rate_limit_every": 2, "retry_after": "2"}))
    sleeps: list[float] = []
    api = client(sim, sleeps=sleeps)
    assert api.instance_facts(HOSTINGER_CHAT2).running  # request 1 ok
    assert api.instance_facts(HOSTINGER_CHAT2).running  # request 2 -> 429, request 3 ok
    assert sleeps == [2.0]
    statuses = [entry["status"] for entry in requests_to(sim, "GET", f"{VMS}/{HOSTINGER_CHAT2}")]
    assert statuses == [200, 429, 200]


def test_hostinger_persistent_429_gives_up_as_unreachable(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"rate_limit_every": 1, "retry_after": "0"}))
    with pytest.raises(ProviderUnreachable) as caught:
        client(sim).list_instances()
    assert caught.value.status == 429
    assert caught.value.correlation_id


def test_hostinger_401_raises_auth_error_naming_variable(simulator: StartSimulator) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        client(simulator(), token="wrong-token").list_instances()
    message = str(caught.value)
    assert caught.value.exit_code == 78
    assert "HOSTINGER_API_TOKEN" in message
    assert "Unauthenticated" in message
    assert caught.value.correlation_id and caught.value.correlation_id in message


# -- snapshots -------------------------------------------------------------------------------------


def test_hostinger_snapshot_overwrites_previous_and_verifies(simulator: StartSimulator) -> None:
    sim = simulator(hostinger())
    api = client(sim)
    before = api.current_snapshot(HOSTINGER_CHAT2)
    assert before is not None
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    assert request.previous == before
    assert request.action_id is not None and request.action_created_at is not None
    assert not request.recovered
    progress = poll_until_settled(api, request)
    assert progress.finished and progress.state == "success"
    verified = api.verify_snapshot(request)
    assert verified.snapshot.snapshot_id != before.snapshot_id
    assert verified.snapshot.created_at and before.created_at and verified.snapshot.created_at > before.created_at
    assert verified.snapshot.expires_at and verified.snapshot.expires_at > datetime.now(UTC)
    assert len(requests_to(sim, "POST", f"{VMS}/{HOSTINGER_CHAT2}/snapshot")) == 1
    [event] = sim.snapshot_events()
    assert event["action_id"] == request.action_id and event["state"] == "success"


def test_hostinger_snapshot_on_vm_without_previous_verifies(simulator: StartSimulator) -> None:
    sim = simulator(hostinger())
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_IA, TAG)
    assert request.previous is None
    assert poll_until_settled(api, request).finished
    assert api.verify_snapshot(request).snapshot.snapshot_id


def test_hostinger_snapshot_in_flight_locks_vm_and_is_not_finished(simulator: StartSimulator) -> None:
    sim = simulator(hostinger(snapshot_seconds=30))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    progress = api.poll_snapshot(request)
    assert progress.state in ("created", "sent", "delayed")
    assert not progress.finished and not progress.failed
    assert api.instance_facts(HOSTINGER_CHAT2).locked
    with pytest.raises(SnapshotNotVerified, match="not 'success'"):
        api.verify_snapshot(request)


@pytest.mark.parametrize("lost", ["drop", "5xx"])
def test_hostinger_snapshot_post_lost_answer_creates_one_action_and_recovers_it(simulator: StartSimulator, lost: str) -> None:
    sim = simulator(hostinger({"post_lost": lost}))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    assert request.recovered is True
    assert len(requests_to(sim, "POST", f"{VMS}/{HOSTINGER_CHAT2}/snapshot")) == 1
    [event] = sim.snapshot_events()
    assert request.action_id == event["action_id"]
    assert request.previous is not None  # recorded before the POST, even when its answer is lost
    assert poll_until_settled(api, request).finished
    assert api.verify_snapshot(request).snapshot.snapshot_id


def test_hostinger_snapshot_post_5xx_without_new_action_says_may_or_may_not(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"fail_first": 1, "fault_methods": ["POST"]}))
    with pytest.raises(AmbiguousRequest) as caught:
        client(sim).create_snapshot(HOSTINGER_CHAT2, TAG)
    assert "may or may not" in str(caught.value)
    assert "no new action" in str(caught.value)
    assert len(requests_to(sim, "POST", f"{VMS}/{HOSTINGER_CHAT2}/snapshot")) == 1


def test_hostinger_snapshot_on_locked_vm_is_refused_by_api(simulator: StartSimulator) -> None:
    sim = simulator()
    sim.update_instance("hostinger", HOSTINGER_CHAT2, actions_lock="locked")
    with pytest.raises(ProviderError) as caught:
        client(sim).create_snapshot(HOSTINGER_CHAT2, TAG)
    assert not isinstance(caught.value, AmbiguousRequest)  # a clear refusal: nothing was created
    assert caught.value.status == 422
    assert "action in progress" in str(caught.value)
    assert sim.snapshot_events() == []


def test_hostinger_snapshot_stuck_is_never_finished(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"snapshot": "stuck"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    progress = poll_until_settled(api, request, seconds=0.3)
    assert progress.state == "sent"
    assert not progress.finished and not progress.failed
    with pytest.raises(SnapshotNotVerified):
        api.verify_snapshot(request)


def test_hostinger_snapshot_unknown_state_is_never_finished_nor_verified(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"snapshot": "unknown_state"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    progress = poll_until_settled(api, request, seconds=0.3)
    assert progress.state not in ("created", "sent", "delayed", "success", "error")
    assert not progress.finished and not progress.failed
    assert "unknown action state" in progress.detail
    with pytest.raises(SnapshotNotVerified, match="not 'success'"):
        api.verify_snapshot(request)


def test_hostinger_snapshot_error_is_failed_and_fails_verification(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"snapshot": "error"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    progress = poll_until_settled(api, request)
    assert progress.failed and not progress.finished and progress.state == "error"
    with pytest.raises(SnapshotNotVerified, match="'error', not 'success'"):
        api.verify_snapshot(request)


def test_hostinger_snapshot_stale_after_success_fails_verification(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"snapshot": "stale_after_success"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    assert poll_until_settled(api, request).finished  # the provider says success ...
    with pytest.raises(SnapshotNotVerified, match="before the action"):  # ... but the snapshot is the old one
        api.verify_snapshot(request)


def test_hostinger_snapshot_stale_same_id_and_time_fails_even_within_skew(simulator: StartSimulator) -> None:
    # the old snapshot is only a minute old: within the clock-skew allowance, so only the
    # "differs from the previous one" check can catch it
    sim = simulator(hostinger({"snapshot": "stale_after_success"}, snapshot_seconds=0.05,
                              vms=[{"id": HOSTINGER_CHAT2, "snapshot": {"created": "60s", "expires": "20d"}}]))  # fmt: skip
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    assert poll_until_settled(api, request).finished
    with pytest.raises(SnapshotNotVerified, match="still the previous one"):
        api.verify_snapshot(request)


def test_hostinger_snapshot_success_with_vm_still_locked_is_not_finished(simulator: StartSimulator) -> None:
    sim = simulator(hostinger({"snapshot": "locked_after_success"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    progress = poll_until_settled(api, request, seconds=0.3)
    assert progress.state == "success"
    assert not progress.finished and not progress.failed
    assert "still locked" in progress.detail
    with pytest.raises(SnapshotNotVerified, match="still locked"):
        api.verify_snapshot(request)


def test_hostinger_snapshot_action_gone_is_failed(simulator: StartSimulator) -> None:
    sim = simulator(hostinger())
    api = client(sim)
    request = api.create_snapshot(HOSTINGER_CHAT2, TAG)
    gone = dataclasses.replace(request, action_id=1)
    assert api.poll_snapshot(gone).failed
    with pytest.raises(SnapshotNotVerified, match="not found"):
        api.verify_snapshot(gone)


# -- restore ---------------------------------------------------------------------------------------


def test_hostinger_restore_snapshot_posts_once_and_locks_vm(simulator: StartSimulator) -> None:
    sim = simulator(hostinger(restore_seconds=30))
    api = client(sim)
    current = api.current_snapshot(HOSTINGER_CHAT2)
    assert current is not None
    restore = api.restore_snapshot(HOSTINGER_CHAT2, current.snapshot_id)
    assert restore.restore_id and restore.state == "created"
    assert len(requests_to(sim, "POST", f"{VMS}/{HOSTINGER_CHAT2}/snapshot/restore")) == 1
    facts = api.instance_facts(HOSTINGER_CHAT2)
    assert facts.locked and facts.state == "restoring"
    [event] = sim.restore_events()
    assert str(event["action_id"]) == restore.restore_id


def test_hostinger_restore_refuses_when_snapshot_was_overwritten(simulator: StartSimulator) -> None:
    sim = simulator()
    with pytest.raises(Refused, match="its snapshot is"):
        client(sim).restore_snapshot(HOSTINGER_CHAT2, "12345")
    assert requests_to(sim, "POST", f"{VMS}/{HOSTINGER_CHAT2}/snapshot/restore") == []
