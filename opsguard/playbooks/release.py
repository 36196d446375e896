"""Release packages: found, hashed and opened BEFORE any snapshot, so a bad one costs nothing.

SAFETY: the host unpacks the package only after the snapshot, and on Hostinger that snapshot replaced
the previous one. A package that is not an archive of the expected release layout, or that holds a
member which would land outside the unpack directory, is refused here.
"""

from __future__ import annotations

import hashlib
import lzma
import posixpath
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

from opsguard.errors import ConfigError
from opsguard.inventory import Host

_ARCHIVES = {".zip": "zip", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar": "tar"}


def archive_kind(package: str) -> str:
    """Given the package path, return "zip", "tar.gz" or "tar"; raise ConfigError for another extension."""
    lowered = package.lower()
    for extension, kind in _ARCHIVES.items():
        if lowered.endswith(extension):
            return kind
    raise ConfigError(f"package {package!r}: expected a .zip, .tar.gz, .tgz or .tar release archive")


def file_sha256(path: Path) -> str:
    """Given a local file, return its lower-case hex sha256; raise OSError if it cannot be read."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_package(params: dict[str, Any], name: str, host: Host) -> None:
    """Given params with a package path, the playbook's name and the host, resolve the path, add its sha256 and check
    the archive; raise ConfigError (one line, before any snapshot) if it is missing, unreadable, another file than
    the expected sha256, or not a release the host can unpack safely.
    """
    given = str(params["package"])
    where = f"{name} on {host.name}: package {_shown(given)}"
    path = Path(given).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where} not found (or not a file)")
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise ConfigError(f"{where} cannot be read: {error.strerror or error}") from None
    expected = params.get("package_sha256")
    if expected and str(expected).strip().lower() != digest:
        raise ConfigError(f"{where} has sha256 {digest}, not the expected {expected}")
    # SAFETY: the host unpacks the package only after the snapshot; on Hostinger that snapshot
    # replaced the previous one. An archive it cannot unpack must be refused here, for free.
    try:
        kind = archive_kind(given)
    except ConfigError as error:
        raise ConfigError(f"{name} on {host.name}: {error}") from None
    problem = release_archive_problem(path, kind)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    params["package"] = str(path.resolve())
    params["package_sha256"] = digest



# -- release archives ------------------------------------------------------------------------------------

# The platform_upgrade unpack step needs these at the archive's top (it unpacks into the staging tree).
RELEASE_FILES = ("backend/package.json", "frontend/package.json")
# What a damaged or hostile archive can raise while it is read: each means "the host cannot unpack it".
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
)


def release_archive_problem(path: Path, kind: str) -> str | None:
    """Given a local release archive and its kind ("zip", "tar.gz" or "tar"), return None if the host can unpack it safely.

    Otherwise return the problem in a few words: the file cannot be read as that kind, a member is
    damaged, a member would land outside the unpack directory (absolute path, '..', a link pointing
    out, a member under a link), a member is a device or fifo, or backend/package.json or
    frontend/package.json is missing at the top. Every byte is read: a damaged member is found here.
    """
    try:
        members = _zip_members(path) if kind == "zip" else _tar_members(path, gzip_only=kind == "tar.gz")
    except _ArchiveDamaged as damaged:
        return str(damaged)
    except _ARCHIVE_ERRORS as error:
        return f"cannot be read as a {kind} archive ({_error_text(error)})"
    return _members_problem(members) or _layout_problem(members)


class _ArchiveDamaged(Exception):
    """A member of an archive that opened fine does not read back (bad CRC, truncated data)."""


class _Member:
    """One archive member: its name in the archive, its kind, (for links) its target, and its path on the host."""

    def __init__(self, name: str, kind: str, target: str = "", *, path: str | None = None) -> None:
        self.name = name
        self.kind = kind  # "file", "dir", "symlink", "hardlink" or "other"
        self.target = target
        self.parts = tuple(part for part in (name if path is None else path).split("/") if part not in ("", "."))


def _zip_members(path: Path) -> list[_Member]:
    members = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            # Info-ZIP unzip turns backslashes into slashes ("..\\x" is "../x" on the host).
            host_path = info.filename.replace("\\", "/")
            try:
                first = _read_through(archive, info)  # checks every member's CRC, as testzip does
            except _ARCHIVE_ERRORS as error:
                raise _ArchiveDamaged(f"corrupt member {_shown(info.filename)} ({_error_text(error)})") from None
            # unzip makes a symlink of a member whose Unix mode says so; its data is the target.
            if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
                members.append(_Member(info.filename, "symlink", first.decode("utf-8", "replace"), path=host_path))
            else:
                members.append(_Member(info.filename, "dir" if info.is_dir() else "file", path=host_path))
    return members


def _read_through(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Given a zip and one member, read all of it (the CRC is checked at its end); return its first block."""
    with archive.open(info) as stream:
        first = stream.read(1 << 20)
        while stream.read(1 << 20):
            pass
    return first


def _tar_members(path: Path, *, gzip_only: bool) -> list[_Member]:
    members = []
    # The host runs `tar -xzf` for a .tar.gz/.tgz (gzip only) and `tar -xf` for a .tar (GNU tar
    # detects a compression by itself, as tarfile's "r:*" does).
    with tarfile.open(path, "r:gz") if gzip_only else tarfile.open(path, "r:*") as archive:
        for info in archive:
            if info.isfile():
                stream = archive.extractfile(info)
                while stream is not None and stream.read(1 << 20):  # every byte through the decompressor
                    pass
                members.append(_Member(info.name, "file"))
            elif info.isdir():
                members.append(_Member(info.name, "dir"))
            elif info.issym():
                members.append(_Member(info.name, "symlink", info.linkname))
            elif info.islnk():
                members.append(_Member(info.name, "hardlink", info.linkname))
            else:
                members.append(_Member(info.name, "other"))
        # The rest of the stream too: a gzip trailer (CRC, length) that does not match fails `tar -xzf`.
        fileobj = archive.fileobj
        while fileobj is not None and fileobj.read(1 << 20):
            pass
    return members


def _members_problem(members: list[_Member]) -> str | None:
    symlinks = {member.parts for member in members if member.kind == "symlink"}
    for member in members:
        name = _shown(member.name)
        if member.name.startswith(("/", "\\")):
            return f"member {name} has an absolute path"
        if ".." in member.parts:
            return f"member {name} has a '..' component"
        if member.kind == "other":
            return f"member {name} is not a file, directory or link"
        for depth in range(1, len(member.parts)):
            if member.parts[:depth] in symlinks:
                return f"member {name} lies under symlink {'/'.join(member.parts[:depth])}"
        if member.kind == "symlink" and not _inside(posixpath.join(posixpath.dirname("/".join(member.parts)), member.target)):
            return f"symlink {name} -> {_shown(member.target)} points outside the tree"
        # A tar hard link names another member by its path in the archive.
        if member.kind == "hardlink" and not _inside(member.target):
            return f"hard link {name} -> {_shown(member.target)} points outside the tree"
    return None


def _layout_problem(members: list[_Member]) -> str | None:
    files = {"/".join(member.parts) for member in members if member.kind == "file"}
    missing = [required for required in RELEASE_FILES if required not in files]
    if missing:
        return f"has no {', '.join(missing)} at its top (a Zpro release holds backend/ and frontend/ there)"
    return None


def _inside(relative: str) -> bool:
    if relative.startswith("/"):
        return False
    normalised = posixpath.normpath(relative)
    return normalised != ".." and not normalised.startswith("../")


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return _shown(text[0]) if text else type(error).__name__


def _shown(text: str) -> str:
    """Given a path or name from outside, return it as is when printable, else quoted with escapes (one line)."""
    return text if text.isprintable() else repr(text)


