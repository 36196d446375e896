"""The postgres client tools, on the host and inside the database container: psql, pg_dump, pg_restore, pg_isready.

The Zpro database answers the few queries the playbooks ask: its size (a ~175 MiB database),
version(), SELECT 1, the applied migrations (SELECT ... FROM "SequelizeMeta"), read from the
state the npx sequelize fake keeps, and the WhatsApp channels (channels.py): the channel table's
columns from information_schema and SELECTs of its columns; any other query prints nothing. pg_dump
writes a small custom format archive (PGDMP magic) holding the applied migrations, to stdout or to
-f/--file inside the sandbox root; pg_restore needs an archive (a file or stdin: `docker exec`
without -i passes no stdin on), -l lists its tables, and a restore into a database (-d) puts the
archive's migrations back (what `pg_restore --clean` of a pre-migration dump does to SequelizeMeta).
"""

from __future__ import annotations

from .core import REFUSED_OUTSIDE, Call, err, options_and_words, out, out_bytes
from .migrations import applied_migrations, save_applied_migrations
from .recording import stdin_head

PG_DUMP_BYTES = b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01" + b"opsguard sandbox dump\n" * 64
_MIGRATIONS_LINE = b"migrations:"


def dump_bytes(call: Call) -> bytes:
    """Return the archive pg_dump writes now: the header, the applied migrations, then filler."""
    return PG_DUMP_BYTES[:13] + _MIGRATIONS_LINE + ",".join(applied_migrations(call)).encode() + b"\n" + PG_DUMP_BYTES[13:]


DATABASE_BYTES = 183_500_800  # what pg_database_size answers: a ~175 MiB Zpro database


def pg_dump(call: Call) -> int:
    """Answer pg_dump on the host: the archive to -f/--file (refused outside the sandbox root), else stdout."""
    target = None
    for position, arg in enumerate(call.args):
        if arg == "-f" and position + 1 < len(call.args):
            target = call.args[position + 1]
        elif arg.startswith("--file="):
            target = arg.split("=", 1)[1]
    if target is None:
        return dump_to_stdout(call)
    if not call.inside_root(target):
        err(f"sandbox stub: refusing to write {target} outside the sandbox root {call.root}\n")
        return REFUSED_OUTSIDE
    with open(target, "wb") as dump:
        dump.write(dump_bytes(call))
    return 0


def dump_to_stdout(call: Call) -> int:
    """Write the archive to stdout, as pg_dump without -f does; return 0."""
    out_bytes(dump_bytes(call))
    return 0


def pg_restore(call: Call) -> int:
    """Answer pg_restore on the host."""
    return pg_restore_answer(call, call.args, call.stdin_bytes)


def pg_restore_answer(call: Call, args: list[str], stdin_bytes: int) -> int:
    """Given pg_restore's arguments and the bytes it got on stdin, answer it; return 1 if it got no archive.

    With -l it lists the archive; with -d it restores the archive's migrations into the database (and, like
    ``--clean``, drops what came after the dump).
    """
    _, files = options_and_words(args, ("-U", "-d", "-f", "-h", "-p", "-n", "-t", "-j", "-L", "-F"))
    if not files and stdin_bytes == 0:
        # Nothing on stdin: `docker exec` without -i does not pass it on.
        err("pg_restore: error: input file is too short (read 0, expected 5)\n")
        return 1
    if "-l" in args or "--list" in args:
        out(pg_restore_listing())
        return 0
    if "-d" in args or any(arg.startswith("--dbname") for arg in args):
        archive = stdin_head()
        if files:
            with open(files[0], "rb") as source:
                archive = source.read(65536)
        if not archive.startswith(b"PGDMP"):
            err("pg_restore: error: input file does not appear to be a valid archive\n")
            return 1
        for line in archive.split(b"\n"):
            start = line.find(_MIGRATIONS_LINE)
            if start >= 0:
                names = line[start + len(_MIGRATIONS_LINE) :].decode()
                save_applied_migrations(call, [name for name in names.split(",") if name])
    return 0


def pg_isready_answer() -> int:
    """Answer pg_isready: the server accepts connections."""
    out("/var/run/postgresql:5432 - accepting connections\n")
    return 0


