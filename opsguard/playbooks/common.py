"""What the playbooks share: reading params, quoting, apt options, and the common read-only steps.

Two rules every playbook follows, enforced here:
- every value put into shell text is quoted (``quote``) or is a fact made shell-safe by ``shell_word``
  / ``word_list`` (the runner pastes ``{{fact}}`` values into commands as they are);
- every path on a host comes from a param (a playbook var), so the sandbox can point it elsewhere.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opsguard.durations import MAX_DURATION_SECONDS, format_duration
from opsguard.errors import ConfigError
from opsguard.hostfacts import (
    CHANNEL_COLUMNS_MARK,
    CHANNEL_QUERY_FAILED,
    CHANNEL_ROWS_MARK,
    Channel,
    ChannelProbe,
    parse_channel_probe,
    parse_df,
    parse_free,
    parse_key_values,
    parse_pm2_jlist,
    pm2_not_running,
)
from opsguard.plan import Check, CopyItem, Download, Facts, Poll, Step
from opsguard.readonly import PM2_DAEMON_RUNNING, PM2_NOT_RUNNING, READ_ONLY_PGOPTIONS

quote = shlex.quote

# -- params ----------------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_SAFE_WORD = re.compile(r"[A-Za-z0-9@%+=:,./_-]+")


def text_param(params: Mapping[str, Any], key: str) -> str:
    """Given params and a key, return its non-empty one-line string; raise ConfigError otherwise."""
    value = params.get(key)
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\x00" in value:
        raise ConfigError(f"param {key}: must be a non-empty one-line string (got {value!r})")
    return value


def path_param(params: Mapping[str, Any], key: str) -> str:
    """Given params and a key, return its absolute, normalised host path; raise ConfigError otherwise."""
    value = text_param(params, key)
    if not value.startswith("/"):
        raise ConfigError(f"param {key}: {value!r} must be an absolute path")
    normalised = posixpath.normpath(value)
    return "/" if normalised in ("/", "//") else normalised


def relative_paths_param(params: Mapping[str, Any], key: str) -> list[str]:
    """Given params and a key holding a list of paths relative to the app dir, return them normalised.

    Raise ConfigError for an absolute path, a '..' component or a value that is not a string.
    """
    values = params.get(key)
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"param {key}: must be a list of relative paths (got {values!r})")
    paths: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise ConfigError(f"param {key}: {value!r} is not a relative path")
        normalised = posixpath.normpath(value.strip())
        if normalised.startswith("/") or normalised == "." or ".." in normalised.split("/"):
            raise ConfigError(f"param {key}: {value!r} must be a path inside the app dir (no '/' start, no '..')")
        paths.append(normalised)
    return paths


def paths_param(params: Mapping[str, Any], key: str) -> list[str]:
    """Given params and a key holding a list of absolute host paths, return them; raise ConfigError otherwise."""
    values = params.get(key)
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"param {key}: must be a non-empty list of absolute paths (got {values!r})")
    return [path_param({key: value}, key) for value in values]


# Names of params that hold seconds (a timeout, a wait, a poll gap, how long a state must hold).
_DURATION_ENDINGS = ("_timeout", "_wait", "_every", "_for")
# Any other number (sizes in MB or GB, counts): large enough for any host, small enough to catch a typo.
NUMBER_MAXIMUM = 1e6


def number_maximum(key: str) -> tuple[float, str]:
    """Given a param name, return the largest value it may hold and that bound in words.

    Durations (names ending in _timeout, _wait, _every, _for) are at most 7 days, percentages 100,
    ports 65535, any other number NUMBER_MAXIMUM.
    """
    if key.endswith(_DURATION_ENDINGS):
        return MAX_DURATION_SECONDS, f"{MAX_DURATION_SECONDS:.0f} seconds ({format_duration(MAX_DURATION_SECONDS)})"
    if key.endswith("_percent"):
        return 100.0, "100"
    if key.endswith("_port"):
        return 65535.0, "65535"
    return NUMBER_MAXIMUM, f"{NUMBER_MAXIMUM:.0f}"


def number_param(params: Mapping[str, Any], key: str, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    """Given params and a key, return its number, finite and from ``minimum`` to ``maximum``.

    Without ``maximum``, the bound is number_maximum(key) (7 days for a duration). Raise ConfigError
    for a value that is not a number, not finite (a nan or inf wait would poll forever), or out of range.
    """
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"param {key}: must be a number >= {minimum:g} (got {value!r})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"param {key}: must be a finite number (got {value!r})")
    if value < minimum:
        raise ConfigError(f"param {key}: must be a number >= {minimum:g} (got {value!r})")
    highest, words = number_maximum(key) if maximum is None else (maximum, f"{maximum:g}")
    if value > highest:
        raise ConfigError(f"param {key}: must be at most {words} (got {value!r})")
    return float(value)


def name_param(params: Mapping[str, Any], key: str) -> str:
    """Given params and a key, return a user, process or container name (safe characters only).

    Raise ConfigError if it holds anything but letters, digits and ``@ % + = : , . / _ -``.
    """
    value = text_param(params, key)
    if not _SAFE_WORD.fullmatch(value):
        raise ConfigError(f"param {key}: {value!r} may hold only letters, digits and @%+=:,./_-")
    return value


def timestamp_param(params: Mapping[str, Any]) -> str:
    """Given params, return the run timestamp ``ts`` (YYYYMMDDTHHMMSSZ); raise ConfigError if absent or malformed."""
    value = params.get("ts")
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ConfigError(f"param ts: {value!r} is not a run timestamp like 20250131T235959Z")
    return value


# -- facts made safe for shell text ----------------------------------------------------------------------


def shell_word(value: str) -> str:
    """Given a value read on a host, return it as one shell word (quoted only when it needs to be)."""
    return shlex.quote(value)


def word_list(values: Iterable[str]) -> str:
    """Given names read on a host, return them space-separated for a shell ``for`` list.

    Raise ValueError if one of them holds a character that would need quoting.
    """
    words = list(values)
    for word in words:
        if not _SAFE_WORD.fullmatch(word):
            raise ValueError(f"{word!r} holds characters that are not safe in a shell word")
    return " ".join(words)


def guarded(test: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """Given a check function, return one that reports unparseable output as a failure instead of raising."""

    def run(stdout: str) -> str | None:
        try:
            return test(stdout)
        except ValueError as error:
            return f"unexpected output: {error}"

    return run


# -- apt -------------------------------------------------------------------------------------------------

APT_ENV = "export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l UCF_FORCE_CONFFOLD=1"


def apt_get(arguments: str, lock_timeout: int) -> str:
    """Given apt-get arguments and the dpkg lock wait in seconds, return the full apt-get command line.

    Lock::Timeout waits for a held dpkg lock instead of failing at once; confdef/confold keep local
    config files; the exported NEEDRESTART_MODE=l stops needrestart restarting services by itself, and
    UCF_FORCE_CONFFOLD=1 covers ucf-managed files (sshd_config) that --force-confold does not.
    """
    options = (
        f"-o DPkg::Lock::Timeout={int(lock_timeout)} "
        "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
    )
    return f"{APT_ENV}; apt-get {options} {arguments}"


# -- common read-only steps ------------------------------------------------------------------------------


def nearest_existing(variable: str, path: str) -> str:
    """Given a shell variable name and a host path, return shell text setting it to the path's nearest existing ancestor."""
    return f'{variable}={quote(path)}; while [ ! -e "${variable}" ]; do {variable}=$(dirname "${variable}"); done'


