"""The Vultr client against the simulator on loopback: pages, retries, the one POST, states, verification."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from opsguard.errors import ProviderAuthError, ProviderNotFound, ProviderUnreachable, SnapshotNotVerified
from opsguard.providers.http import AmbiguousRequest
from opsguard.providers.vultr import VultrClient
from opsguard.sandbox.simulator import Simulator
from tests.fixtures.simulator_fixtures import VULTR_CHAT, fast_client_options, poll_until_settled

TAG = f"opsguard:chat:{VULTR_CHAT}:run-test-1"
StartSimulator = Callable[..., Simulator]


def client(sim: Simulator, *, token: str | None = None, sleeps: list[float] | None = None) -> VultrClient:
    return VultrClient(sim.vultr_url, token or sim.env()["VULTR_API_KEY"], **fast_client_options(sleeps))


def vultr(faults: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {"vultr": {"snapshot_seconds": 0.1, **settings, "faults": faults or {}}}


def requests_to(sim: Simulator, method: str, path: str) -> list[dict[str, Any]]:
    return [entry for entry in sim.journal() if entry["api"] == "vultr" and entry["method"] == method and entry["path"] == path]


# -- instances -------------------------------------------------------------------------------------


def test_vultr_instance_facts_ready_when_active_running_ok(simulator: StartSimulator) -> None:
    facts = client(simulator()).instance_facts(VULTR_CHAT)
    assert facts.running and not facts.locked and facts.ready_for_snapshot
    assert facts.public_ips == ("127.0.0.2",)
    assert facts.state == "active/running/ok"
    assert facts.backups_enabled is True
    assert facts.label == "chat"


def test_vultr_instance_facts_locked_when_server_status_locked(simulator: StartSimulator) -> None:
    sim = simulator()
    sim.update_instance("vultr", VULTR_CHAT, server_status="locked")
    facts = client(sim).instance_facts(VULTR_CHAT)
    assert facts.locked and not facts.ready_for_snapshot


def test_vultr_instance_facts_locked_when_api_answers_500_locked(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"locked_500": True}))
    facts = client(sim).instance_facts(VULTR_CHAT)
    assert facts.locked and not facts.ready_for_snapshot
    # a "locked" 500 is an answer, not an outage: it is not retried
    assert len(requests_to(sim, "GET", f"/instances/{VULTR_CHAT}")) == 1


def test_vultr_instance_facts_not_ready_when_powered_off(simulator: StartSimulator) -> None:
    sim = simulator()
    sim.update_instance("vultr", VULTR_CHAT, power_status="stopped")
    facts = client(sim).instance_facts(VULTR_CHAT)
    assert not facts.running and not facts.ready_for_snapshot


def test_vultr_instance_facts_unknown_id_raises_not_found(simulator: StartSimulator) -> None:
    with pytest.raises(ProviderNotFound) as caught:
        client(simulator()).instance_facts("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404
    assert "Invalid instance-id" in str(caught.value)


def test_vultr_list_instances_reads_every_cursor_page(simulator: StartSimulator) -> None:
    extra = [
        {"id": f"00000000-0000-4000-8000-00000000000{index}", "label": f"extra{index}", "main_ip": f"10.0.0.{index}"}
        for index in range(1, 6)
    ]
    sim = simulator(vultr(page_size=2, instances=extra))
    facts = client(sim).list_instances()
    assert len(facts) == 6
    assert {item.label for item in facts} == {"chat", "extra1", "extra2", "extra3", "extra4", "extra5"}
    assert len(requests_to(sim, "GET", "/instances")) == 3


# -- backups ---------------------------------------------------------------------------------------


def test_vultr_list_backups_reads_three_or_more_pages(simulator: StartSimulator) -> None:
    ages = ["1h", "25h", "49h", "73h", "97h", "121h"]
    sim = simulator(vultr(page_size=2, instances=[{"id": VULTR_CHAT, "backups": ages}]))
    backups = client(sim).list_backups(VULTR_CHAT)
    pages = requests_to(sim, "GET", "/backups")
    assert len(pages) >= 3
    assert all(page["query"]["instance_id"] == VULTR_CHAT for page in pages)
    assert len(backups) == 6
    assert len({backup.backup_id for backup in backups}) == 6
    newest = max(backup.created_at for backup in backups if backup.created_at)
    assert datetime.now(UTC) - newest < timedelta(hours=1, minutes=5)
    assert all(backup.complete and backup.size and backup.size > 0 for backup in backups)


def test_vultr_list_backups_marks_pending_backup_incomplete(simulator: StartSimulator) -> None:
    backups = [{"age": "1h", "status": "pending"}, {"age": "25h"}]
    sim = simulator(vultr(instances=[{"id": VULTR_CHAT, "backups": backups}]))
    listed = client(sim).list_backups(VULTR_CHAT)
    assert sorted(backup.complete for backup in listed) == [False, True]


def test_vultr_backup_schedule_daily_enabled(simulator: StartSimulator) -> None:
    schedule = client(simulator()).backup_schedule(VULTR_CHAT)
    assert schedule is not None
    assert schedule.enabled is True
    assert schedule.kind == "daily"
    assert schedule.next_run is not None and schedule.next_run.tzinfo is not None
    assert schedule.next_run > datetime.now(UTC)


def test_vultr_backup_schedule_missing_enabled_means_not_enabled(simulator: StartSimulator) -> None:
    schedule_spec = {"enabled": None, "type": "weekly", "hour": 2}  # null: the simulator leaves the field out
    sim = simulator(vultr(instances=[{"id": VULTR_CHAT, "backup_schedule": schedule_spec}]))
    raw = requests.get(
        f"{sim.vultr_url}/instances/{VULTR_CHAT}/backup-schedule",
        headers={"Authorization": f"Bearer {sim.env()['VULTR_API_KEY']}"},
        timeout=5,
    ).json()
    assert "enabled" not in raw["backup_schedule"]
    schedule = client(sim).backup_schedule(VULTR_CHAT)
    assert schedule is not None
    assert schedule.enabled is False
    assert schedule.kind == "weekly"


def test_vultr_dates_parse_in_space_form_as_utc(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"date_style": "space"}))
    raw = requests.get(
        f"{sim.vultr_url}/backups",
        params={"instance_id": VULTR_CHAT},
        headers={"Authorization": f"Bearer {sim.env()['VULTR_API_KEY']}"},
        timeout=5,
    ).json()
    assert " " in raw["backups"][0]["date_created"] and "+" not in raw["backups"][0]["date_created"]
    backups = client(sim).list_backups(VULTR_CHAT)
    created = [backup.created_at for backup in backups]
    assert all(moment is not None and moment.tzinfo is not None for moment in created)
    # "5h" old in the scenario: read as UTC, it is about 5 hours old (not shifted by a local zone)
    newest = max(moment for moment in created if moment)
    assert timedelta(hours=4, minutes=55) < datetime.now(UTC) - newest < timedelta(hours=5, minutes=5)


def test_vultr_dates_parse_in_iso_offset_form(simulator: StartSimulator) -> None:
    backups = client(simulator()).list_backups(VULTR_CHAT)
    assert all(backup.created_at and backup.created_at.tzinfo is not None for backup in backups)


# -- retries ---------------------------------------------------------------------------------------


def test_vultr_get_retries_5xx_then_succeeds(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"fail_first": 2}))
    facts = client(sim).instance_facts(VULTR_CHAT)
    assert facts.running
    statuses = [entry["status"] for entry in requests_to(sim, "GET", f"/instances/{VULTR_CHAT}")]
    assert statuses == [503, 503, 200]


def test_vultr_get_gives_up_as_unreachable_when_5xx_persists(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"fail_first": 50}))
    with pytest.raises(ProviderUnreachable) as caught:
        client(sim).instance_facts(VULTR_CHAT)
    assert caught.value.status == 503
    assert caught.value.exit_code == 4
    assert "gave up after 5 attempts" in str(caught.value)
    assert len(requests_to(sim, "GET", f"/instances/{VULTR_CHAT}")) == 5


def test_vultr_429_honours_retry_after_and_eventually_succeeds(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"rate_limit_every": 2, "retry_after": "3"}))
    sleeps: list[float] = []
    api = client(sim, sleeps=sleeps)
    assert api.instance_facts(VULTR_CHAT).running  # request 1: ok
    assert api.instance_facts(VULTR_CHAT).running  # request 2: 429, request 3: ok
    assert sleeps == [3.0]
    statuses = [entry["status"] for entry in requests_to(sim, "GET", f"/instances/{VULTR_CHAT}")]
    assert statuses == [200, 429, 200]


def test_vultr_unreachable_api_raises_provider_unreachable() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = VultrClient(f"http://127.0.0.1:{port}/v2", "token", **fast_client_options())
    with pytest.raises(ProviderUnreachable) as caught:
        api.list_instances()
    assert "Connection refused" in str(caught.value)
    assert caught.value.exit_code == 4


# -- auth ------------------------------------------------------------------------------------------


def test_vultr_401_raises_auth_error_naming_variable_and_ip_access_list(simulator: StartSimulator) -> None:
    sim = simulator()
    with pytest.raises(ProviderAuthError) as caught:
        client(sim, token="wrong-token").list_instances()
    message = str(caught.value)
    assert caught.value.status == 401
    assert caught.value.exit_code == 78
    assert "VULTR_API_KEY" in message
    assert "access control list" in message
    assert "Invalid API token" in message
    assert len(requests_to(sim, "GET", "/instances")) == 1  # a refused token is not retried


# -- snapshots -------------------------------------------------------------------------------------


def test_vultr_snapshot_completes_and_verifies(simulator: StartSimulator) -> None:
    sim = simulator(vultr())
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert request.snapshot_id and not request.recovered
    assert api.current_snapshot(VULTR_CHAT) is None
    progress = poll_until_settled(api, request)
    assert progress.finished and not progress.failed
    verified = api.verify_snapshot(request)
    assert verified.snapshot.snapshot_id == request.snapshot_id
    assert verified.snapshot.size and verified.snapshot.size > 0
    assert verified.snapshot.description == TAG
    posts = requests_to(sim, "POST", "/snapshots")
    assert [post["body"] for post in posts] == [{"instance_id": VULTR_CHAT, "description": TAG}]
    [event] = sim.snapshot_events()
    assert event["snapshot_id"] == request.snapshot_id
    assert event["state"] == "complete" and event["completed_at"] is not None


def test_vultr_snapshot_pending_is_not_finished(simulator: StartSimulator) -> None:
    sim = simulator(vultr(snapshot_seconds=30))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    progress = api.poll_snapshot(request)
    assert progress.state == "pending"
    assert not progress.finished and not progress.failed
    with pytest.raises(SnapshotNotVerified, match="'pending', not 'complete'"):
        api.verify_snapshot(request)


@pytest.mark.parametrize("lost", ["drop", "5xx"])
def test_vultr_snapshot_post_lost_answer_creates_one_snapshot_and_recovers_it(simulator: StartSimulator, lost: str) -> None:
    sim = simulator(vultr({"post_lost": lost}))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert request.recovered is True
    assert len(requests_to(sim, "POST", "/snapshots")) == 1
    [event] = sim.snapshot_events()
    assert request.snapshot_id == event["snapshot_id"]
    lookups = requests_to(sim, "GET", "/snapshots")
    assert lookups and all(entry["query"]["description"] == TAG for entry in lookups)
    assert poll_until_settled(api, request).finished
    assert api.verify_snapshot(request).snapshot.snapshot_id == event["snapshot_id"]


def test_vultr_snapshot_post_5xx_before_creation_says_may_or_may_not_exist(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"fail_first": 1, "fault_methods": ["POST"]}))
    with pytest.raises(AmbiguousRequest) as caught:
        client(sim).create_snapshot(VULTR_CHAT, TAG)
    assert "may or may not exist" in str(caught.value)
    assert caught.value.exit_code == 4
    assert len(requests_to(sim, "POST", "/snapshots")) == 1
    assert sim.snapshot_events() == []


def test_vultr_snapshot_post_on_locked_instance_is_refused_by_api_and_not_resent(simulator: StartSimulator) -> None:
    sim = simulator()
    sim.update_instance("vultr", VULTR_CHAT, server_status="locked")
    with pytest.raises(AmbiguousRequest, match="locked"):
        client(sim).create_snapshot(VULTR_CHAT, TAG)
    assert len(requests_to(sim, "POST", "/snapshots")) == 1
    assert sim.snapshot_events() == []


def test_vultr_snapshot_stuck_is_never_finished(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"snapshot": "stuck"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    progress = poll_until_settled(api, request, seconds=0.3)
    assert progress.state == "pending"
    assert not progress.finished and not progress.failed
    with pytest.raises(SnapshotNotVerified):
        api.verify_snapshot(request)


def test_vultr_snapshot_unknown_state_is_never_finished_nor_verified(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"snapshot": "unknown_state"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    time.sleep(0.1)
    progress = poll_until_settled(api, request, seconds=0.2)
    assert progress.state not in ("pending", "complete", "deleted")
    assert not progress.finished and not progress.failed
    assert "unknown status" in progress.detail
    with pytest.raises(SnapshotNotVerified, match="not 'complete'"):
        api.verify_snapshot(request)


def test_vultr_snapshot_zero_size_fails_verification(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"snapshot": "zero_size"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert poll_until_settled(api, request).finished
    with pytest.raises(SnapshotNotVerified, match=r"size is 0 \(must be > 0\)"):
        api.verify_snapshot(request)


def test_vultr_snapshot_error_is_failed_and_fails_verification(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"snapshot": "error"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    progress = poll_until_settled(api, request)
    assert progress.failed and not progress.finished
    assert progress.state == "deleted"
    with pytest.raises(SnapshotNotVerified, match="'deleted', not 'complete'"):
        api.verify_snapshot(request)


def test_vultr_snapshot_gone_404_is_failed(simulator: StartSimulator) -> None:
    sim = simulator()
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    deleted = requests.delete(
        f"{sim.vultr_url}/snapshots/{request.snapshot_id}",
        headers={"Authorization": f"Bearer {sim.env()['VULTR_API_KEY']}"},
        timeout=5,
    )
    assert deleted.status_code == 204
    progress = api.poll_snapshot(request)
    assert progress.failed and not progress.finished
    with pytest.raises(SnapshotNotVerified, match="not found"):
        api.verify_snapshot(request)


def test_vultr_snapshot_without_our_tag_fails_verification(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"snapshot": "untagged"}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert poll_until_settled(api, request).finished
    with pytest.raises(SnapshotNotVerified, match="does not carry our tag"):
        api.verify_snapshot(request)


def test_vultr_snapshot_missing_compressed_size_is_fine(simulator: StartSimulator) -> None:
    sim = simulator(vultr({"omit_optional": True}, snapshot_seconds=0.05))
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert poll_until_settled(api, request).finished
    assert api.verify_snapshot(request).snapshot.size
    raw_lookup = [entry for entry in sim.journal() if entry["path"] == f"/snapshots/{request.snapshot_id}"]
    assert raw_lookup and raw_lookup[-1]["status"] == 200


# -- restore ---------------------------------------------------------------------------------------


def test_vultr_restore_snapshot_posts_once_and_locks_instance(simulator: StartSimulator) -> None:
    sim = simulator(vultr())
    api = client(sim)
    request = api.create_snapshot(VULTR_CHAT, TAG)
    assert poll_until_settled(api, request).finished
    assert request.snapshot_id is not None
    restore = api.restore_snapshot(VULTR_CHAT, request.snapshot_id)
    assert restore.state == "inprogress"
    assert restore.restore_id == request.snapshot_id
    posts = requests_to(sim, "POST", f"/instances/{VULTR_CHAT}/restore")
    assert [post["body"] for post in posts] == [{"snapshot_id": request.snapshot_id}]
    assert api.instance_facts(VULTR_CHAT).locked
    [event] = sim.restore_events()
    assert event["restore_id"] == request.snapshot_id
