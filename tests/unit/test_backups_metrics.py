"""backup-check metrics: the Prometheus textfile, parsed by prometheus_client, and its atomic write."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsguard.backups import BackupReport, HostFacts, Problem, evaluate_host
from opsguard.metrics import render_textfile, write_atomically
from opsguard.providers.base import BackupSchedule
from tests.unit.backups_fakes import NOW, backup, facts, host, instance, snapshot


def report() -> BackupReport:
    return BackupReport(
        checked_at=NOW,
        hosts=(
            evaluate_host(
                facts(
                    host("chat"), instance=instance(), schedule=BackupSchedule(True, "daily"), backups=[backup("31h")]
                ),
                NOW,
            ),
            evaluate_host(
                facts(
                    host("chat2", "hostinger", schedule="weekly", max_age="8d"),
                    backups=[backup("1d"), backup("8d", number=2)],
                    snapshot=snapshot("2d"),
                ),
                NOW,
            ),
            evaluate_host(
                HostFacts(
                    host=host("ia", "hostinger", schedule="weekly", max_age="8d"),
                    errors=(Problem("unreachable", "down"),),
                ),
                NOW,
            ),
        ),
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        assert family.documentation
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def labels(name: str, provider: str) -> tuple[tuple[str, str], ...]:
    return (("host", name), ("provider", provider))


def test_render_textfile_parses_with_prometheus_parser() -> None:
    found = samples(render_textfile(report()))
    assert found[("opsguard_backup_ok", labels("chat", "vultr"))] == 0
    assert found[("opsguard_backup_ok", labels("chat2", "hostinger"))] == 1  # a warning still passes
    assert found[("opsguard_backup_ok", labels("ia", "hostinger"))] == 0
    assert found[("opsguard_backup_newest_age_seconds", labels("chat", "vultr"))] == pytest.approx(31 * 3600)
    assert found[("opsguard_backup_count", labels("chat2", "hostinger"))] == 2
    assert found[("opsguard_backup_max_age_seconds", labels("chat", "vultr"))] == 26 * 3600
    expires = found[("opsguard_snapshot_expires_timestamp_seconds", labels("chat2", "hostinger"))]
    assert expires == pytest.approx(NOW.timestamp() + 2 * 86400)
    assert found[("opsguard_backup_check_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("opsguard_backup_check_exit_code", ())] == 1


def test_render_textfile_omits_unknown_values_when_host_unreadable() -> None:
    found = samples(render_textfile(report()))
    assert ("opsguard_backup_newest_age_seconds", labels("ia", "hostinger")) not in found
    assert ("opsguard_backup_count", labels("ia", "hostinger")) not in found
    assert ("opsguard_snapshot_expires_timestamp_seconds", labels("chat", "vultr")) not in found
    assert not any(math.isnan(value) for value in found.values())


def test_render_textfile_sets_one_status_series_per_host() -> None:
    found = samples(render_textfile(report()))
    chat = {
        dict(key[1])["status"]: value
        for key, value in found.items()
        if key[0] == "opsguard_backup_status" and dict(key[1])["host"] == "chat"
    }
    assert chat["stale"] == 1
    assert sum(chat.values()) == 1


def test_render_textfile_counts_zero_when_no_backups() -> None:
    empty = evaluate_host(
        facts(host("chat2", "hostinger", schedule="weekly", max_age="8d"), backups=[], snapshot=None), NOW
    )
    found = samples(render_textfile(BackupReport(checked_at=NOW, hosts=(empty,))))
    assert found[("opsguard_backup_count", labels("chat2", "hostinger"))] == 0
    assert ("opsguard_backup_newest_age_seconds", labels("chat2", "hostinger")) not in found


def test_write_atomically_replaces_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "opsguard_backups.prom"
    target.write_text("old\n")
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert [entry.name for entry in tmp_path.iterdir()] == ["opsguard_backups.prom"]


def test_write_atomically_raises_and_keeps_old_file_when_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "opsguard_backups.prom"
    target.write_text("old\n")

    def broken_replace(source: str, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["opsguard_backups.prom"]


def test_write_atomically_raises_when_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "absent" / "x.prom", "x\n")