def disk_check(limit_percent: float) -> Check:
    """Given the usage limit, return a check of ``df -P`` output failing for any mount at or above it."""

    def test(stdout: str) -> str | None:
        full = []
        for row in parse_df(stdout):
            if row.used_percent >= limit_percent and f"{row.mount} is {row.used_percent}%" not in full:
                full.append(f"{row.mount} is {row.used_percent}%")
        if full:
            return f"disk too full: {', '.join(full)} used (limit {limit_percent:g}%)"
        return None

    return Check(f"every filesystem below {limit_percent:g}% used", guarded(test))


def disk_step(paths: list[str], limit_percent: float, *, also: Iterable[str] = (), why: str = "") -> Step:
    """Given host paths, a usage limit and paths that may not exist yet (``also``), return the df step.

    A path in ``also`` (e.g. a backup dir made later) is measured at its nearest existing ancestor.
    """
    parts = []
    arguments = [quote(path) for path in paths]
    for index, path in enumerate(also):
        parts.append(nearest_existing(f"p{index}", path))
        arguments.append(f'"$p{index}"')
    parts.append(f"df -P {' '.join(arguments)}")
    return Step(
        name="disk usage below the limit",
        command="; ".join(parts),
        mutates=False,
        timeout=60,
        check=disk_check(limit_percent),
        why=why or "a full disk makes apt, npm and pg_dump fail half-way",
    )


