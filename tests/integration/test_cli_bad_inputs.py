"""Bad input is refused by the real CLI with exit 78 before anything else: no SSH, no snapshot.

On Hostinger a snapshot replaces the previous one, so a package the host cannot unpack, or a value
that cannot even be sent to the host, must never get as far as the snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import run_cli
from tests.integration.playbook_support import PlaybookWorld
from tests.unit.release_archives import GOOD_MEMBERS, write_zip

INVENTORY = """\
[hosts.chat]
address = "chat.example.test"
provider = "vultr"
roles = ["zpro"]
"""


def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def test_cli_plan_refuses_package_of_random_bytes_with_one_line(tmp_path: Path) -> None:
    package = tmp_path / "update.zip"
    package.write_bytes(bytes(range(256)) * 4)

    result = run_cli("-i", str(_inventory(tmp_path)), "plan", "chat", "upgrade", "--package", str(package))

    assert result.exit_code == 78, result.output
    assert result.stderr.splitlines() == [
        f"platform_upgrade on chat: package {package}: cannot be read as a zip archive (File is not a zip file)"
    ]


def test_cli_plan_refuses_package_without_frontend(tmp_path: Path) -> None:
    members = {name: text for name, text in GOOD_MEMBERS.items() if not name.startswith("frontend/")}
    package = write_zip(tmp_path / "update.zip", members)

    result = run_cli("-i", str(_inventory(tmp_path)), "plan", "chat", "upgrade", "--package", str(package))

    assert result.exit_code == 78, result.output
    assert "has no frontend/package.json at its top" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.integration
def test_cli_upgrade_refuses_bad_package_before_snapshot_or_ssh(world: PlaybookWorld) -> None:
    package = world.tmp_path / "update.zip"
    package.write_bytes(b"random bytes, named like a release" * 8)

    result = world.cli("upgrade", "chat", "--package", str(package), "--yes")

    assert result.exit_code == 78, result.output
    assert f"package {package}: cannot be read as a zip archive" in result.stderr
    assert world.snapshot_posts() == []
    assert world.journal("chat") == []


def test_cli_plan_refuses_var_value_that_is_not_utf8(tmp_path: Path) -> None:
    value = os.fsdecode(b"/bo\xffot")  # the shell passes the raw byte; Python sees a surrogate escape

    result = run_cli("-i", str(_inventory(tmp_path)), "plan", "chat", "update", "--var", f"boot_dir={value}")

    assert result.exit_code == 78, result.output
    assert result.stderr.splitlines() == ["update on chat: --var boot_dir: not valid UTF-8 (byte 0xff at character 4)"]


def test_cli_plan_refuses_nan_wait(tmp_path: Path) -> None:
    result = run_cli("-i", str(_inventory(tmp_path)), "plan", "chat", "update", "--var", "settle_wait=nan")

    assert result.exit_code == 78, result.output
    assert result.stderr.splitlines() == ["update on chat: --var settle_wait: 'nan' is not a finite number"]
