"""`opsguard health` end to end: the real CLI on real sshd hosts, thresholds crossing, a short-lived certificate
served by a local TLS server, WhatsApp channels, a restart loop, an unreachable host. Read-only proven by the
record of every SSH session's command line."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsguard.report import report_schema
from opsguard.sandbox.hosts import SandboxHosts
from opsguard.sandbox.journal import mutating_calls
from tests.integration.nightly_support import NightlyWorld, checks, new_world, tls_server, wait_a_second

pytestmark = pytest.mark.integration


@pytest.fixture
def world(fresh_hosts: SandboxHosts, tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> NightlyWorld:
    return new_world(fresh_hosts, tmp_path, isolated_environment, monkeypatch)


def df_rule(percent: int, inodes: int = 10) -> dict[str, object]:
    """Given usage percents, return a stub rule making `df` report / that full (df --output=pcent,ipcent,target)."""
    return {"prefix": ["df"], "stdout": f"Use% IUse% Mounted on\n {percent}%   {inodes}% /\n"}


def test_health_exit_zero_with_security_warning_only_when_hosts_healthy(world: NightlyWorld) -> None:
    before = world.session_counts()
    result = world.cli("health")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [f"{name}: warning: 2 security update(s) pending (curl, libcurl4): opsguard update {name}"
                                          for name in ("chat", "chat2", "ia")]
    assert world.assert_read_only_since(before) == 3
    for host in world.hosts.hosts:  # and every stubbed tool call on its own (pm2 only with its daemon up)
        assert mutating_calls(world.hosts.journal(host)) == []


def test_health_disk_warning_then_failure_as_thresholds_are_crossed(world: NightlyWorld) -> None:
    world.hosts.set_responses("chat", {"rules": [df_rule(85)]})
    code, document = world.report("health", "chat")
    assert code == 0
    assert [(item["state"], item["message"]) for item in checks(document, "chat", "disk")] == [("warning", "/ is 85% used (warning at 80%)")]
    world.hosts.set_responses("chat", {"rules": [df_rule(95, inodes=92)]})
    code, document = world.report("health", "chat")
    assert code == 1
    assert checks(document, "chat", "disk")[0]["state"] == "failed" and checks(document, "chat", "inodes")[0]["state"] == "failed"
    world.hosts.set_responses("chat", {"rules": []})
    world.set_vars("chat", disk_warn_percent=30, disk_fail_percent=35)  # the thresholds are inventory vars
    assert world.report("health", "chat")[1]["hosts"][0]["state"] == "failed"


def test_health_fails_naming_certificate_about_to_expire(world: NightlyWorld, tmp_path: Path) -> None:
    with tls_server(tmp_path, "api.chat.sandbox.test", days_left=3) as port:
        world.set_vars("chat", tls_names=["api.chat.sandbox.test"], tls_address=f"127.0.0.1:{port}")
        before = world.session_counts()
        result = world.cli("health", "chat")
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "TLS" in line]
    assert line.startswith("chat: TLS certificate of api.chat.sandbox.test expires in 3 day(s) (")
    assert world.assert_read_only_since(before) == 2  # the probe, then the certificate probe (names from .env or vars)


def test_health_warns_when_certificate_expires_within_warning_days(world: NightlyWorld, tmp_path: Path) -> None:
    with tls_server(tmp_path, "chat.sandbox.test", days_left=15) as port:
        world.set_vars("chat", tls_names=["chat.sandbox.test"], tls_address=f"127.0.0.1:{port}")
        code, document = world.report("health", "chat")
    assert code == 0
    [tls] = checks(document, "chat", "tls:chat.sandbox.test")
    assert tls["state"] == "warning" and 14 <= tls["facts"]["days_left"] <= 15


def test_health_fails_naming_each_channel_not_connected_with_its_tenant(world: NightlyWorld) -> None:
    """health reads the channels with the upgrade's probe (one sandbox model of the table): a lost session fails,
    naming the channel and its tenant; one still connecting is a warning."""
    world.hosts.set_stub_state("chat2", "channels", [
        {"id": 1, "name": "Atendimento", "type": "baileys", "tenantId": 1, "status": "CONNECTED", "since": 0.0},
        {"id": 2, "name": "Vendas", "type": "baileys", "tenantId": 3, "status": "qrcode", "since": 0.0},
        {"id": 3, "name": "Suporte", "type": "baileys", "tenantId": 2, "status": "OPENING", "since": 4.0e9},
    ])
    before = world.session_counts()
    code, document = world.report("health", "chat2")
    assert code == 1
    found = {(item["state"], item["message"]) for item in checks(document, "chat2", "whatsapp")}
    assert any(state == "failed" and "'Vendas'" in message and "tenant 3" in message and "scan the QR code" in message
               for state, message in found)
    assert ("warning", "'Suporte' (id 3, tenant 2, baileys) is OPENING (still connecting)") in found
    world.assert_read_only_since(before)
    psql = [call for call in world.hosts.commands("chat2") if "psql" in call]
    assert psql and all("PGOPTIONS=-c default_transaction_read_only=on" in call for call in psql)


def test_health_reads_a_renamed_channel_table_through_the_upgrades_var(world: NightlyWorld) -> None:
    world.hosts.set_channels("chat2", table="WhatsappsZPRO")
    code, document = world.report("health", "chat2")
    [unknown] = checks(document, "chat2", "whatsapp")
    assert (code, unknown["state"]) == (4, "unknown") and "channels_table" in unknown["message"]
    world.set_vars("chat2", channels_table="WhatsappsZPRO")
    code, document = world.report("health", "chat2")
    assert code == 0 and [item["state"] for item in checks(document, "chat2", "whatsapp")] == ["ok"]


def test_health_fails_when_pm2_process_restart_loops_since_last_run(world: NightlyWorld) -> None:
    assert world.cli("health", "chat").exit_code == 0  # records the restart counts
    wait_a_second()
    world.hosts.set_stub_state("chat", "pm2", {"zpro-backend": ["online", 7], "zpro-frontend": ["online", 1]})
    code, document = world.report("health", "chat")
    assert code == 1
    messages = {item["facts"]["process"]: (item["state"], item["message"]) for item in checks(document, "chat", "pm2")}
    assert messages["zpro-backend"][0] == "failed" and "restart-looping: 7 restarts since " in messages["zpro-backend"][1]
    assert messages["zpro-frontend"][0] == "warning"


def test_health_fails_when_container_unhealthy_or_app_stopped(world: NightlyWorld) -> None:
    world.hosts.set_stub_state("ia", "containers", {"stack-typebot-db-1": {"Health": "unhealthy"}})
    world.hosts.set_stub_state("chat", "pm2", {"zpro-frontend": ["stopped", 0]})
    result = world.cli("health", "chat", "ia")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "ia: container stack-typebot-db-1 is unhealthy" in lines
    assert "chat: zpro-frontend is stopped" in lines
    assert any(line.startswith("chat: frontend: no answer from http://localhost:4444/") for line in lines)


def test_health_exit_four_for_unreachable_host_and_still_reports_the_others(world: NightlyWorld) -> None:
    world.make_unreachable("chat2")
    result = world.cli("health")
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if "warning" not in line] == ["chat2"]
    assert sum(line.startswith(("chat: warning", "ia: warning")) for line in lines) == 2


def test_health_json_matches_schema_and_textfile_parses(world: NightlyWorld, tmp_path: Path) -> None:
    textfile = tmp_path / "opsguard_health.prom"
    code, document = world.report("health", "--textfile", str(textfile))
    assert code == 0
    jsonschema.validate(document, report_schema("opsguard health report"))
    assert document["command"] == "health" and [host["host"] for host in document["hosts"]] == ["chat", "chat2", "ia"]
    families = {family.name: family for family in text_string_to_metric_families(textfile.read_text())}
    ok = {sample.labels["host"]: sample.value for sample in families["opsguard_health_host_ok"].samples}
    assert ok == {"chat": 1, "chat2": 1, "ia": 1}
    assert "opsguard_health_value" in families and "opsguard_health_exit_code" in families