def memory_step(minimum_gb: float) -> Step:
    """Given the RAM+swap minimum in GB (10^9 bytes), return the ``free -b`` step that checks it."""

    def test(stdout: str) -> str | None:
        memory = parse_free(stdout)
        total = memory.ram_total + memory.swap_total
        if total < minimum_gb * 1e9:
            return (
                f"RAM+swap is {total / 1e9:.1f} GB (RAM {memory.ram_total / 1e9:.1f} GB + swap "
                f"{memory.swap_total / 1e9:.1f} GB), needs {minimum_gb:g} GB: the frontend build can hang; add swap"
            )
        return None

    return Step(
        name="RAM+swap enough for the build",
        command="free -b",
        mutates=False,
        timeout=30,
        check=Check(f"RAM+swap >= {minimum_gb:g} GB", guarded(test)),
        why="the frontend build (npm run build) is RAM-heavy and can hang without ~4 GB RAM+swap",
    )


def lock_step(lock_files: list[str]) -> Step:
    """Given the apt/dpkg lock files, return the step that fails when one is held or apt/dpkg is running."""
    # fuser sees who holds a lock file open (dpkg, apt, unattended-upgrades); without it, fall back to
    # the process names (ps, not pgrep: pgrep -x refuses patterns longer than 15 characters). One line
    # per file, with its path written out: the read-only check sees every argument fuser gets.
    checks = [f'  if [ -e {quote(path)} ] && fuser {quote(path)} >/dev/null 2>&1; then held="$held {path}"; fi'
              for path in lock_files]
    command = "\n".join(
        [
            'held=""; busy=""',
            "if command -v fuser >/dev/null 2>&1; then",
            *checks,
            "else",
            "  busy=$(ps -eo pid=,comm= | awk '$2 ~ \"^(apt|apt-get|aptitude|dpkg)$\" { printf \"%s \", $1 }')",
            "fi",
            'echo "held=$held"',
            'echo "busy=$busy"',
        ]
    )

    def test(stdout: str) -> str | None:
        values = parse_key_values(stdout)
        if "held" not in values or "busy" not in values:
            return "the lock check printed no result"
        if values["held"] or values["busy"]:
            return f"apt/dpkg is busy (locks held: {values['held'] or 'none'}; apt/dpkg pids: {values['busy'] or 'none'})"
        return None

    return Step(
        name="no apt/dpkg lock held",
        command=command,
        mutates=False,
        timeout=30,
        check=Check("no process holds an apt/dpkg lock", guarded(test)),
        why="an unattended upgrade in progress would make the change wait or fail half-way",
    )


# pm2 runs as the deploy user: run with sudo_user, root's pm2 list is empty. SAFETY: pm2 starts its
# daemon (writing ~/.pm2) when none runs, so the probe asks pm2 only after finding a live daemon.
PM2_JLIST = f"if {PM2_DAEMON_RUNNING}; then pm2 jlist; else echo {PM2_NOT_RUNNING}; fi"


def pm2_online_problem(stdout: str, names: list[str]) -> str | None:
    """Given pm2 jlist output and process names, return None if each is listed and online, else why not."""
    if pm2_not_running(stdout):
        return ("pm2 is not running for this user (no live daemon; opsguard does not start one, that would "
                f"write ~/.pm2): {', '.join(names)} are down")
    processes = {process.name: process for process in parse_pm2_jlist(stdout)}
    problems = []
    for name in names:
        process = processes.get(name)
        if process is None:
            problems.append(f"{name} is not in pm2's list (run as the deploy user?)")
        elif process.status != "online":
            problems.append(f"{name} is {process.status}")
    return "; ".join(problems) or None


def pm2_restarts_facts(names: dict[str, str]) -> Facts:
    """Given {fact name: pm2 process name}, return Facts reading each process's restart count from pm2 jlist."""

    def parse(stdout: str) -> dict[str, str]:
        if pm2_not_running(stdout):
            raise ValueError("pm2 is not running for this user")
        processes = {process.name: process for process in parse_pm2_jlist(stdout)}
        facts = {}
        for fact, process_name in names.items():
            if process_name not in processes:
                raise ValueError(f"{process_name} is not in pm2's list")
            facts[fact] = str(processes[process_name].restarts)
        return facts

    return Facts(tuple(names), parse)


