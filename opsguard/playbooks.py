"""Playbooks by name: load them, merge their params (defaults < inventory vars < command line), build plans.

``upgrade`` is not a module: it picks the playbook by the host's roles (zpro -> platform_upgrade,
integrations -> stack_upgrade). Every problem is a one-line ConfigError naming the host and the var.
"""

from __future__ import annotations

import hashlib
import importlib
import lzma
import math
import posixpath
import re
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from opsguard.commandline import validate_command_text
from opsguard.durations import parse_duration
from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.plan import Plan
from playbooks._shared import number_maximum

PLAYBOOKS = ("update", "platform_upgrade", "stack_upgrade", "backup_check")
# The read-only nightly commands read inventory vars too (their VARS, like a playbook's).
CHECK_MODULES = ("opsguard.audit", "opsguard.health")
UPGRADE = "upgrade"
UPGRADE_BY_ROLE = {"zpro": "platform_upgrade", "integrations": "stack_upgrade"}
# Options every playbook takes: the run timestamp names this run's backup and staging directories.
COMMON_OPTIONS: dict[str, Any] = {"ts": None}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
# ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
_WHOLE_NUMBER = re.compile(r"\s*[0-9]+\s*", re.ASCII)
_LONGEST_WHOLE_NUMBER = 15


def list_playbooks() -> list[str]:
    """Return the playbook names ("upgrade" is an alias picked by roles, see playbook_for_upgrade)."""
    return list(PLAYBOOKS)


def playbook_for_upgrade(host: Host) -> str:
    """Given a host, return the upgrade playbook its roles call for; raise ConfigError unless it has exactly one."""
    names = [UPGRADE_BY_ROLE[role] for role in host.roles if role in UPGRADE_BY_ROLE]
    if len(names) != 1:
        roles = ", ".join(host.roles) or "none"
        raise ConfigError(
            f"{host.source}: hosts.{host.name}.roles: [{roles}]: 'upgrade' needs exactly one of "
            f"{', '.join(UPGRADE_BY_ROLE)} (or name the playbook: {', '.join(UPGRADE_BY_ROLE.values())})"
        )
    return names[0]


def load_playbook(name: str, host: Host | None = None) -> ModuleType:
    """Given a playbook name (or "upgrade" with a host), return its module; raise ConfigError if unknown."""
    if name == UPGRADE:
        if host is None:
            raise ConfigError("playbook 'upgrade' is picked by the host's roles: name the host")
        name = playbook_for_upgrade(host)
    if name not in PLAYBOOKS:
        raise ConfigError(f"unknown playbook {name!r} (playbooks: {', '.join(PLAYBOOKS)}, or {UPGRADE!r} by role)")
    return importlib.import_module(f"playbooks.{name}")


def playbook_name(module: ModuleType) -> str:
    """Given a playbook module, return its short name (e.g. "update")."""
    return module.__name__.rsplit(".", 1)[-1]


def known_vars() -> dict[str, list[str]]:
    """Return {var: [playbooks and commands that read it]} over every playbook, audit and health, for checking inventory vars."""
    known: dict[str, list[str]] = {}
    for name in PLAYBOOKS:
        for var in load_playbook(name).VARS:
            known.setdefault(var, []).append(name)
    for module_name in CHECK_MODULES:
        for var in importlib.import_module(module_name).VARS:
            known.setdefault(var, []).append(module_name.rsplit(".", 1)[-1])
    return known


