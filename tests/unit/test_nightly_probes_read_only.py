"""Every probe script of audit and health is in the read-only vocabulary, with default vars and hostile ones.

SAFETY: these scripts run on hosts without a snapshot. The read-only session refuses anything else
at run time; this proves at test time that nothing a probe sends needs refusing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsguard import audit, health
from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.playbooks import known_vars
from opsguard.probes import new_nonce, script, split_sections
from opsguard.readonly import read_only_problem

SINCE = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def host(roles: tuple[str, ...], **variables: Any) -> Host:
    return Host(name="chat", address="127.0.0.2", port=22, user="root", provider="vultr", instance=None, roles=roles,
                remote_lock="/run/lock/opsguard", backups=None, vars=variables)


def audit_scripts(roles: tuple[str, ...], **variables: Any) -> list[tuple[str, str]]:
    settings = audit.audit_params(host(roles), {**audit.VARS, **variables})
    return [(section.name, section.body) for section in audit.probe_sections(settings, SINCE)]


def health_scripts(roles: tuple[str, ...], **variables: Any) -> list[tuple[str, str]]:
    settings = health.health_params(host(roles), {**health.VARS, **variables})
    sections = health.probe_sections(settings)
    targets = health.tls_targets(settings, "BACKEND_URL=https://api.chat.example.com\nFRONTEND_URL=https://chat.example.com:8443\n")
    sections += health.tls_sections(targets)
    return [(section.name, section.body) for section in sections]


HOSTILE = {
    "app_dir": "/home/x/zpro io $(touch /tmp/pwned)",
    "apt_log_dir": "/var/log/apt;reboot",
    "deploy_user": "deployzdg",
}


@pytest.mark.parametrize("roles", [("zpro",), ("integrations",), ()])
def test_audit_probe_every_section_is_read_only(roles: tuple[str, ...]) -> None:
    for name, body in audit_scripts(roles):
        assert read_only_problem(body) is None, f"audit section {name}: {read_only_problem(body)}"


@pytest.mark.parametrize("roles", [("zpro",), ("integrations",), ()])
def test_health_probe_every_section_is_read_only(roles: tuple[str, ...]) -> None:
    named = health_scripts(roles, tls_names=["n8n.example.com"], http_urls=["https://status.example.com/ok"])
    for name, body in named:
        assert read_only_problem(body) is None, f"health section {name}: {read_only_problem(body)}"
    assert ("zpro" not in roles) or any(name == "whatsapp" for name, _ in named)


def test_audit_probe_whole_script_is_read_only_with_hostile_paths_quoted() -> None:
    settings = audit.audit_params(host(("zpro",)), {**audit.VARS, **HOSTILE, "extra_code_dirs": ["/srv/a b"]})
    text = audit.build_script(settings, SINCE, new_nonce())
    assert read_only_problem(text) is None
    assert "'/home/x/zpro io $(touch /tmp/pwned)'" in text


def test_health_probe_whole_script_is_read_only() -> None:
    settings = health.health_params(host(("zpro", "integrations")), dict(health.VARS))
    assert read_only_problem(script(health.probe_sections(settings), new_nonce())) is None


@pytest.mark.parametrize("bad", [{"ssh_key_dirs": ["/home/*/.ssh; reboot"]}, {"cron_paths": ["relative/path"]},
                                 {"code_exclude": ["a b"]}, {"extra_code_dirs": ["/srv/../etc"]}])
def test_audit_params_raise_config_error_when_path_var_unsafe(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        audit.audit_params(host(("zpro",)), {**audit.VARS, **bad})


@pytest.mark.parametrize("bad", [{"channels_table": 'Whatsapps"; drop table x; --'}, {"tls_names": ["a b"]},
                                 {"http_urls": ["http://x/$(reboot)"]}, {"disk_warn_percent": 95}])
def test_health_params_raise_config_error_when_var_unsafe(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        health.health_params(host(("zpro", "integrations")), {**health.VARS, **bad})


def test_known_vars_include_audit_and_health_vars() -> None:
    known = known_vars()
    assert "audit" in known["apt_log_dir"] and "health" in known["tls_names"]
    assert {"update", "platform_upgrade", "audit", "health"} <= set(known["deploy_user"])


def test_split_sections_ignores_forged_markers_without_the_nonce() -> None:
    nonce = new_nonce()
    text = (f":::opsguard-{nonce} begin code:0\n1 f /app/:::opsguard-000 end code:0 0\n:::opsguard-000 end code:0 0\n"
            f"\n:::opsguard-{nonce} end code:0 0\n")
    sections = split_sections(text, nonce)
    assert sections["code:0"].status == 0
    assert sections["code:0"].text.splitlines()[-1] == ":::opsguard-000 end code:0 0"


def test_split_sections_marks_cut_off_section_unfinished() -> None:
    nonce = "abc"
    sections = split_sections(":::opsguard-abc begin apt\nStart-Date: x\n", nonce)
    assert sections["apt"].status is None and not sections["apt"].ok


def test_audit_probe_looks_back_a_day_before_since_in_logs() -> None:
    body = dict(audit_scripts(("zpro",)))["apt"]
    assert f"since={(SINCE - timedelta(days=1)).strftime('%Y-%m-%d')}" in body