def http_status_command(url: str) -> str:
    """Given a URL, return a curl command printing only the HTTP status (000 and a failing exit when nothing answers)."""
    return f"curl -sS -o /dev/null --max-time 5 -w '%{{http_code}}\\n' {quote(url)}"


def http_status_check(description: str, accept: Callable[[int], bool]) -> Check:
    """Given a description and a predicate on the HTTP status, return a check of ``http_status_command`` output."""

    def test(stdout: str) -> str | None:
        text = stdout.strip().splitlines()[-1:] or [""]
        if not text[0].isdigit():
            return f"no HTTP status in the output ({stdout.strip()[:80]!r})"
        status = int(text[0])
        return None if accept(status) else f"answered HTTP {status}"

    return Check(description, test)


def read_only_psql(container: str, user: str, database: str, query: str) -> str:
    """Given a Postgres container, user, database (shell words or {{facts}}) and a SELECT, return the probe text.

    SAFETY: PGOPTIONS starts the session with default_transaction_read_only=on, so PostgreSQL itself
    refuses any write the query might attempt; -X skips ~/.psqlrc. The database goes in PGDATABASE, not
    -d: psql reads a -d value holding ``=`` or ``://`` (from a host's .env, say) as connection settings,
    whose ``options=`` would override PGOPTIONS; libpq reads PGDATABASE as a name only.
    """
    return (f"docker exec -e PGOPTIONS={quote(READ_ONLY_PGOPTIONS)} -e PGDATABASE={database} {quote(container)} "
            f"psql -X -U {user} -tAc {quote(query)}")


# -- the database dump every application change takes first -------------------------------------------

# The files apt and dpkg lock while they run (Debian/Ubuntu); the lock step looks for a holder of each.
DPKG_LOCK_FILES = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"]


def dump_verification_lines(label: str, dump_file: str, restore_in: str) -> list[str]:
    """Given a dump's label, its file (each a shell word) and how to reach pg_restore (``docker exec -i C``),
    return the shell lines that print ``dump LABEL SIZE ENTRIES`` for that ``pg_dump -Fc`` file.

    Read-only: stat, and ``pg_restore -l`` (it only lists the archive's table of contents).
    """
    return [
        f"size=$(stat -c %s {dump_file}) || exit 1",
        # cat, not `< FILE`: the vocabulary refuses a computed redirection target (bash opens /dev/tcp/... itself).
        f"list=$(cat -- {dump_file} | {restore_in} pg_restore -l) || exit 1",
        f"echo \"dump {label} $size $(printf '%s\\n' \"$list\" | grep -c -v '^;')\"",
    ]


def service_dumps_command(compose_dir: str, run_backup: str, compose: str) -> str:
    """Given the compose dir, the run's backup dir and the compose command (with its -f files), return the
    read-only text that prints ``expected=SERVICES`` then ``dump SERVICE SIZE ENTRIES`` for each database
    service's dump (judged by dumps_problem)."""
    return "\n".join([
        f"cd {quote(compose_dir)} || exit 1",
        'echo "expected={{db_services}}"',
        "for service in {{db_services}}; do",
        f'  file={quote(run_backup)}/"$service.dump"',
        *(f"  {line}" for line in dump_verification_lines('"$service"', '"$file"', f'{compose} exec -T -- "$service"')),
        "done",
    ])  # fmt: skip


def dumps_problem(stdout: str, expected: list[str] | None = None) -> str | None:
    """Given dump verification output (``expected=LABELS`` unless ``expected`` is given, then ``dump LABEL SIZE
    ENTRIES`` lines), return None if every expected dump is non-empty and pg_restore lists entries in it, else why not.

    Output without an ``expected=`` line (the script did not run to its end) is a problem, never a pass.
    """
    dumps = {fields[1]: fields[2:] for fields in (line.split() for line in stdout.splitlines()) if len(fields) >= 2 and fields[0] == "dump"}
    if expected is None:
        values = parse_key_values(stdout)
        if "expected" not in values:
            return "the dump verification printed no result"
        expected = values["expected"].split()
    problems = []
    for label in expected:
        size, entries = ([*dumps.get(label, []), "", ""])[:2]
        if not size.isdigit() or int(size) == 0:
            problems.append(f"the dump of {label} is empty or missing")
        elif not entries.isdigit() or int(entries) == 0:
            problems.append(f"pg_restore -l lists nothing in the dump of {label}")
    return "; ".join(problems) or None


