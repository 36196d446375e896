"""Release archives for the package tests: a good Zpro release as zip or tar, and ways to spoil one."""

from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

# The release layout the platform_upgrade unpack step expects at the archive's top.
GOOD_MEMBERS: Mapping[str, str] = {
    "backend/package.json": json.dumps({"name": "zpro-backend", "version": "2.5.0"}),
    "backend/dist/server.js": "console.log('zpro backend 2.5.0')\n",
    "frontend/package.json": json.dumps({"name": "zpro-frontend", "version": "2.5.0", "scripts": {"build": "quasar build"}}),
}


def write_zip(path: Path, members: Mapping[str, str] = GOOD_MEMBERS, *, symlinks: Mapping[str, str] | None = None) -> Path:
    """Given a path, members {name: text} and symlinks {name: target}, write a zip (stored, not deflated); return the path."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, text in members.items():
            # A fixed date: the same members give the same bytes (and sha256) whenever they are written.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), text)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # unix: the mode in external_attr counts, as unzip reads it
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def write_tar(
    path: Path,
    members: Mapping[str, str] = GOOD_MEMBERS,
    *,
    compression: str = "gz",
    symlinks: Mapping[str, str] | None = None,
    hardlinks: Mapping[str, str] | None = None,
    fifos: tuple[str, ...] = (),
) -> Path:
    """Given a path, members, links and fifos, write a tar ("gz" or "" for plain); return the path."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for kind, links in ((tarfile.SYMTYPE, symlinks or {}), (tarfile.LNKTYPE, hardlinks or {})):
            for name, target in links.items():
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = target
                archive.addfile(info)
        for name in fifos:
            info = tarfile.TarInfo(name)
            info.type = tarfile.FIFOTYPE
            archive.addfile(info)
    data = buffer.getvalue()
    if compression == "gz":
        # mtime=0: the same members give the same bytes whenever they are written.
        with path.open("wb") as target, gzip.GzipFile(filename="", mode="wb", fileobj=target, mtime=0) as compressed:
            compressed.write(data)
    else:
        path.write_bytes(data)
    return path


def corrupt_first_member(path: Path) -> Path:
    """Given a stored (uncompressed) zip, flip a byte of its first member's data so its CRC no longer matches."""
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
    raw = bytearray(path.read_bytes())
    # The data follows the 30-byte local header, the name and the extra field.
    offset = first.header_offset + 30 + len(first.filename.encode()) + len(first.extra)
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path