def params_for(module: ModuleType, host: Host, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Given a playbook module, a host and command-line overrides, return the plan's params.

    Params are the module's VARS defaults, overlaid by the host's inventory vars, then by the overrides
    (its VARS and OPTIONS, and ``ts``). The package, when the playbook takes one, is resolved to an
    absolute path and its sha256 computed here. Raise ConfigError (one line) for an inventory var no
    playbook knows, an override this playbook does not take, a value of the wrong type, a missing
    required option, or a package that is not a readable file, does not match a given sha256, or is
    not a release archive the host can unpack safely (see release_archive_problem).
    """
    name = playbook_name(module)
    variables: dict[str, Any] = dict(module.VARS)
    options: dict[str, Any] = {**COMMON_OPTIONS, **getattr(module, "OPTIONS", {})}

    known = known_vars()
    unknown = [key for key in host.vars if key not in known]
    if unknown:
        raise ConfigError(
            f"{host.source}: hosts.{host.name}.vars: unknown var{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    params: dict[str, Any] = {}
    for key, default in variables.items():
        if key in host.vars:
            params[key] = _coerce(host.vars[key], default, key, f"{host.source}: hosts.{host.name}.vars.{key}")
        else:
            params[key] = default
    params.update(options)

    for key, value in (overrides or {}).items():
        if key in variables:
            params[key] = _coerce(value, variables[key], key, f"{name} on {host.name}: --var {key}")
        elif key in options:
            params[key] = _coerce(value, options[key], key, f"{name} on {host.name}: {_flag(key)}")
        else:
            label = _flag(key) if key in _all_options() else f"--var {key}"
            users = [other for other in PLAYBOOKS if other != name and key in _accepted(load_playbook(other))]
            hint = f"it is for {', '.join(users)}" if users else f"its vars: {', '.join(variables)}"
            raise ConfigError(f"{name} on {host.name} does not take {label} ({hint})")

    for key, how in getattr(module, "REQUIRED", {}).items():
        if params.get(key) in (None, ""):
            raise ConfigError(f"{name} on {host.name} needs {how}")
    if params.get("ts") is None:
        params["ts"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if "package" in options and params.get("package"):
        _resolve_package(params, name, host)
    return params


def build_plan(name: str, host: Host, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Given a playbook name (or "upgrade"), a host and command-line overrides, return the plan.

    Raise ConfigError for an unknown playbook, a bad var or option, or a missing required option.
    """
    module = load_playbook(name, host)
    params = params_for(module, host, overrides)
    try:
        plan: Plan = module.plan(host, params)
    except ConfigError as error:  # the playbook checks its params; say which playbook and host
        raise ConfigError(f"{playbook_name(module)} on {host.name}: {error}") from None
    return plan


def file_sha256(path: Path) -> str:
    """Given a local file, return its lower-case hex sha256; raise OSError if it cannot be read."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve_package(params: dict[str, Any], name: str, host: Host) -> None:
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
    from playbooks.platform_upgrade import archive_kind

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


def _accepted(module: ModuleType) -> set[str]:
    return {*module.VARS, *getattr(module, "OPTIONS", {}), *COMMON_OPTIONS}


def _all_options() -> set[str]:
    options = set(COMMON_OPTIONS)
    for name in PLAYBOOKS:
        options.update(getattr(load_playbook(name), "OPTIONS", {}))
    return options


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _coerce(value: Any, default: Any, key: str, where: str) -> Any:
    """Given a value from the inventory or command line, the default it replaces and its key, return it as the default's type.

    Numbers must be finite, not negative and at most number_maximum(key) (7 days for a duration):
    a nan or inf wait would make a verification poll forever. Text (and each list item) must be
    strict UTF-8 without NUL: it ends up in shell text sent to the host. Raise ConfigError naming ``where``.
    """
    for text in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(text, str):
            validate_command_text(text, what=where, allow_empty=True)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {value!r} is not true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return _bounded(value, key, where, shown=_quoted(value))
        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
            digits = value.strip().lstrip("0") or "0"
            if len(digits) > _LONGEST_WHOLE_NUMBER:  # int() refuses > 4300 digits; no bound is that long
                raise ConfigError(f"{where}: {_quoted(value)} is above the maximum of {number_maximum(key)[1]}")
            return _bounded(int(digits), key, where, shown=_quoted(value))
        raise ConfigError(f"{where}: {_quoted(value)} is not a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(_bounded(value, key, where, shown=_quoted(value)))
        if isinstance(value, str):
            seconds = _seconds(value)
            if seconds is not None:
                return float(_bounded(seconds, key, where, shown=_quoted(value)))
        raise ConfigError(f"{where}: {_quoted(value)} is not a number of seconds or a duration such as \"60s\"")
    if isinstance(default, list):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(f"{where}: {value!r} is not a list of strings")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {value!r} is not a string")


def _seconds(text: str) -> float | None:
    """Given a number of seconds ("50", "0.5", "nan" too) or a duration ("60s"), return seconds; None if neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _bounded(number: int | float, key: str, where: str, *, shown: str) -> int | float:
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}: {shown} is not a finite number")
    if number < 0:
        raise ConfigError(f"{where}: {shown} is negative")
    highest, words = number_maximum(key)
    if number > highest:
        raise ConfigError(f"{where}: {shown} is above the maximum of {words}")
    return number


def _quoted(value: Any) -> str:
    """Given a value from outside, return its repr, cut short when long (a 5000-digit number stays one short line)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"