# -- WhatsApp channels: part of "healthy" on a Zpro host -------------------------------------------------

# The vars every playbook that checks channels declares (the same names, so one inventory entry serves all).
# Zpro renames models (WhatsappZPRO), so the table and every column are vars; "" as the table: no channels.
CHANNEL_VARS: dict[str, Any] = {
    "channels_table": "Whatsapps",
    "channel_id_column": "id",
    "channel_name_column": "name",
    "channel_status_column": "status",
    "channel_type_column": "type",
    "channel_tenant_column": "tenantId",
    "channels_wait": 300.0,  # seconds for every channel CONNECTED before to be CONNECTED again
}
# Column role -> the var naming it, in the order the probe selects them.
_CHANNEL_COLUMN_VARS = (("id", "channel_id_column"), ("status", "channel_status_column"),
                        ("type", "channel_type_column"), ("tenant", "channel_tenant_column"),
                        ("name", "channel_name_column"))  # fmt: skip
_SQL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CHANNELS_CONNECTED_FACT = "channels_connected_before"


@dataclass(frozen=True)
class ChannelTable:
    """Where a Zpro database keeps its WhatsApp channels: the table and the column of each role."""

    table: str
    columns: Mapping[str, str]  # role (id, status, type, tenant, name) -> column name

    def column_var(self, column: str) -> str:
        """Given a column name, return the var that names it (for messages: "set channel_tenant_column")."""
        for role, var in _CHANNEL_COLUMN_VARS:
            if self.columns[role] == column:
                return var
        raise KeyError(column)


def channel_table_param(params: Mapping[str, Any]) -> ChannelTable | None:
    """Given params holding CHANNEL_VARS, return the channel table, or None when ``channels_table`` is "".

    Raise ConfigError for a table or column name that is not a plain SQL identifier (letters, digits, '_').
    """
    table = params.get("channels_table")
    if table == "":
        return None
    names = {"channels_table": table, **{var: params.get(var) for _, var in _CHANNEL_COLUMN_VARS}}
    for var, value in names.items():
        if not isinstance(value, str) or not _SQL_IDENTIFIER.fullmatch(value):
            raise ConfigError(f"param {var}: {value!r} must be a table/column name (letters, digits, '_'; "
                              "channels_table \"\" when the host has no WhatsApp channels)")
    return ChannelTable(table=str(table), columns={role: str(params[var]) for role, var in _CHANNEL_COLUMN_VARS})


def channel_probe_command(container: str, user: str, database: str, table: ChannelTable) -> str:
    """Given the Postgres container, user, database (shell words or {{facts}}) and the channel table, return the
    read-only probe: the table's columns from information_schema, then every channel as id|status|type|tenant|name.

    SAFETY: both queries run in a read-only transaction (read_only_psql); only these five columns are read
    (never the session column: it holds the WhatsApp credentials).
    """
    columns_query = ("select column_name from information_schema.columns where table_schema not in "
                     f"('pg_catalog', 'information_schema') and table_name = '{table.table}' order by ordinal_position")
    # SAFETY: psql -tA prints values as they are: a newline in ANY column would start a row of its own (a forged
    # "7|CONNECTED|..." inside another channel's type) and a '|' would shift the fields. Every column is read as
    # text with both shown as spaces, so each channel is exactly one line of five fields.
    selected = [_one_line_text(table.columns[role]) for role, _ in _CHANNEL_COLUMN_VARS]
    rows_query = f'select {", ".join(selected)} from "{table.table}" order by "{table.columns["id"]}"'
    return "\n".join([
        f"echo {quote(CHANNEL_COLUMNS_MARK)}",
        read_only_psql(container, user, database, columns_query) + " || exit 1",
        f"echo {quote(CHANNEL_ROWS_MARK)}",
        # A missing table makes the SELECT fail: say so on stdout, so the check can name the var to set.
        read_only_psql(container, user, database, rows_query) + f" || echo {CHANNEL_QUERY_FAILED}",
    ])  # fmt: skip


def _one_line_text(column: str) -> str:
    """Given a column name (a checked identifier), return the SQL printing it as text with newlines and '|' as spaces."""
    return f"translate(\"{column}\"::text, chr(10) || chr(13) || chr(124), '   ')"


