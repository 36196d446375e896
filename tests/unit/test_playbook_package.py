"""The --package of platform_upgrade is checked when the plan is built, before any snapshot.

The host unpacks it (unzip / tar) only after the snapshot: an archive that cannot be unpacked, that
would write outside the staging tree, or that is not a Zpro release must be refused here, at no cost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsguard.errors import ConfigError
from opsguard.playbooks import build_plan
from tests.unit.playbook_cases import TS, make_host
from tests.unit.release_archives import GOOD_MEMBERS, corrupt_first_member, write_tar, write_zip


def _refusal(package: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        build_plan("platform_upgrade", make_host(), {"package": str(package), "ts": TS})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"platform_upgrade on chat: package {package}: "), message
    assert caught.value.exit_code == 78
    return message


def _without(name: str) -> dict[str, str]:
    return {key: value for key, value in GOOD_MEMBERS.items() if key != name}


@pytest.mark.parametrize(
    "name", ["update.zip", "release.tar.gz", "release.tgz", "release.tar", "RELEASE.ZIP"]
)
def test_playbook_package_accepts_release_layout_when_archive_is_sound(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.lower().endswith(".zip"):
        write_zip(path)
    else:
        write_tar(path, compression="" if name.endswith(".tar") else "gz")

    plan = build_plan("platform_upgrade", make_host(), {"package": str(path), "ts": TS})

    assert plan.params["package"] == str(path.resolve())


def test_playbook_package_accepts_tar_members_written_with_dot_prefix(tmp_path: Path) -> None:
    # `tar -C release -czf release.tar.gz .` names every member ./backend/...
    members = {f"./{name}": text for name, text in GOOD_MEMBERS.items()}
    path = write_tar(tmp_path / "release.tar.gz", members)

    plan = build_plan("platform_upgrade", make_host(), {"package": str(path), "ts": TS})

    assert plan.params["package_sha256"]


def test_playbook_package_accepts_symlink_that_stays_inside_the_tree(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "update.zip", symlinks={"backend/node_modules/.bin/tsc": "../typescript/bin/tsc"})

    plan = build_plan("platform_upgrade", make_host(), {"package": str(path), "ts": TS})

    assert plan.params["package"] == str(path.resolve())


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("update.zip", b"these are not the bytes of a zip archive" * 10, id="random-bytes-zip"),
        pytest.param("update.zip", b"", id="empty-file-zip"),
        pytest.param("release.tar.gz", b"\x1f\x8b but not really gzip" * 10, id="random-bytes-tar-gz"),
        pytest.param("release.tar", b"plain text, not a tar" * 30, id="random-bytes-tar"),
    ],
)
def test_playbook_package_refuses_file_that_is_not_an_archive(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    message = _refusal(path)

    assert "cannot be read as a" in message


def test_playbook_package_refuses_zip_named_tar_gz(tmp_path: Path) -> None:
    # The host runs `tar -xzf` on a .tar.gz: a zip under that name fails there, after the snapshot.
    path = write_zip(tmp_path / "release.tar.gz")

    assert "cannot be read as a tar.gz archive" in _refusal(path)


def test_playbook_package_refuses_plain_tar_named_tar_gz(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "release.tar.gz", compression="")

    assert "cannot be read as a tar.gz archive" in _refusal(path)


def test_playbook_package_refuses_zip_whose_member_fails_its_crc(tmp_path: Path) -> None:
    path = corrupt_first_member(write_zip(tmp_path / "update.zip"))

    message = _refusal(path)

    assert "corrupt member backend/package.json" in message


def test_playbook_package_refuses_truncated_tar_gz(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "release.tar.gz")
    path.write_bytes(path.read_bytes()[:-12])  # the gzip trailer (CRC, size) and a little more

    assert "cannot be read as a tar.gz archive" in _refusal(path)


@pytest.mark.parametrize(
    ("missing", "problem"),
    [
        pytest.param("backend/package.json", "has no backend/package.json at its top", id="no-backend"),
        pytest.param("frontend/package.json", "has no frontend/package.json at its top", id="no-frontend"),
    ],
)
def test_playbook_package_refuses_archive_without_release_layout(tmp_path: Path, missing: str, problem: str) -> None:
    path = write_zip(tmp_path / "update.zip", _without(missing))

    assert problem in _refusal(path)


def test_playbook_package_refuses_empty_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "update.zip", {})

    assert "has no backend/package.json, frontend/package.json at its top" in _refusal(path)


def test_playbook_package_refuses_release_nested_in_a_top_directory(tmp_path: Path) -> None:
    members = {f"zpro-2.5.0/{name}": text for name, text in GOOD_MEMBERS.items()}
    path = write_zip(tmp_path / "update.zip", members)

    message = _refusal(path)

    assert "has no backend/package.json, frontend/package.json at its top" in message


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        pytest.param("/etc/cron.d/evil", "member /etc/cron.d/evil has an absolute path", id="absolute"),
        pytest.param("../outside.txt", "member ../outside.txt has a '..' component", id="parent"),
        pytest.param("backend/../../outside.txt", "member backend/../../outside.txt has a '..' component", id="parent-inside"),
        pytest.param("..\\outside.txt", "member ..\\outside.txt has a '..' component", id="backslash-parent"),
    ],
)
def test_playbook_package_refuses_zip_member_escaping_the_tree(tmp_path: Path, member: str, problem: str) -> None:
    path = write_zip(tmp_path / "update.zip", {**GOOD_MEMBERS, member: "x"})

    assert problem in _refusal(path)


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        pytest.param("/etc/cron.d/evil", "member /etc/cron.d/evil has an absolute path", id="absolute"),
        pytest.param("../outside.txt", "member ../outside.txt has a '..' component", id="parent"),
    ],
)
def test_playbook_package_refuses_tar_member_escaping_the_tree(tmp_path: Path, member: str, problem: str) -> None:
    path = write_tar(tmp_path / "release.tar.gz", {**GOOD_MEMBERS, member: "x"})

    assert problem in _refusal(path)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        pytest.param("/etc", "symlink backend/config -> /etc points outside the tree", id="absolute-target"),
        pytest.param("../../..", "symlink backend/config -> ../../.. points outside the tree", id="relative-escape"),
    ],
)
def test_playbook_package_refuses_zip_symlink_escaping_the_tree(tmp_path: Path, target: str, problem: str) -> None:
    path = write_zip(tmp_path / "update.zip", symlinks={"backend/config": target})

    assert problem in _refusal(path)


def test_playbook_package_refuses_tar_symlink_escaping_the_tree(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "release.tar.gz", symlinks={"frontend/dist": "/var/www"})

    assert "symlink frontend/dist -> /var/www points outside the tree" in _refusal(path)


def test_playbook_package_refuses_member_written_through_a_symlink(tmp_path: Path) -> None:
    # An inside-pointing link is harmless by itself; a later member under it writes wherever it points.
    path = write_tar(tmp_path / "release.tar.gz", {**GOOD_MEMBERS, "backend/cfg/x": "x"}, symlinks={"backend/cfg": "dist"})

    assert "member backend/cfg/x lies under symlink backend/cfg" in _refusal(path)


def test_playbook_package_refuses_tar_hardlink_to_outside(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "release.tar.gz", hardlinks={"backend/shadow": "/etc/shadow"})

    assert "hard link backend/shadow -> /etc/shadow points outside the tree" in _refusal(path)


def test_playbook_package_refuses_tar_fifo_member(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "release.tar.gz", fifos=("backend/pipe",))

    assert "member backend/pipe is not a file, directory or link" in _refusal(path)


def test_playbook_package_names_unprintable_path_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "up\tdate.zip"  # a tab: one line, yet not printable as it is
    path.write_bytes(b"not a zip")

    with pytest.raises(ConfigError) as caught:
        build_plan("platform_upgrade", make_host(), {"package": str(path), "ts": TS})

    assert "\n" not in str(caught.value)
    assert repr(str(path)) in str(caught.value)
