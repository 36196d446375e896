"""health's judgement, pure: what the probes printed, against the thresholds of the host's vars."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from opsguard import health
from opsguard.hostfacts import CHANNEL_COLUMNS_MARK, CHANNEL_ROWS_MARK
from opsguard.inventory import Host
from opsguard.probes import SectionOutput
from opsguard.report import FAILED, OK, UNKNOWN, WARNING

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CHAT = Host(name="chat", address="127.0.0.2", port=22, user="root", provider="vultr", instance=None, roles=("zpro",),
            remote_lock="/run/lock/opsguard", backups=None)
IA = Host(name="ia", address="127.0.0.4", port=22, user="root", provider="hostinger", instance=None,
          roles=("integrations",), remote_lock="/run/lock/opsguard", backups=None)
FREE = """               total        used        free      shared  buff/cache   available
Mem:      8589934592  2317352960  3271557120    63963136  3001024512  5872025600
Swap:     4294967296           0  4294967296
"""
PM2 = [{"name": name, "pm2_env": {"status": "online", "restart_time": 2, "pm_uptime": 1}} for name in ("zpro-backend", "zpro-frontend")]
CONTAINERS = ("/postgresql|2024-11-25T02:59:58Z|sha256:a|postgres:14.11|running|2024-11-25T03:00:00Z|0|always|{\"Status\":\"healthy\"}\n"
              "/redis-zpro|2024-11-25T02:59:58Z|sha256:b|redis:7.2.4|running|2024-11-25T03:00:00Z|0|always|null\n")

CHANNEL_PROBE = f"{CHANNEL_COLUMNS_MARK}\nid\nname\nstatus\ntype\ntenantId\n{CHANNEL_ROWS_MARK}\n1|CONNECTED|baileys|1|Atendimento\n"


def sections(**texts: str) -> dict[str, SectionOutput]:
    base = {"clock": f"{int(NOW.timestamp())}\n+0000\n", "disk": "Use% IUse% Mounted on\n 40%   10% /\n",
            "memory": FREE, "security": "", "reboot": "not-required", "containers": CONTAINERS, "pm2": json.dumps(PM2),
            "env": "", "http_backend": "404", "http_frontend": "200", "whatsapp": CHANNEL_PROBE}
    base.update(texts)
    return {name.replace("http_", "http:").replace("tls_", "tls:"): SectionOutput(text, 0) for name, text in base.items()}


def checked(host: Host = CHAT, variables: dict[str, Any] | None = None, previous: dict[str, Any] | None = None,
            tls: tuple[tuple[str, str], ...] = (), **texts: str) -> health.HealthOutcome:
    settings = health.health_params(host, {**health.VARS, **(variables or {})})
    return health.evaluate_host(host, settings, sections(**texts), tls, previous)


def states(outcome: health.HealthOutcome, check: str) -> list[tuple[str, str]]:
    return [(item.state, item.message) for item in outcome.result.checks if item.check == check]


def test_health_ok_when_everything_is_within_thresholds() -> None:
    outcome = checked()
    assert outcome.result.exit_code == 0
    assert {item.state for item in outcome.result.checks} == {OK}


def test_health_disk_warns_then_fails_as_usage_crosses_thresholds() -> None:
    assert states(checked(disk="Use% IUse% Mounted on\n 85%   10% /\n"), "disk") == [(WARNING, "/ is 85% used (warning at 80%)")]
    assert states(checked(disk="Use% IUse% Mounted on\n 95%   91% /\n"), "disk") == [(FAILED, "/ is 95% used (failing at 90%)")]
    assert states(checked(disk="Use% IUse% Mounted on\n 95%   91% /\n"), "inodes")[0][0] == FAILED
    assert states(checked(variables={"disk_warn_percent": 30}), "disk")[0][0] == WARNING  # a var moves the threshold


def test_health_memory_and_swap_thresholds() -> None:
    low = FREE.replace("5872025600", "300000000").replace("Swap:     4294967296           0  4294967296",
                                                          "Swap:     4294967296  4000000000   294967296")
    outcome = checked(memory=low)
    assert states(outcome, "memory")[0][0] == FAILED
    assert states(outcome, "swap") == [(FAILED, "93% of 4.0 GiB swap used (failing at 90%)")]


def test_health_pm2_restart_loop_since_last_run_fails_and_a_restart_warns() -> None:
    previous = {"time": "2026-12-01T03:00:00.000Z", "pm2": {"zpro-backend": 2, "zpro-frontend": 1}}
    looping = [dict(PM2[0], pm2_env={"status": "online", "restart_time": 9}), PM2[1]]
    outcome = checked(previous=previous, pm2=json.dumps(looping))
    pm2 = dict((message.split()[0], (state, message)) for state, message in states(outcome, "pm2"))
    assert pm2["zpro-backend"] == (FAILED, "zpro-backend is restart-looping: 7 restarts since 2026-12-01T03:00:00.000Z (failing from 5)")
    assert pm2["zpro-frontend"][0] == WARNING
    assert outcome.record == {"state": FAILED, "pm2": {"zpro-backend": 9, "zpro-frontend": 2}}


def test_health_pm2_fails_when_daemon_not_running_or_process_stopped() -> None:
    assert states(checked(pm2="pm2_not_running"), "pm2")[0][0] == FAILED
    stopped = [dict(PM2[0], pm2_env={"status": "stopped", "restart_time": 2}), PM2[1]]
    assert (FAILED, "zpro-backend is stopped") in states(checked(pm2=json.dumps(stopped)), "pm2")


def test_health_containers_fail_when_unhealthy_exited_or_missing() -> None:
    text = CONTAINERS.replace('{"Status":"healthy"}', '{"Status":"unhealthy","Log":[{"Output":"a|b"}]}')
    assert (FAILED, "container postgresql is unhealthy") in states(checked(containers=text), "containers")
    exited = CONTAINERS.replace("redis:7.2.4|running", "redis:7.2.4|exited")
    assert (FAILED, "container redis-zpro is exited (restart policy always)") in states(checked(containers=exited), "containers")
    only_db = CONTAINERS.splitlines()[0]
    assert (FAILED, "container redis-zpro does not exist") in states(checked(containers=only_db), "containers")


def channel_probe(*rows: str, columns: tuple[str, ...] = ("id", "name", "session", "status", "type", "tenantId")) -> str:
    """What the shared channel probe (the upgrade's, opsguard/playbooks/common.py) prints: columns, then id|status|type|tenant|name."""
    return "\n".join([CHANNEL_COLUMNS_MARK, *columns, CHANNEL_ROWS_MARK, *rows]) + "\n"


def test_health_whatsapp_channels_by_status_name_tenant_and_what_to_do() -> None:
    probe = channel_probe("1|CONNECTED|baileys|1|Atendimento", "2|DISCONNECTED|baileys|1|Vendas",
                          "3|qrcode|baileys|2|Suporte", "4|OPENING|baileys|2|Novo")
    found = states(checked(whatsapp=probe), "whatsapp")
    assert (OK, "1 of 4 WhatsApp channel(s) connected") in found
    [vendas] = [message for state, message in found if state == FAILED and "'Vendas'" in message]
    assert "tenant 1" in vendas and "DISCONNECTED: reconnect it in Zpro" in vendas
    [suporte] = [message for state, message in found if state == FAILED and "'Suporte'" in message]
    assert "tenant 2" in suporte and "must scan the QR code again" in suporte
    assert (WARNING, "'Novo' (id 4, tenant 2, baileys) is OPENING (still connecting)") in found


def test_health_whatsapp_missing_table_is_unknown_naming_the_var() -> None:
    """Zpro renames its models: a table the probe cannot find is "cannot tell" (exit 4), naming the var to set."""
    [(state, message)] = states(checked(whatsapp=channel_probe(columns=())), "whatsapp")
    assert state == UNKNOWN and "no table 'Whatsapps'" in message and "channels_table" in message


def test_health_whatsapp_reads_the_upgrades_channel_vars() -> None:
    """One set of vars names the channel table for the upgrade and for health: set once per host."""
    renamed = health.health_params(CHAT, {**health.VARS, "channels_table": "WhatsappsZPRO", "channel_tenant_column": "tenant"})
    [section] = [section for section in health.probe_sections(renamed) if section.name == "whatsapp"]
    assert 'from "WhatsappsZPRO"' in section.body and '"tenant"' in section.body
    none = health.health_params(CHAT, {**health.VARS, "channels_table": ""})
    assert not [section for section in health.probe_sections(none) if section.name == "whatsapp"]


def test_health_whatsapp_unknown_when_query_fails() -> None:
    settings = health.health_params(CHAT, dict(health.VARS))
    failing = sections()
    failing["whatsapp"] = SectionOutput('ERROR:  could not connect to server', 2)
    outcome = health.evaluate_host(CHAT, settings, failing)
    assert states(outcome, "whatsapp") == [(UNKNOWN, "the channel query failed: ERROR:  could not connect to server")]
    assert outcome.result.exit_code == 4


def test_health_whatsapp_unknown_naming_the_id_column_when_channel_ids_repeat() -> None:
    """channel_id_column naming a column that is not unique: one row would hide the other, so health cannot tell."""
    probe = channel_probe("1|qrcode|baileys|1|Atendimento", "1|CONNECTED|baileys|1|Vendas")

    [(state, message)] = states(checked(whatsapp=probe), "whatsapp")

    assert state == UNKNOWN and "channel id 1 is in 2 rows" in message and "channel_id_column" in message


def test_health_certificate_days_left() -> None:
    soon = (NOW + timedelta(days=3)).strftime("%b %d %H:%M:%S %Y GMT")
    later = (NOW + timedelta(days=15)).strftime("%b %d %H:%M:%S %Y GMT")
    outcome = checked(tls=(("api.chat.example.com", "127.0.0.1:8443"), ("chat.example.com", "127.0.0.1:8443"),
                           ("old.example.com", "old.example.com:443")),
                      tls_0=f"notAfter={soon}", tls_1=f"notAfter={later}", tls_2="Could not read certificate from <stdin>")
    assert states(outcome, "tls:api.chat.example.com")[0] == (FAILED, f"TLS certificate of api.chat.example.com expires in 3 day(s) ({(NOW + timedelta(days=3)).strftime('%Y-%m-%dT%H:%M:%SZ')})")
    assert states(outcome, "tls:chat.example.com")[0][0] == WARNING
    assert states(outcome, "tls:old.example.com") == [(FAILED, "cannot read the TLS certificate of old.example.com from old.example.com:443")]


def test_health_tls_targets_from_env_urls_and_inventory_names() -> None:
    settings = health.health_params(CHAT, {**health.VARS, "tls_names": ["n8n.example.com"], "tls_address": ""})
    env = "BACKEND_URL=https://api.chat.example.com;\nFRONTEND_URL=https://chat.example.com:8443\nPORT=3000\n"
    assert health.tls_targets(settings, env) == [("n8n.example.com", "n8n.example.com:443"),
                                                 ("api.chat.example.com", "api.chat.example.com:443"),
                                                 ("chat.example.com:8443", "chat.example.com:8443")]


def test_health_http_endpoints_by_role() -> None:
    assert states(checked(http_frontend="000"), "http:frontend")[0][0] == FAILED
    assert states(checked(http_backend="502"), "http:backend")[0][0] == OK  # the backend only has to answer
    outcome = checked(IA, containers="", http_n8n="503", http_typebot="200")
    assert states(outcome, "http:n8n") == [(FAILED, "n8n: http://localhost:5678/healthz/readiness answered HTTP 503 (expected 200)")]
    assert states(outcome, "http:typebot")[0][0] == OK
    assert not states(outcome, "pm2") and not states(outcome, "whatsapp")


def test_health_warns_about_security_updates_and_reboot_required() -> None:
    security = ("Inst curl [7.88.1-10+deb12u5] (7.88.1-10+deb12u8 Debian-Security:12/stable-security [amd64])\n"
                "Inst openssl [3.0.11-1~deb12u2] (3.0.15-1~deb12u1 Debian:12.8/stable [amd64])\n")
    outcome = checked(security=security, reboot="required\nlinux-image-6.8.0-49-generic\n")
    assert states(outcome, "security_updates") == [(WARNING, "1 security update(s) pending (curl): opsguard update chat")]
    assert states(outcome, "reboot_required") == [(WARNING, "a reboot is required by linux-image-6.8.0-49-generic: "
                                                            "opsguard update chat --allow-reboot")]
    assert outcome.result.exit_code == 0