def channel_table_problem(probe: ChannelProbe, table: ChannelTable, database: str = "the database") -> str | None:
    """Given a channel probe and the table it looked for, return None if the table and every column are there,
    else what is missing and the var to set."""
    if not probe.columns:
        return (f"no table {table.table!r} in {database} (information_schema): set the var channels_table to the table "
                "Zpro keeps its WhatsApp channels in (e.g. --var channels_table=WhatsappsZPRO, or in the host's "
                "[hosts.NAME.vars]); channels_table = \"\" only if the host has no WhatsApp channels")
    missing = [column for column in table.columns.values() if column not in probe.columns]
    if missing:
        wanted = ", ".join(f"{column!r} (var {table.column_var(column)})" for column in missing)
        return f"table {table.table!r} has no column {wanted}; its columns: {', '.join(probe.columns)}: set the var"
    if probe.query_failed:
        return f"the SELECT of the channels from {table.table!r} failed (see the step's stderr)"
    return None


def channels_connected_fact(stdout: str) -> dict[str, str]:
    """Given the channel probe's output, return {channels_connected_before: the ids of the CONNECTED channels, comma-
    separated, or "none"}; raise ValueError if an id holds characters unsafe in shell text."""
    connected = [channel.id for channel in parse_channel_probe(stdout).channels if channel.connected]
    return {CHANNELS_CONNECTED_FACT: ",".join(word_list(connected).split()) or "none"}


def channels_step(container: str, table: ChannelTable, *, user: str = "{{postgres_user}}",
                  database: str = "{{postgres_db}}") -> Step:
    """Given the Postgres container and the channel table, return the preflight step recording every channel's status.

    It fails (a refusal before the snapshot) when the table or a column is missing, naming the var to set.
    """

    def test(stdout: str) -> str | None:
        return channel_table_problem(parse_channel_probe(stdout), table, f"database {database}")

    return Step(
        name="WhatsApp channels (recorded)",
        command=channel_probe_command(container, user, database, table),
        mutates=False,
        timeout=60,
        check=Check(f"table {table.table!r} with its five channel columns", guarded(test)),
        facts=Facts((CHANNELS_CONNECTED_FACT,), channels_connected_fact),
        why="the channels CONNECTED now must be CONNECTED again after the change (a lost Baileys session "
        "means someone scans a QR code again); read-only SQL, never the session column",
    )


def channel_advice(channel: Channel | None, channel_id: str, waited: str) -> str:
    """Given a channel that is not back (None when its row is gone), its id and how long was waited, return one
    line: which channel, its tenant, its state and what to do."""
    if channel is None:
        return f"channel id {channel_id} is no longer in the table: look in Zpro's channel list"
    who = f"{channel.name!r} (id {channel.id}, tenant {channel.tenant}, {channel.type or 'type unknown'})"
    if channel.status == "qrcode":
        return (f"{who} is qrcode: its WhatsApp session is lost; someone of tenant {channel.tenant} must scan the QR "
                f"code again (Zpro: Channels > {channel.name} > QR code, with the channel's phone)")
    if channel.status == "DISCONNECTED":
        return (f"{who} is DISCONNECTED: reconnect it in Zpro (Channels > {channel.name} > connect); if it then asks "
                "for a QR code, the session is lost and the phone must scan again")
    return (f"{who} is still {channel.status or 'without a status'} after {waited}: look at the backend's log; if it "
            "ends in qrcode the phone must scan again")


def channels_down(stdout: str) -> list[str]:
    """Given the channel probe's output, return one line per channel that is not CONNECTED now, with its tenant and
    what to do (what a nightly `opsguard health` reports); raise ValueError if the probe did not finish."""
    return [channel_advice(channel, channel.id, "now") for channel in parse_channel_probe(stdout).channels if not channel.connected]


