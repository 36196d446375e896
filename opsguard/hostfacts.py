"""Pure parsers of what host commands print: pm2 jlist, df -P, free -b, .env files, apt-get -s, docker compose.

Nothing here runs a command or touches the network: each function turns a command's text output into
data, and raises ValueError when the text is not what that command prints. Playbooks build their
checks and facts on these parsers, and the unit tests feed them realistic samples.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from typing import Any

from opsguard.readonly import PM2_NOT_RUNNING

# -- key=value lines (what opsguard's own shell snippets print) ---------------------------------------

_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_key_values(text: str) -> dict[str, str]:
    """Given lines such as ``size=123``, return {key: value}; other lines are ignored, a later key wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _KEY_VALUE.match(line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


# -- pm2 -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pm2Process:
    """One process of ``pm2 jlist``."""

    name: str
    status: str
    restarts: int


def pm2_not_running(text: str) -> bool:
    """Given the output of a pm2 probe (``PM2_LISTING``), return whether it found no live pm2 daemon."""
    return PM2_NOT_RUNNING in text.split()


def parse_pm2_jlist(text: str) -> list[Pm2Process]:
    """Given ``pm2 jlist`` output, return its processes ([] when the probe found no pm2 daemon running);
    raise ValueError if it holds no process list.

    pm2 may print lines such as ``[PM2] Spawning PM2 daemon`` before the JSON; they are skipped.
    """
    if pm2_not_running(text):
        return []
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return [_pm2_process(item) for item in value]
    raise ValueError("no pm2 process list (a JSON array) in the output of pm2 jlist")


def _pm2_process(item: dict[str, object]) -> Pm2Process:
    environment = item.get("pm2_env")
    if not isinstance(environment, dict):
        environment = {}
    restarts = environment.get("restart_time", 0)
    return Pm2Process(
        name=str(item.get("name", "")),
        status=str(environment.get("status", "unknown")),
        restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else 0,
    )


# -- disks and memory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskUsage:
    """One row of ``df -P``: sizes in bytes, ``used_percent`` as df rounds it (up)."""

    filesystem: str
    size: int
    used: int
    available: int
    used_percent: int
    mount: str


def parse_df(text: str) -> list[DiskUsage]:
    """Given ``df -P`` output (any block size, e.g. ``-B1``), return one DiskUsage per row, in order.

    Raise ValueError if the header or a row is not in POSIX df format.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((index for index, line in enumerate(lines) if line.startswith("Filesystem")), None)
    if header_at is None:
        raise ValueError("no df header line (Filesystem ...) in the output")
    header = lines[header_at].split()
    block = re.match(r"^(\d+)B?-blocks$", header[1]) if len(header) > 1 else None
    if block is None:
        raise ValueError(f"df header {lines[header_at]!r} does not name the block size (use df -P)")
    unit = int(block.group(1))
    rows: list[DiskUsage] = []
    for line in lines[header_at + 1 :]:
        if line.startswith("Filesystem"):
            continue
        fields = line.split()
        if len(fields) < 6 or not fields[5].startswith("/"):
            raise ValueError(f"df row {line!r} is not in POSIX format")
        try:
            size, used, available = (int(value) * unit for value in fields[1:4])
        except ValueError:
            raise ValueError(f"df row {line!r} has non-numeric sizes") from None
        percent = fields[4].rstrip("%")
        rows.append(
            DiskUsage(
                filesystem=fields[0],
                size=size,
                used=used,
                available=available,
                used_percent=int(percent) if percent.isdigit() else 0,
                mount=" ".join(fields[5:]),
            )
        )
    if not rows:
        raise ValueError("df printed no filesystem rows")
    return rows


@dataclass(frozen=True)
class Memory:
    """``free -b``: RAM and swap in bytes."""

    ram_total: int
    ram_available: int
    swap_total: int
    swap_free: int


def parse_free(text: str) -> Memory:
    """Given ``free -b`` output, return RAM and swap totals; raise ValueError if the Mem: row is missing."""
    header: list[str] = []
    rows: dict[str, list[int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0].lower() in ("mem:", "swap:"):
            try:
                rows[fields[0][:-1].lower()] = [int(value) for value in fields[1:]]
            except ValueError:
                raise ValueError(f"free row {line!r} has non-numeric values") from None
        elif "total" in fields:
            header = fields
    if "mem" not in rows or not rows["mem"]:
        raise ValueError("no Mem: row in the output of free -b")
    memory = rows["mem"]
    swap = rows.get("swap", [0, 0, 0])
    available = memory[header.index("available")] if "available" in header and len(memory) > header.index("available") else memory[-1]
    return Memory(
        ram_total=memory[0],
        ram_available=available,
        swap_total=swap[0] if swap else 0,
        swap_free=swap[2] if len(swap) > 2 else 0,
    )


# -- .env files ------------------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)$")


def parse_dotenv_raw(text: str) -> dict[str, str]:
    """Given a .env file, return {KEY: the text after '=' exactly as written} (quotes, ';', '\\r' kept).

    Comment lines and lines without '=' are skipped; a later key wins, as in dotenv.
    """
    values: dict[str, str] = {}
    for line in text.split("\n"):
        if line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def dotenv_value(raw: str) -> str:
    """Given the raw text after '=' of a .env line, return the value dotenv gives the program.

    Matching surrounding quotes are removed (``\\n`` expands inside double quotes); an unquoted value
    loses a `` #`` comment and surrounding whitespace.
    """
    stripped = raw.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'`":
        inner = stripped[1:-1]
        return inner.replace("\\n", "\n") if stripped[0] == '"' else inner
    comment = re.search(r"\s#", stripped)
    if comment:
        stripped = stripped[: comment.start()]
    return stripped.strip()


def parse_dotenv(text: str) -> dict[str, str]:
    """Given a .env file, return {KEY: value} as dotenv reads it (quotes removed, comments dropped)."""
    return {key: dotenv_value(raw) for key, raw in parse_dotenv_raw(text).items()}


def url_problem(raw: str) -> str | None:
    """Given the raw text after '=' of a URL line in .env, return None if it is a clean http(s) URL, else why not.

    The Zpro backend breaks on a trailing ';', a stray quote or a space in BACKEND_URL/FRONTEND_URL, and a
    CRLF line ending leaves an invisible '\\r' at the end, so those are flagged even where dotenv would cope.
    """
    if raw.endswith("\r"):
        return "ends with a carriage return (the file has Windows CRLF line endings)"
    if raw != raw.rstrip():
        return "ends with a space"
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    else:
        comment = re.search(r"\s#", value)
        if comment:
            value = value[: comment.start()]
    if not value:
        return "is empty"
    if value.endswith(";"):
        return "ends with ';'"
    if any(quote in value for quote in "\"'`"):
        return "contains a quote"
    if any(character.isspace() for character in value):
        return "contains a space"
    if not re.match(r"^https?://[^/]", value):
        return "is not an http:// or https:// URL"
    return None


# -- apt -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptChange:
    """One ``Inst`` line of ``apt-get -s upgrade``: a package and the versions it moves between."""

    package: str
    old_version: str | None
    new_version: str | None
    origin: str


_APT_INST = re.compile(r"^Inst\s+(\S+)(?:\s+\[([^\]]*)\])?(?:\s+\((\S+)\s*([^)]*)\))?")


def parse_apt_simulation(text: str) -> list[AptChange]:
    """Given ``apt-get -s upgrade`` output, return the packages it would install or upgrade, in order."""
    changes: list[AptChange] = []
    for line in text.splitlines():
        match = _APT_INST.match(line.strip())
        if match:
            changes.append(
                AptChange(
                    package=match.group(1).split(":")[0],
                    old_version=match.group(2),
                    new_version=match.group(3),
                    origin=(match.group(4) or "").strip(),
                )
            )
    return changes


# -- systemd ---------------------------------------------------------------------------------------------


def parse_systemctl_failed(text: str) -> list[str]:
    """Given ``systemctl --failed --plain --no-legend`` output, return the failed unit names."""
    units: list[str] = []
    for line in text.splitlines():
        fields = [field for field in line.split() if field not in ("●", "*")]
        if fields and "." in fields[0]:
            units.append(fields[0])
    return units


# -- docker compose --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    """An image reference split into repository, tag and digest (tag and digest may be None)."""

    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The last path component of the repository, e.g. ``postgres`` for ``docker.io/library/postgres``."""
        return self.repository.rsplit("/", 1)[-1]


def split_image_reference(reference: str) -> ImageReference:
    """Given an image reference such as ``registry:5000/org/app:1.2@sha256:...``, return its parts.

    Raise ValueError if it is empty.
    """
    text = reference.strip()
    if not text:
        raise ValueError("empty image reference")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
    tag: str | None = None
    last_colon = text.rfind(":")
    if last_colon > text.rfind("/"):  # a colon before the last '/' is a registry port, not a tag
        text, tag = text[:last_colon], text[last_colon + 1 :]
    return ImageReference(repository=text, tag=tag or None, digest=digest)


def parse_compose_services(text: str) -> dict[str, str]:
    """Given ``docker compose config`` output, return {service: image reference ('' for build-only)}.

    Accepts the JSON form (``--format json``) or the YAML form reduced to top-level keys, service names
    and ``image:`` lines (what opsguard greps, so no environment value ever leaves the host).
    Raise ValueError if no services are found.
    """
    stripped = text.strip()
    services: dict[str, str] = {}
    if stripped.startswith("{"):
        data = _json(stripped, "docker compose config")
        raw = data.get("services") if isinstance(data, dict) else None
        if isinstance(raw, dict):
            for name, body in raw.items():
                image = body.get("image") if isinstance(body, dict) else None
                services[str(name)] = str(image) if image else ""
    else:
        section = ""
        service = ""
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            indent = len(line) - len(line.lstrip(" "))
            content = line.strip()
            if indent == 0:
                section = content.split(":", 1)[0]
                service = ""
            elif section == "services" and indent == 2 and content.endswith(":"):
                service = _unquote(content[:-1])
                services.setdefault(service, "")
            elif section == "services" and indent == 4 and service and content.startswith("image:"):
                services[service] = _unquote(content.split(":", 1)[1].strip())
    if not services:
        raise ValueError("no services in the output of docker compose config")
    return services


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


@dataclass(frozen=True)
class ContainerImage:
    """What image a compose service's container runs: its reference, image id and registry digests."""

    service: str
    reference: str
    image_id: str
    repo_digests: tuple[str, ...]
    version: str = ""  # the image's org.opencontainers.image.version label ("" when it has none)

    def rollback_reference(self) -> str:
        """Return the most exact reference to run this image again: ``repo@sha256:...`` if known, else the id."""
        repository = split_image_reference(self.reference).repository
        for digest in self.repo_digests:
            if split_image_reference(digest).repository == repository:
                return digest
        return self.repo_digests[0] if self.repo_digests else self.image_id


def parse_container_images(text: str) -> list[ContainerImage]:
    """Given lines ``SERVICE REFERENCE IMAGE_ID DIGEST[,DIGEST...] [VERSION]`` ('-' for none), return them.

    Raise ValueError on a line with fewer than three fields.
    """
    images: list[ContainerImage] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise ValueError(f"container image line {line!r} needs SERVICE REFERENCE IMAGE_ID")
        digests = fields[3] if len(fields) > 3 else "-"
        listed = tuple(item for item in digests.strip("[]").split(",") if item and item != "-")
        version = fields[4] if len(fields) > 4 and fields[4] not in ("-", "<no value>") else ""
        images.append(ContainerImage(service=fields[0], reference=fields[1], image_id=fields[2], repo_digests=listed,
                                     version=version))
    return images


@dataclass(frozen=True)
class ComposeContainer:
    """One container of ``docker compose ps``: its service, state (running, exited...) and health."""

    service: str
    state: str
    health: str


def parse_compose_ps(text: str) -> list[ComposeContainer]:
    """Given ``docker compose ps`` as ``SERVICE STATE [HEALTH]`` lines or JSON (lines or an array), return it.

    Raise ValueError if a JSON form does not parse.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        return [_compose_container(item) for item in _json(stripped, "docker compose ps")]
    containers: list[ComposeContainer] = []
    for line in stripped.splitlines():
        line = line.strip()
        if line.startswith("{"):
            containers.append(_compose_container(_json(line, "docker compose ps")))
        elif line:
            fields = line.split()
            containers.append(ComposeContainer(fields[0], fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else ""))
    return containers


def _json(text: str, command: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{command} JSON does not parse: {error.msg}") from None


def _compose_container(item: Any) -> ComposeContainer:
    if not isinstance(item, dict):
        raise ValueError("docker compose ps JSON item is not an object")
    return ComposeContainer(str(item.get("Service", "")), str(item.get("State", "")), str(item.get("Health", "") or ""))


# -- sequelize, checksums, files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One sequelize migration: ``up`` (recorded in SequelizeMeta) or ``down``, and its file name."""

    state: str
    name: str


MIGRATIONS_APPLIED = "--- applied"
MIGRATIONS_FILES = "--- files"


def parse_migration_listing(text: str) -> list[Migration]:
    """Given a migration probe's output (the SequelizeMeta names after ``--- applied``, the release's migration
    files after ``--- files``), return each file as up or down; raise ValueError if either part is missing.

    Why not ``sequelize db:migrate:status``: it creates SequelizeMeta when it is missing and runs the app's
    config code, so it is not read-only. A file is up when SequelizeMeta records its name.
    """
    lines = [line.strip() for line in text.splitlines()]
    if MIGRATIONS_APPLIED not in lines or MIGRATIONS_FILES not in lines:
        raise ValueError("the migration probe printed no SequelizeMeta names or no migration files")
    start, middle = lines.index(MIGRATIONS_APPLIED), lines.index(MIGRATIONS_FILES)
    applied = {line for line in lines[start + 1 : middle] if line}
    files = sorted(line for line in lines[middle + 1 :] if line.endswith((".js", ".cjs", ".ts")))
    if not files:
        raise ValueError("the release has no migration files where the probe looked")
    return [Migration("up" if name in applied else "down", name) for name in files]


def parse_sha256sum(text: str) -> str:
    """Given ``sha256sum FILE`` output, return the lower-case hex digest; raise ValueError if there is none."""
    match = re.match(r"^\s*\\?([0-9a-fA-F]{64})\b", text)
    if not match:
        raise ValueError("no sha256 digest in the output of sha256sum")
    return match.group(1).lower()


@dataclass(frozen=True)
class NewestFile:
    """The newest file of a directory, from ``find -printf '%T@ %s %p'``: mtime (epoch seconds), size, path."""

    mtime: float
    size: int
    path: str


def parse_newest_file(line: str) -> NewestFile | None:
    """Given one ``%T@ %s %p`` line (or nothing), return the file it names, or None for an empty line.

    Raise ValueError if the line is not in that format.
    """
    stripped = line.strip()
    if not stripped:
        return None
    fields = stripped.split(" ", 2)
    if len(fields) < 3:
        raise ValueError(f"{line!r} is not 'MTIME SIZE PATH'")
    try:
        return NewestFile(mtime=float(fields[0]), size=int(fields[1]), path=fields[2])
    except ValueError:
        raise ValueError(f"{line!r} is not 'MTIME SIZE PATH'") from None


# -- WhatsApp channels (Zpro / Izing family: the channels live in the application's database) -----------

CHANNEL_COLUMNS_MARK = "--- channel columns"
CHANNEL_ROWS_MARK = "--- channels"
CHANNEL_QUERY_FAILED = "channels_query_failed"
CONNECTED = "CONNECTED"


@dataclass(frozen=True)
class Channel:
    """One WhatsApp channel row: its id, name, status (CONNECTED, DISCONNECTED, qrcode, OPENING...), type and tenant."""

    id: str
    name: str
    status: str
    type: str
    tenant: str

    @property
    def connected(self) -> bool:
        """Whether the channel is CONNECTED (the only state in which it carries messages)."""
        return self.status == CONNECTED


@dataclass(frozen=True)
class ChannelProbe:
    """What the channel probe printed: the table's columns as information_schema lists them, and its rows.

    ``columns`` is empty when the table is not there; ``query_failed`` says the SELECT itself failed.
    """

    columns: tuple[str, ...]
    channels: tuple[Channel, ...]
    query_failed: bool


def parse_channel_probe(text: str) -> ChannelProbe:
    """Given the channel probe's output (``--- channel columns``, one column name a line, ``--- channels``, then
    ``id|status|type|tenant|name`` rows as ``psql -tA`` prints them), return it parsed.

    The probe prints every value with its newlines and '|' as spaces, so a row is one line of exactly five
    fields; lines end at "\n" only (as psql ends rows: another line break inside a value stays in the value).
    Raise ValueError if either mark is missing (the probe did not run to its end), a row has not exactly five
    fields, or two rows carry the same channel id (one would hide the other: which one is the channel?).
    """
    lines = text.split("\n")
    stripped = [line.strip() for line in lines]
    if CHANNEL_COLUMNS_MARK not in stripped or CHANNEL_ROWS_MARK not in stripped:
        raise ValueError("the channel probe printed no column list or no channel rows")
    start, middle = stripped.index(CHANNEL_COLUMNS_MARK), stripped.index(CHANNEL_ROWS_MARK)
    columns = tuple(line for line in stripped[start + 1 : middle] if line)
    channels = []
    failed = False
    for line in lines[middle + 1 :]:
        if not line.strip():
            continue
        if line.strip() == CHANNEL_QUERY_FAILED:
            failed = True
            continue
        fields = line.split("|")
        if len(fields) != 5:
            raise ValueError(f"channel row {line[:80]!r} is not id|status|type|tenant|name")
        channel_id, status, kind, tenant, name = (field.strip() for field in fields)
        channels.append(Channel(id=channel_id, name=name, status=status, type=kind, tenant=tenant))
    _refuse_repeated_ids(channels)
    return ChannelProbe(columns=columns, channels=tuple(channels), query_failed=failed)


def _refuse_repeated_ids(channels: list[Channel]) -> None:
    """Given the parsed rows, raise ValueError naming the first channel id that is in more than one row."""
    counts = collections.Counter(channel.id for channel in channels)
    repeated = [channel_id for channel_id, count in counts.items() if count > 1]
    if repeated:
        raise ValueError(f"channel id {repeated[0]} is in {counts[repeated[0]]} rows: the channel id column (var "
                         "channel_id_column) must be unique, or one row hides another; cannot tell the channels' states")


def version_major(version: str) -> int | None:
    """Given a version such as ``1.64.3``, ``v2.1`` or ``2.27.0-alpine``, return its major number; None if it has none
    (``latest``, ``stable``, "")."""
    match = re.match(r"^v?(\d+)(?:[.\-+_]|$)", version.strip())
    return int(match.group(1)) if match else None


def tag_of(reference: str) -> str:
    """Given an image reference, return its tag ("" when it has none or only a digest)."""
    return split_image_reference(reference).tag or "" if reference.strip() else ""