def pg_restore_listing() -> str:
    """Return what pg_restore -l prints for the sandbox dump: the Zpro tables and their data."""
    return (
        ";\n; Archive created at 2024-11-27 03:00:00 UTC\n;     dbname: zpro\n;     Format: CUSTOM\n;\n"
        "215; 1259 16385 TABLE public Tenants zpro\n216; 1259 16392 TABLE public Contacts zpro\n"
        "3410; 0 16385 TABLE DATA public Tenants zpro\n3411; 0 16392 TABLE DATA public Contacts zpro\n"
    )


def psql(call: Call) -> int:
    """Answer psql on the host."""
    return psql_answer(call, call.args)


def psql_answer(call: Call, args: list[str]) -> int:
    """Answer psql: the database size, version(), SELECT 1 and the applied migrations (SequelizeMeta); others print nothing."""
    query, tuples_only, unaligned, index = None, False, False, 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--command="):
            query = arg.split("=", 1)[1]
        elif arg == "--command":
            index += 1
            query = args[index] if index < len(args) else ""
        elif arg in ("--tuples-only", "--no-align"):
            tuples_only = tuples_only or arg == "--tuples-only"
            unaligned = unaligned or arg == "--no-align"
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            letters = arg[1:]
            tuples_only = tuples_only or "t" in letters
            unaligned = unaligned or "A" in letters
            if letters[-1] in "cUdhpfovP":  # the option's value is the next word
                index += 1
                if letters[-1] == "c":
                    query = args[index] if index < len(args) else ""
        index += 1
    if query is None:
        return 0
    lowered = query.lower()
    if "information_schema.columns" in lowered or ('from "' in lowered and '"sequelizemeta"' not in lowered):
        return channel_answer(call, query)
    if '"sequelizemeta"' in lowered:
        # The applied migrations, as the stateful npx sequelize db:migrate left them.
        applied = applied_migrations(call)
        out("".join(f"{name}\n" for name in applied) if tuples_only else f"name\n{chr(10).join(applied)}\n")
        return 0
    if "pg_database_size" in lowered:
        column, answer = "pg_database_size", str(DATABASE_BYTES)
    elif "version()" in lowered:
        column, answer = (
            "version",
            "PostgreSQL 14.11 (Debian 14.11-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc",
        )
    elif lowered.strip().rstrip(";") == "select 1":
        column, answer = "?column?", "1"
    else:
        return 0
    if tuples_only:
        out(f"{answer}\n" if unaligned else f" {answer}\n\n")
    elif unaligned:
        out(f"{column}\n{answer}\n(1 row)\n")
    else:
        width = max(len(column), len(answer)) + 2
        out(f"{column.center(width)}\n{'-' * width}\n{answer.rjust(width - 1)} \n(1 row)\n\n")
    return 0


def channel_answer(call: Call, query: str) -> int:
    """Answer the channel probe's queries: the channel table's columns from information_schema, or a SELECT of
    quoted columns from the channel table (psql -tA rows, '|' between fields); an unknown table or column fails."""
    import re

    from .channels import COLUMNS, channel_rows, channels_config, column_value

    table = str(channels_config(call)["table"])
    if "information_schema.columns" in query.lower():
        asked = re.search(r"table_name\s*=\s*'([^']*)'", query)
        if asked and asked.group(1) == table:
            out("".join(f"{column}\n" for column in COLUMNS))
        return 0
    match = re.search(r'^\s*select\s+(.*?)\s+from\s+"([^"]+)"', query, re.IGNORECASE | re.DOTALL)
    if match is None:
        return 0
    if match.group(2) != table:
        err(f'ERROR:  relation "{match.group(2)}" does not exist\n')
        return 1
    # Each selected column, and whether the probe wraps it in translate(COLUMN::text, chr(10) || chr(13) ||
    # chr(124), '   '): newlines and '|' become spaces, as PostgreSQL would print them.
    selected = [(quoted or translated, bool(translated)) for translated, quoted in re.findall(
        r'translate\("([^"]+)"::text,\s*chr\(10\)\s*\|\|\s*chr\(13\)\s*\|\|\s*chr\(124\),\s*\'   \'\)|"([^"]+)"',
        match.group(1))]
    rows = channel_rows(call)
    lines = []
    for row in rows:
        values = []
        for column, one_line in selected:
            value = column_value(row, column)
            if value is None:
                err(f'ERROR:  column "{column}" does not exist\n')
                return 1
            values.append(value.translate({10: " ", 13: " ", 124: " "}) if one_line else value)
        lines.append("|".join(values))
    out("".join(f"{line}\n" for line in lines))
    return 0