def channels_back_problem(stdout: str, waited: str = "the wait") -> str | None:
    """Given ``connected_before=IDS`` then the channel probe's output, return None if every channel CONNECTED
    before is CONNECTED now, else one line naming each that is not (its tenant, its state, what to do)."""
    head = stdout.split(CHANNEL_COLUMNS_MARK, 1)[0]
    before = parse_key_values(head).get("connected_before")
    if before is None:
        return "the channel check printed no list of the channels connected before"
    probe = parse_channel_probe(stdout)
    if probe.query_failed:
        return "the SELECT of the channels failed"
    expected = [] if before in ("", "none") else before.split(",")
    by_id = {channel.id: channel for channel in probe.channels}
    missing = [channel_id for channel_id in expected if channel_id not in by_id or not by_id[channel_id].connected]
    if not missing:
        return None
    advice = "; ".join(channel_advice(by_id.get(channel_id), channel_id, waited) for channel_id in missing)
    return f"{len(missing)} of {len(expected)} WhatsApp channel(s) CONNECTED before are not back: {advice}"


def channels_back_step(container: str, table: ChannelTable, *, wait: float, every: float,
                       user: str = "{{postgres_user}}", database: str = "{{postgres_db}}",
                       connected: str = "{{" + CHANNELS_CONNECTED_FACT + "}}") -> Step:
    """Given the Postgres container, the channel table, the wait and the poll gap in seconds, return the verify step
    that waits until every channel CONNECTED before (``connected``: ids, or "none") is CONNECTED again.

    It marks the end of the second downtime (``channels-back``): until every channel carries messages again.
    """
    from opsguard.durations import format_duration

    waited = format_duration(wait)
    return Step(
        name="WhatsApp channels back (CONNECTED)",
        command=f"echo connected_before={connected}\n" + channel_probe_command(container, user, database, table),
        mutates=False,
        timeout=60,
        check=Check(f"every channel CONNECTED before is CONNECTED again within {waited}",
                    guarded(lambda stdout: channels_back_problem(stdout, waited))),
        poll=Poll(every=every, within=wait),
        downtime="channels-back",
        why="Baileys channels go OPENING then CONNECTED after a backend restart when their session is intact; "
        "one left in qrcode lost its session",
    )


# -- copies off the host (opsguard/copies.py does the copying; the playbooks say what and measure it) -------

COPY_VARS: dict[str, Any] = {
    "copies_keep": 3,  # runs whose copies stay in <state_dir>/copies/<host>/ (older ones are removed, unless unsettled)
    "copies_max_gb": 20.0,  # cap on one run's copies; refused before the snapshot above it or above local free space
}
COPIES_FACT = "copies_bytes"


def copies_size_step(lines: list[str], *, why: str) -> Step:
    """Given shell lines printing ``NAME_bytes=N`` for each part of the copies (and ``missing=VAR:PATH`` for a path
    a var names that is not there), return the preflight step whose fact ``copies_bytes`` is their sum."""

    def parse(stdout: str) -> dict[str, str]:
        values = parse_key_values(stdout)
        sizes = {key: value for key, value in values.items() if key.endswith("_bytes")}
        if not sizes or not all(value.isdigit() for value in sizes.values()):
            raise ValueError(f"sizes not measured: {sizes}")
        return {COPIES_FACT: str(sum(int(value) for value in sizes.values()))}

    def test(stdout: str) -> str | None:
        missing = [line.split("=", 1)[1] for line in stdout.splitlines() if line.startswith("missing=")]
        if missing:
            return "; ".join(f"{entry.split(':', 1)[1]} (var {entry.split(':', 1)[0]}) is not there" for entry in missing)
        parse(stdout)
        return None

    return Step(
        name="size of the copies off the host",
        command="\n".join(lines),
        mutates=False,
        timeout=300,
        check=Check("every part measured, every configured path there", guarded(test)),
        facts=Facts((COPIES_FACT,), parse),
        why=why,
    )


def copies_download(params: Mapping[str, Any], items: Iterable[CopyItem]) -> Download:
    """Given params holding COPY_VARS and the CopyItems, return the Download of a copy step."""
    keep = int(number_param(params, "copies_keep", minimum=1, maximum=1000))
    max_bytes = int(number_param(params, "copies_max_gb", minimum=0.001) * 1e9)
    return Download(items=tuple(items), keep=keep, max_bytes=max_bytes, size_fact=COPIES_FACT)


def du_bytes_line(name: str, paths: Iterable[str]) -> str:
    """Given a size name and host paths (missing ones count 0), return the line printing ``NAME_bytes=N`` (links followed)."""
    quoted = " ".join(quote(path) for path in paths)
    if not quoted:
        return f"echo {name}_bytes=0"
    return f'echo "{name}_bytes=$(du -scbL -- {quoted} 2>/dev/null | tail -n 1 | cut -f1)"'
