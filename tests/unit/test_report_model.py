"""The report model shared by backup-check, audit and health, its outputs, and the monitors told about a run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsguard.errors import ConfigError, ConnectionDropped
from opsguard.notify import MonitorState, PingMonitor, WebhookMonitor, notify_all
from opsguard.report import (
    FAILED,
    OK,
    UNKNOWN,
    WARNING,
    CheckResult,
    HostResult,
    Report,
    problem_lines,
    render_table,
    render_textfile,
    report_document,
    report_schema,
    summary_line,
    unknown_from_error,
)

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def sample() -> Report:
    chat = HostResult("chat", (
        CheckResult("apt", FAILED, "2026-12-01 06:25 apt upgraded 14 packages (unattended-upgrades) — no snapshot"),
        CheckResult("unattended_upgrades", WARNING, "unattended-upgrades is enabled"),
        CheckResult("disk", OK, "/ is 40% used", {"used_percent": 40}, gauges={"used_percent:/": 40.0}),
    ))
    chat2 = HostResult("chat2", (CheckResult("disk", OK, "/ is 10% used"),))
    ia = HostResult("ia", (unknown_from_error("ssh", ConnectionDropped("host ia: connection refused")),))
    return Report("audit", NOW, (chat, chat2, ia))


def test_host_result_state_and_exit_code_are_the_worst_of_its_checks() -> None:
    chat, chat2, ia = sample().hosts
    assert (chat.state, chat.exit_code) == (FAILED, 1)
    assert (chat2.state, chat2.exit_code) == (OK, 0)
    assert (ia.state, ia.exit_code) == (UNKNOWN, 4)
    assert sample().exit_code == 1


def test_unknown_from_error_keeps_78_for_configuration_and_70_for_a_bug() -> None:
    assert unknown_from_error("ssh", ConfigError("known_hosts missing")).code == 78
    assert unknown_from_error("ssh", OSError("refused")).code == 4
    assert unknown_from_error("ssh", KeyError("x")).code == 70


def test_check_result_raises_for_unknown_state() -> None:
    with pytest.raises(ValueError, match="state 'bad'"):
        CheckResult("disk", "bad", "?")


def test_problem_lines_problems_then_warnings_escaped_one_line_each() -> None:
    hostile = HostResult("chat", (CheckResult("code", FAILED, "file evil\nchat: all good\x1b[2J changed"),))
    lines = problem_lines(Report("audit", NOW, (*sample().hosts, hostile)))
    assert lines[:3] == [
        "chat: 2026-12-01 06:25 apt upgraded 14 packages (unattended-upgrades) — no snapshot",
        "chat: warning: unattended-upgrades is enabled",
        "ia: host ia: connection refused",
    ]
    assert lines[3] == "chat: file evil\\nchat: all good\\x1b[2J changed"


def test_problem_lines_empty_when_every_check_ok() -> None:
    assert problem_lines(Report("health", NOW, (sample().hosts[1],))) == []


def test_summary_line_counts_host_states_worst_first() -> None:
    assert summary_line(sample()) == "audit: 3 hosts: 1 failed, 1 unknown, 1 ok; exit 1"


def test_render_table_one_row_per_check() -> None:
    header, *rows = render_table(sample()).splitlines()
    assert header.split() == ["HOST", "CHECK", "STATE", "MESSAGE"]
    assert len(rows) == 5
    assert rows[0].split()[:3] == ["chat", "apt", "FAILED"]


def test_report_document_matches_its_schema() -> None:
    document = report_document(sample(), exit_code=78)
    jsonschema.validate(document, report_schema("opsguard audit report"))
    assert (document["version"], document["command"], document["exit_code"]) == (2, "audit", 78)
    chat = document["hosts"][0]
    assert (chat["state"], chat["status"], len(chat["problems"]), len(chat["warnings"])) == ("failed", "failed", 1, 1)
    assert chat["checks"][2] == {"check": "disk", "state": "ok", "message": "/ is 40% used", "facts": {"used_percent": 40}}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for metric in text_string_to_metric_families(text):
        assert metric.type == "gauge" and metric.documentation
        for item in metric.samples:
            found[(item.name, tuple(sorted(item.labels.items())))] = item.value
    return found


def test_render_textfile_names_series_after_the_command() -> None:
    found = samples(render_textfile(sample()))
    assert found[("opsguard_audit_host_ok", (("host", "chat"),))] == 0
    assert found[("opsguard_audit_host_ok", (("host", "chat2"),))] == 1
    assert found[("opsguard_audit_state", (("check", "apt"), ("host", "chat"), ("state", "failed")))] == 1
    assert found[("opsguard_audit_state", (("check", "apt"), ("host", "chat"), ("state", "ok")))] == 0
    assert found[("opsguard_audit_value", (("check", "disk"), ("host", "chat"), ("name", "used_percent:/")))] == 40
    assert found[("opsguard_audit_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("opsguard_audit_exit_code", ())] == 1


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[MonitorState, int]] = []
        self.fail = fail

    def notify(self, state: MonitorState, *, exit_code: int, text: str, document: Any) -> str | None:
        self.seen.append((state, exit_code))
        if self.fail:
            raise RuntimeError("the monitor broke")
        return None


def test_notify_all_tells_every_monitor_and_turns_a_broken_one_into_a_warning() -> None:
    broken, working = Recorder(fail=True), Recorder()
    warnings = notify_all([broken, working], MonitorState.FAIL, exit_code=1)
    assert working.seen == [(MonitorState.FAIL, 1)]
    assert warnings == ["warning: monitor Recorder failed: RuntimeError"]


def test_ping_monitor_maps_states_to_healthchecks_suffixes(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsguard import notify

    sent: list[str] = []
    monkeypatch.setattr(notify, "_post", lambda url, body, content_type, timeout: sent.append(url) or 200)
    monitor = PingMonitor("https://hc.example/ping/abc")
    for state, code in ((MonitorState.START, 0), (MonitorState.FINISH, 0), (MonitorState.FAIL, 4)):
        assert monitor.notify(state, exit_code=code, text="t", document=None) is None
    assert sent == ["https://hc.example/ping/abc/start", "https://hc.example/ping/abc", "https://hc.example/ping/abc/4"]


def test_webhook_monitor_posts_only_a_failed_run_with_a_report(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsguard import notify

    sent: list[bytes] = []
    monkeypatch.setattr(notify, "_post", lambda url, body, content_type, timeout: sent.append(body) or 200)
    monitor = WebhookMonitor("https://hooks.example/x")
    monitor.notify(MonitorState.FINISH, exit_code=0, text="", document={"a": 1})
    monitor.notify(MonitorState.FAIL, exit_code=78, text="inventory", document=None)
    monitor.notify(MonitorState.FAIL, exit_code=1, text="", document={"a": 1})
    assert sent == [b'{"a": 1}']
