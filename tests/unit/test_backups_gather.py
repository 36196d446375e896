"""backup-check facts: gather_facts()/check_backups() against in-memory providers (no sockets)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

import pytest

from opsguard.backups import ReadOnlyProvider, check_backups, gather_facts
from opsguard.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderNotFound,
    ProviderUnreachable,
    ReadOnlyViolation,
)
from opsguard.inventory import Host
from opsguard.providers.base import BackupSchedule
from tests.unit.backups_fakes import (
    NOW,
    READS,
    CountingProvider,
    FakeProvider,
    SharedCounter,
    backup,
    host,
    snapshot,
)


def factory(providers: Mapping[str, FakeProvider]) -> Callable[[Host], FakeProvider]:
    def provider_for(target: Host) -> FakeProvider:
        return providers[target.name]

    return provider_for


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An Event that hung fake APIs wait on; set at teardown so no thread outlives the test for long."""
    event = threading.Event()
    yield event
    event.set()


def test_gather_facts_reads_vultr_instance_schedule_and_backups_only() -> None:
    provider = FakeProvider("vultr", backups=[backup("3h")])
    [result] = gather_facts([host("chat")], factory({"chat": provider}))
    assert sorted(provider.calls) == ["backup_schedule", "instance_facts", "list_backups"]
    assert set(result.values) == {"instance", "schedule", "backups"}
    assert result.errors == ()


def test_gather_facts_reads_hostinger_backups_and_snapshot_only() -> None:
    provider = FakeProvider("hostinger", backups=[backup("2d")], snapshot=snapshot("9d"))
    [result] = gather_facts([host("chat2", "hostinger", schedule="weekly", max_age="8d")], factory({"chat2": provider}))
    assert sorted(provider.calls) == ["current_snapshot", "list_backups"]
    assert result.values["snapshot"].snapshot_id == "8812"


def test_check_backups_never_calls_a_mutating_method() -> None:
    providers = {
        "chat": FakeProvider("vultr", backups=[backup("40h")]),
        "chat2": FakeProvider("hostinger", backups=[]),
    }
    hosts = [host("chat"), host("chat2", "hostinger", schedule="weekly", max_age="8d")]
    check_backups(hosts, factory(providers), clock=lambda: NOW)
    calls = [call for provider in providers.values() for call in provider.calls]
    assert calls and set(calls) <= READS


@pytest.mark.parametrize(
    "method", ["create_snapshot", "restore_snapshot", "poll_snapshot", "verify_snapshot", "list_instances"]
)
def test_read_only_provider_refuses_when_anything_but_a_read_is_asked(method: str) -> None:
    provider = FakeProvider("vultr")
    wrapped = ReadOnlyProvider(provider)
    with pytest.raises(ReadOnlyViolation):
        getattr(wrapped, method)
    assert provider.calls == []


def test_gather_facts_config_when_instance_not_set_and_provider_not_built() -> None:
    built: list[str] = []

    def provider_for(target: Host) -> FakeProvider:
        built.append(target.name)
        return FakeProvider()

    report = check_backups([host("chat", instance=None)], provider_for, clock=lambda: NOW)
    [result] = report.hosts
    assert (result.status, result.exit_code) == ("config", 78)
    assert result.problems == ("inventory.toml: hosts.chat.instance is not set (run 'opsguard discover')",)
    assert built == []


def test_gather_facts_config_when_host_has_no_backup_policy() -> None:
    report = check_backups([host("chat", policy=False)], factory({"chat": FakeProvider()}), clock=lambda: NOW)
    assert report.hosts[0].status == "config"
    assert "hosts.chat.backups is not set" in report.hosts[0].problems[0]


def test_check_backups_config_when_token_missing() -> None:
    def provider_for(target: Host) -> FakeProvider:
        raise ConfigError(f"VULTR_API_KEY is not set (needed for host {target.name})")

    report = check_backups([host("chat")], provider_for, clock=lambda: NOW)
    assert (report.exit_code, report.hosts[0].problems) == (78, ("VULTR_API_KEY is not set (needed for host chat)",))


def test_check_backups_config_when_token_rejected() -> None:
    error = ProviderAuthError("vultr", "GET /instances/x: Unauthorized", status=401, hint="check VULTR_API_KEY")
    provider = FakeProvider("vultr", errors={name: error for name in READS})
    report = check_backups([host("chat")], factory({"chat": provider}), clock=lambda: NOW)
    [result] = report.hosts
    assert (result.status, result.exit_code) == ("config", 78)
    assert len(result.problems) == 1  # the same rejection on every read is reported once
    assert "HTTP 401" in result.problems[0]
    assert result.problems[0].endswith("(and 2 more reads failed the same way)")


def test_check_backups_config_when_instance_does_not_exist() -> None:
    error = ProviderNotFound("hostinger", "GET /api/vps/v1/virtual-machines/9/backups: not found", status=404)
    provider = FakeProvider("hostinger", errors={"list_backups": error})
    report = check_backups(
        [host("ia", "hostinger", schedule="weekly", max_age="8d")], factory({"ia": provider}), clock=lambda: NOW
    )
    assert report.hosts[0].status == "config"
    assert report.hosts[0].problems[0].startswith("listing backups: hostinger API HTTP 404")


def test_check_backups_unreachable_when_api_down() -> None:
    error = ProviderUnreachable("vultr", "GET /backups: HTTP 503; gave up after retries", status=503)
    provider = FakeProvider("vultr", errors={name: error for name in READS})
    report = check_backups([host("chat")], factory({"chat": provider}), clock=lambda: NOW)
    [result] = report.hosts
    assert (result.status, result.exit_code, report.exit_code) == ("unreachable", 4, 4)
    assert len(result.problems) == 1


def test_check_backups_unreachable_when_network_error_escapes_the_client() -> None:
    provider = FakeProvider("vultr", errors={"list_backups": ConnectionRefusedError(111, "Connection refused")})
    report = check_backups([host("chat")], factory({"chat": provider}), clock=lambda: NOW)
    assert report.hosts[0].status == "unreachable"
    assert report.hosts[0].problems[0].startswith("listing backups: ConnectionRefusedError")


def test_check_backups_error_for_one_host_when_client_has_a_bug_and_others_still_reported() -> None:
    providers = {
        "chat": FakeProvider("vultr", errors={"list_backups": KeyError("date_created")}),
        "chat2": FakeProvider("hostinger", backups=[backup("1d")]),
    }
    hosts = [host("chat"), host("chat2", "hostinger", schedule="weekly", max_age="8d")]
    report = check_backups(hosts, factory(providers), clock=lambda: NOW)
    assert [(item.host, item.status) for item in report.hosts] == [("chat", "error"), ("chat2", "ok")]
    assert report.exit_code == 70
    assert "internal error: KeyError" in report.hosts[0].problems[0]


def test_check_backups_unreachable_when_api_hangs_past_deadline(gate: threading.Event) -> None:
    providers = {
        "chat": FakeProvider("vultr", gate=gate),
        "chat2": FakeProvider("hostinger", backups=[backup("1d")]),
    }
    hosts = [host("chat"), host("chat2", "hostinger", schedule="weekly", max_age="8d")]
    report = check_backups(hosts, factory(providers), deadline_seconds=0.3, clock=lambda: NOW)
    chat, chat2 = report.hosts
    assert (chat.status, chat.exit_code) == ("unreachable", 4)
    assert chat.problems == (
        "reading the instance: no answer from the vultr API within 300ms (run deadline)"
        " (and 2 more reads failed the same way)",
    )
    assert chat2.status == "ok"
    assert report.exit_code == 4


def test_check_backups_keeps_report_unchanged_when_answer_arrives_after_deadline(gate: threading.Event) -> None:
    provider = FakeProvider("vultr", gate=gate, backups=[backup("1h")])
    report = check_backups([host("chat")], factory({"chat": provider}), deadline_seconds=0.2, clock=lambda: NOW)
    gate.set()
    assert report.hosts[0].status == "unreachable"


def test_check_backups_bounds_hosts_and_requests_in_flight_when_many_hosts() -> None:
    counter = SharedCounter()
    providers = {
        f"h{number}": CountingProvider(counter, name="hostinger", backups=[backup("1d")], delay=0.02)
        for number in range(12)
    }
    hosts = [host(name, "hostinger", schedule="weekly", max_age="8d") for name in providers]
    report = check_backups(hosts, factory(providers), concurrency=3, clock=lambda: NOW)
    assert counter.max_hosts_in_flight <= 3
    assert counter.max_in_flight <= 3 * 2  # two reads per Hostinger host, in parallel
    assert counter.total == 24
    assert [item.status for item in report.hosts] == ["ok"] * 12


def test_check_backups_reports_hosts_in_given_order_when_answers_come_out_of_order() -> None:
    providers = {
        "slow": FakeProvider("vultr", backups=[backup("1h")], delay=0.05),
        "fast": FakeProvider("vultr", backups=[backup("1h")], schedule=BackupSchedule(False, "daily")),
    }
    report = check_backups(
        [host("slow"), host("fast", instance="5c2a3b8e-0f2c-4a55-9b8e-111111111111")],
        factory(providers),
        clock=lambda: NOW,
    )
    assert [(item.host, item.status) for item in report.hosts] == [("slow", "ok"), ("fast", "missing")]
    assert report.exit_code == 1
    assert report.checked_at == NOW


def test_check_backups_exit_zero_when_no_hosts() -> None:
    report = check_backups([], factory({}), clock=lambda: NOW)
    assert (report.exit_code, report.hosts) == (0, ())


def test_check_backups_reports_each_distinct_failure_when_reads_fail_differently() -> None:
    provider = FakeProvider(
        "vultr",
        errors={
            "instance_facts": ProviderUnreachable("vultr", "GET /instances/x: HTTP 503", status=503),
            "list_backups": ProviderUnreachable("vultr", "GET /backups: HTTP 503", status=503),
            "backup_schedule": ProviderAuthError("vultr", "GET /instances/x/backup-schedule: forbidden", status=403),
        },
    )
    report = check_backups([host("chat")], factory({"chat": provider}), clock=lambda: NOW)
    [result] = report.hosts
    assert (result.status, result.exit_code) == ("config", 78)
    assert len(result.problems) == 2
    assert result.problems[0].startswith("reading the instance: vultr API HTTP 503")
    assert result.problems[0].endswith("(and 1 more reads failed the same way)")
    assert result.problems[1].startswith("reading the backup schedule: vultr API HTTP 403")
