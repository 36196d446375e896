"""The read-only vocabulary: which shell text is known not to change a host.

SAFETY: this is opsguard's ONE classifier of "changes the host". A preflight probe, a verify step
and every nightly check must pass it before it is sent to a host without a verified snapshot; the
plans are checked with it when they are built, the sessions check the text again right before
sending it, and the tests' oracle judges every command line a sandbox host received with it.

It is an allow-list and it fails closed: a command it does not know, an option it does not
understand where options matter, a computed command name, an output redirection to a file, ``eval``,
a function definition or shell syntax it cannot follow — all count as "may change the host".
Being wrong in that direction costs a refused probe; being wrong in the other costs a change
without a snapshot.

What "read-only" means here: the command writes nothing on the host — no file (not even a log or a
cache), no daemon's state, no database row, no service state. Reading files, listing processes and
asking a running daemon for its state are read-only. Two things need more than a word list:

- ``pm2 jlist`` (and pm2's other listings) START the pm2 daemon, writing ``~/.pm2``, when none runs.
  They count as read-only only in a script that first checks the daemon is alive with
  ``PM2_DAEMON_RUNNING`` (``if PM2_DAEMON_RUNNING; then pm2 jlist; else echo pm2_not_running; fi``).
- ``psql`` is read-only only with ``PGOPTIONS`` making every transaction read-only
  (``READ_ONLY_PGOPTIONS``, e.g. ``docker exec -e PGOPTIONS=... postgresql psql -X -c 'select ...'``):
  then PostgreSQL itself refuses a write, whatever the query says.

``read_only_problem(text)`` returns None for read-only text, else one line saying why not.
``classify(text, writable=(dir, ...))`` also accepts writes under the given directories (opsguard's
own lock dir and change record), for the test oracle's "nothing but bookkeeping" judgement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opsguard.shellparse import ShellSyntaxUnknown, Word, simple_commands

# The test a probe script runs before asking pm2 anything (pm2 starts a daemon when none runs).
# /proc/PID exists for any live process whoever owns it (kill -0 would fail for another user's).
PM2_DAEMON_RUNNING = 'pm2_pid=$(cat "$HOME/.pm2/pm2.pid" 2>/dev/null) && [ -n "$pm2_pid" ] && [ -d "/proc/$pm2_pid" ]'
PM2_NOT_RUNNING = "pm2_not_running"
# PostgreSQL refuses every write in a session started with this (the server enforces it, not us).
READ_ONLY_PGOPTIONS = "-c default_transaction_read_only=on"

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_OUTPUT_REDIRECTS = {">", ">>", ">|", "<>", "&>", "&>>"}


# -- the vocabulary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    script: str  # the script the command appears in (for the pm2 daemon test)
    writable: tuple[str, ...]
    environment: tuple[str, ...] = ()  # NAME=value assignments in force for the command


Rule = Callable[[list[Word], _Context], str | None]

# Commands that cannot write whatever their arguments (file arguments are only read).
_READERS = frozenset(
    {
        "cat", "head", "tail", "grep", "egrep", "fgrep", "wc", "cut", "tr", "echo", "printf", "test", "[", "[[",
        "true", "false", ":", "ls", "stat", "df", "du", "free", "uptime", "uname", "id", "whoami", "groups",
        "basename", "dirname", "realpath", "readlink", "ps", "pgrep", "pidof", "printenv", "nproc", "getconf", "sleep",
        "seq", "expr", "jq", "base64", "od", "hexdump", "cmp", "diff", "comm", "md5sum", "sha1sum", "sha256sum",
        "sha512sum", "getent", "who", "w", "last", "lsblk", "findmnt", "lscpu", "lsof", "ss", "netstat", "which",
        "type", "cd", "exit", "return", "shift", "break", "continue", "set", "export", "local", "readonly", "read",
        "wait", "umask", "pwd", "zcat", "column", "numfmt", "dpkg-query", "pg_isready", "zipinfo", "lsmod",
    }
)


def _non_options(args: list[Word]) -> list[Word]:
    return [arg for arg in args if not (arg.literal or "").startswith("-")]


def _literals(args: list[Word]) -> list[str] | None:
    values = [arg.literal for arg in args]
    return None if any(value is None for value in values) else [str(value) for value in values]


def _first_subcommand(args: list[Word], with_value: Sequence[str] = ()) -> tuple[int, str | None]:
    """Given arguments, return the index and literal of the first word that is not an option (or its value)."""
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None:
            return index, None
        if value == "--":
            index += 1
            break
        if value.startswith("-"):
            if value in with_value:
                index += 1
            index += 1
            continue
        return index, value
    if index < len(args):
        return index, args[index].literal
    return len(args), None


def _only_options(allowed: set[str]) -> Rule:
    def rule(args: list[Word], context: _Context) -> str | None:
        values = _literals(args)
        if values is None or any(value not in allowed for value in values):
            return "only " + ", ".join(sorted(allowed)) + " are read-only"
        return None

    return rule


def _subcommands(allowed: set[str], *, with_value: Sequence[str] = (), none_ok: bool = False) -> Rule:
    def rule(args: list[Word], context: _Context) -> str | None:
        _, subcommand = _first_subcommand(args, with_value)
        if subcommand is None:
            return None if none_ok and _literals(args) is not None else "no read-only sub-command"
        return None if subcommand in allowed else f"sub-command {subcommand!r} is not read-only"

    return rule


def _rejecting(*options: str, prefixes: Sequence[str] = ()) -> Rule:
    def rule(args: list[Word], context: _Context) -> str | None:
        for arg in args:
            value = arg.literal
            if value is None:
                continue
            if value in options or any(value.startswith(prefix) for prefix in prefixes):
                return f"option {value} writes"
        return None

    return rule


def _find(args: list[Word], context: _Context) -> str | None:
    for arg in args:
        if arg.literal in ("-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls"):
            return f"find {arg.literal} acts on files"
    return None


_AWK_WRITES = re.compile(r"system\s*\(|\|\s*getline|\bprintf?\b[^;{}\n]*[>|]|\bclose\s*\(")


def _awk(args: list[Word], context: _Context) -> str | None:
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None:
            return "a computed awk argument"
        if value in ("-F", "-v"):
            index += 2
            continue
        if value.startswith(("-F", "-v")) and len(value) > 2:
            index += 1
            continue
        if value.startswith("-"):
            return f"awk option {value} is not known to be read-only"
        if _AWK_WRITES.search(value):
            return "the awk program writes or runs a command"
        return None
    return "no awk program"


def _sort(args: list[Word], context: _Context) -> str | None:
    for arg in args:
        value = arg.literal or ""
        if value.startswith(("-o", "--output", "--compress-program")) or (
            value.startswith("-") and not value.startswith("--") and "o" in value[1:]
        ):
            return "sort -o writes a file"
    return None


def _uniq(args: list[Word], context: _Context) -> str | None:
    return "uniq with two file arguments writes the second" if len(_non_options(args)) > 1 else None


def _tee(args: list[Word], context: _Context) -> str | None:
    targets = [arg.literal for arg in _non_options(args)]
    if all(target == "/dev/null" or _under(target, context.writable) for target in targets):
        return None
    return "tee writes files"


def _date(args: list[Word], context: _Context) -> str | None:
    for arg in args:
        value = arg.literal
        if value is None or value in ("-s", "--set") or value.startswith("--set=") or (
            not value.startswith(("-", "+"))
        ):
            return "date with that argument may set the clock"
    return None


def _hostname(args: list[Word], context: _Context) -> str | None:
    allowed = {"-f", "--fqdn", "--long", "-s", "--short", "-i", "--ip-address", "-I", "--all-ip-addresses", "-d",
               "--domain", "-A", "--all-fqdns"}  # fmt: skip
    return _only_options(allowed)(args, context)


def _kill(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values and (values[0] in ("-0", "-l") or values[:2] == ["-s", "0"]):
        return None
    return "kill sends a signal (only kill -0 and kill -l are read-only)"


def _command(args: list[Word], context: _Context) -> str | None:
    if args and args[0].literal in ("-v", "-V"):
        return None
    return _check_words(args, context)


def _wrapper(with_value: Sequence[str], *, positional: int = 0) -> Rule:
    """A command that runs another (env, timeout, nice): skip its options and ``positional`` words, check the rest."""

    def rule(args: list[Word], context: _Context) -> str | None:
        index = 0
        while index < len(args) and (args[index].literal or "").startswith("-"):
            if args[index].literal == "--":
                index += 1
                break
            index += 2 if args[index].literal in with_value else 1
        environment = list(context.environment)
        while index < len(args) and args[index].literal is not None and _ASSIGNMENT.match(args[index].raw):
            environment.append(str(args[index].literal))
            index += 1
        index += positional
        rest = args[index:]
        if not rest:
            return None
        inner = _Context(context.script, context.writable, tuple(environment))
        return _check_words(rest, inner)

    return rule


def _sudo(args: list[Word], context: _Context) -> str | None:
    index = 0
    with_value = set("ugCDhprtUT")
    while index < len(args):
        value = args[index].literal
        if value is None:
            return "a computed sudo option"
        if value == "--":
            index += 1
            break
        if not value.startswith("-"):
            break
        if value in ("-e", "--edit") or (not value.startswith("--") and "e" in value[1:] and "=" not in value):
            return "sudo -e edits files"
        if value.startswith("--"):
            index += 2 if value in ("--user", "--group", "--host", "--prompt", "--role", "--type", "--other-user") else 1
            continue
        letters = value[1:]
        takes = next((position for position, letter in enumerate(letters) if letter in with_value), None)
        index += 2 if takes is not None and takes == len(letters) - 1 else 1
    rest = args[index:]
    return None if not rest else _check_words(rest, context)


def _shell(args: list[Word], context: _Context) -> str | None:
    index = 0
    while index < len(args):
        value = args[index].literal
        if value == "-c":
            if index + 1 >= len(args) or args[index + 1].literal is None:
                return "sh -c with a computed script"
            return _problem(str(args[index + 1].literal), context.writable)
        if value is None or not value.startswith(("-", "+")):
            return "a shell running a script file"
        index += 2 if value in ("-o", "+o") else 1
    return "a shell reading commands from its input"


def _systemctl(args: list[Word], context: _Context) -> str | None:
    allowed = {"is-system-running", "is-active", "is-enabled", "is-failed", "status", "show", "list-units", "list-timers",
               "list-unit-files", "list-sockets", "list-jobs", "cat", "get-default", "list-dependencies"}  # fmt: skip
    with_value = ("-p", "--property", "-t", "--type", "--state", "-n", "--lines", "-o", "--output")
    for arg in args:
        if arg.literal in ("-H", "--host", "-M", "--machine"):
            return "systemctl on another machine"
    return _subcommands(allowed, with_value=with_value, none_ok=True)(args, context)


def _journalctl(args: list[Word], context: _Context) -> str | None:
    return _rejecting("--rotate", "--flush", "--sync", "--relinquish-var", "--smart-relinquish-var", "--setup-keys",
                      "--update-catalog", prefixes=("--vacuum",))(args, context)  # fmt: skip


def _dpkg(args: list[Word], context: _Context) -> str | None:
    actions = {"-l", "--list", "-s", "--status", "-L", "--listfiles", "-S", "--search", "--audit", "-C",
               "--print-architecture", "--print-foreign-architectures", "--get-selections", "--compare-versions", "-p",
               "--print-avail", "--version", "--help", "-V", "--verify"}  # fmt: skip
    first = args[0].literal if args else None
    return None if first in actions else "only dpkg's listing and audit actions are read-only"


_APT_SIMULATE = {"-s", "--simulate", "--dry-run", "--just-print", "--no-act", "--recon"}


def _apt_get(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values is None:
        return "a computed apt-get argument"
    _, subcommand = _first_subcommand(args, ("-o", "-c", "-t", "--option", "--config-file", "--target-release"))
    simulated = any(value in _APT_SIMULATE for value in values)
    if simulated and subcommand in {"upgrade", "dist-upgrade", "full-upgrade", "install", "remove", "purge", "autoremove"}:
        return None
    return "apt-get changes packages or their lists unless simulating (-s) an install or upgrade"


def _apt_cache(args: list[Word], context: _Context) -> str | None:
    _, subcommand = _first_subcommand(args, ("-o", "-c"))
    return "apt-cache gencaches writes caches" if subcommand == "gencaches" else None


def _needrestart(args: list[Word], context: _Context) -> str | None:
    values = _literals(args) or []
    text = " ".join(values)
    if ("-r l" in text or "-rl" in values) and _literals(args) is not None:
        return None
    return "needrestart restarts services unless in list mode (-r l)"


_DOCKER_GLOBAL_VALUE = ("-H", "--host", "-c", "--context", "--config", "-l", "--log-level")
_COMPOSE_GLOBAL_VALUE = ("-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile",
                         "--ansi", "--progress", "--parallel")  # fmt: skip
_DOCKER_READS = {"ps", "images", "inspect", "version", "info", "logs", "top", "port", "diff", "history"}
_DOCKER_OBJECT_READS = {"ls", "list", "inspect", "history", "logs", "top", "port", "diff", "df", "info"}


def _docker(args: list[Word], context: _Context) -> str | None:
    index, subcommand = _first_subcommand(args, _DOCKER_GLOBAL_VALUE)
    if subcommand is None:
        return "a computed docker sub-command"
    rest = args[index + 1 :]
    if subcommand in _DOCKER_READS:
        return None
    if subcommand == "stats":
        return None if any(arg.literal == "--no-stream" for arg in rest) else "docker stats without --no-stream never ends"
    if subcommand in ("image", "container", "network", "volume", "system"):
        _, action = _first_subcommand(rest)
        return None if action in _DOCKER_OBJECT_READS else f"docker {subcommand} {action} is not read-only"
    if subcommand == "compose":
        return _compose(rest, context)
    if subcommand == "exec":
        return _container_exec(rest, context, ("-u", "--user", "-w", "--workdir", "-e", "--env", "--env-file"))
    return f"docker {subcommand} is not read-only"


def _compose(args: list[Word], context: _Context) -> str | None:
    index, subcommand = _first_subcommand(args, _COMPOSE_GLOBAL_VALUE)
    rest = args[index + 1 :]
    if subcommand in ("ps", "images", "ls", "version", "top", "port", "logs"):
        return None
    if subcommand == "config":
        return _rejecting("-o", "--output", prefixes=("--output=",))(rest, context)
    if subcommand == "exec":
        return _container_exec(rest, context, ("-u", "--user", "-w", "--workdir", "-e", "--env", "--index"))
    return f"docker compose {subcommand} is not read-only"


def _container_exec(args: list[Word], context: _Context, with_value: Sequence[str]) -> str | None:
    """``docker exec [options] CONTAINER COMMAND...``: the command runs in the container; check it the same way."""
    environment = list(context.environment)
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None or not value.startswith("-"):
            break  # the container (or service) name: computed is fine, it runs nothing
        if value in ("-e", "--env"):
            if index + 1 >= len(args) or args[index + 1].literal is None:
                return "a computed docker exec environment"
            environment.append(str(args[index + 1].literal))
        elif value.startswith(("--env=", "-e")) and len(value) > 2 and value != "--env":
            environment.append(value.split("=", 1)[1] if value.startswith("--env=") else value[2:])
        index += 2 if value in with_value else 1
    if index + 1 >= len(args):
        return "docker exec without a command"
    inner = _Context(context.script, (), tuple(environment))
    return _check_words(args[index + 1 :], inner)


def _pm2(args: list[Word], context: _Context) -> str | None:
    _, subcommand = _first_subcommand(args)
    if subcommand not in {"jlist", "list", "ls", "l", "status", "describe", "desc", "show", "info", "prettylist", "pid"}:
        return f"pm2 {subcommand} is not read-only"
    if PM2_DAEMON_RUNNING not in context.script:
        return "pm2 starts its daemon (writing ~/.pm2) when none runs: test PM2_DAEMON_RUNNING first"
    return None


_CURL_WRITES = {"-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name", "-d", "--data", "--data-raw",
                "--data-binary", "--data-urlencode", "--data-ascii", "-F", "--form", "--form-string", "-T",
                "--upload-file", "-K", "--config", "--output-dir", "-c", "--cookie-jar", "--json", "--libcurl",
                "--trace", "--trace-ascii", "--create-dirs"}  # fmt: skip
_CURL_VALUE_LETTERS = set("oXdFTKcDwHuAebmxUErYyzCQtP")


def _curl(args: list[Word], context: _Context) -> str | None:
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None:
            index += 1
            continue
        following = args[index + 1].literal if index + 1 < len(args) else None
        if value.startswith("--"):
            name = value.split("=", 1)[0]
            given = value.split("=", 1)[1] if "=" in value else following
            if name in _CURL_WRITES or (name == "--stderr" and given not in ("-", "/dev/null")):
                return f"curl {name} writes or sends data"
            if name in ("--output", "--dump-header") and given not in ("/dev/null", "-"):
                return f"curl {name} writes a file"
            if name == "--request" and (given or "").upper() not in ("GET", "HEAD"):
                return "curl --request other than GET/HEAD"
            index += 1 if "=" in value or name not in ("--output", "--dump-header", "--request", "--stderr",
                                                       "--max-time", "--connect-timeout", "--write-out", "--header",
                                                       "--user-agent", "--resolve", "--cacert", "--retry") else 2  # fmt: skip
            continue
        if value.startswith("-") and len(value) > 1:
            letters = value[1:]
            for position, letter in enumerate(letters):
                if "-" + letter in _CURL_WRITES:
                    return f"curl -{letter} writes or sends data"
                if letter in _CURL_VALUE_LETTERS:
                    given = letters[position + 1 :] or following
                    if letter in "oD" and given not in ("/dev/null", "-"):
                        return f"curl -{letter} writes a file"
                    if letter == "X" and (given or "").upper() not in ("GET", "HEAD"):
                        return "curl -X other than GET/HEAD"
                    index += 0 if letters[position + 1 :] else 1
                    break
            index += 1
            continue
        index += 1
    return None


def _redis_cli(args: list[Word], context: _Context) -> str | None:
    _, subcommand = _first_subcommand(args, ("-h", "-p", "-a", "-n", "-s", "-u", "--user", "--pass"))
    return None if (subcommand or "").lower() in ("ping", "info", "dbsize") else "only redis-cli ping/info/dbsize are read-only"


def _pg_restore(args: list[Word], context: _Context) -> str | None:
    values = _literals(args) or []
    if ("-l" in values or "--list" in values) and not any(
        value in ("-d", "--dbname", "-f", "--file") or value.startswith(("--dbname=", "--file=")) for value in values
    ):
        return None
    return "pg_restore writes unless it only lists (-l)"


def _psql(args: list[Word], context: _Context) -> str | None:
    if not any(entry.startswith("PGOPTIONS=") and READ_ONLY_PGOPTIONS in entry for entry in context.environment):
        return "psql without a read-only transaction (PGOPTIONS with default_transaction_read_only=on)"
    index = 0
    while index < len(args):
        value = args[index].literal
        following = args[index + 1].literal if index + 1 < len(args) else None
        index += 1
        if value is None or not value.startswith("-") or value == "-":
            continue
        if value.startswith("--"):
            name, _, given = value.partition("=")
            if name in ("--file", "--output", "--log-file"):
                return f"psql {name} reads a script or writes a file"
            if name == "--command" and not _plain_query(given or following):
                return "a psql query that is computed or holds a meta-command"
            continue
        # A cluster such as -tAc or -Uzpro: letters up to the first that takes a value.
        for position, letter in enumerate(value[1:]):
            if letter in "foL":
                return f"psql -{letter} reads a script or writes a file"
            if letter in "cdhpPUvT":
                value_given = value[position + 2 :] or following
                if letter == "c" and not _plain_query(value_given):
                    return "a psql query that is computed or holds a meta-command"
                index += 0 if value[position + 2 :] else 1
                break
    return None


def _plain_query(query: str | None) -> bool:
    # A backslash starts a psql meta-command (\! runs a shell); the read-only transaction covers the rest.
    return query is not None and "\\" not in query


def _openssl(args: list[Word], context: _Context) -> str | None:
    _, subcommand = _first_subcommand(args)
    values = _literals(args) or []
    if subcommand == "x509" and "-noout" in values and "-out" not in values:
        return None
    if subcommand in ("s_client", "version"):
        return None
    return "only openssl x509 -noout, s_client and version are read-only"


def _crontab(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    return None if values is not None and "-l" in values and not ({"-e", "-r", "-i"} & set(values)) else "crontab changes the table"


def _mount(args: list[Word], context: _Context) -> str | None:
    return None if not args else "mount with arguments mounts"


def _sysctl(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values is None or any(value in ("-w", "--write", "-p", "--load", "--system") or "=" in value for value in values):
        return "sysctl with that argument writes a setting"
    return None


def _ip(args: list[Word], context: _Context) -> str | None:
    index, obj = _first_subcommand(args)
    if obj not in ("addr", "a", "address", "route", "r", "link", "l", "neigh", "n", "-br"):
        return "only ip addr/route/link/neigh show are read-only"
    _, action = _first_subcommand(args[index + 1 :])
    return None if action in (None, "show", "list", "ls") else f"ip {obj} {action} changes the network"


def _tar(args: list[Word], context: _Context) -> str | None:
    values = _literals(args) or ["?"]
    first = values[0] if values else ""
    listing = "-t" in values or "--list" in values or (not first.startswith("-") and "t" in first)
    writing = any(value in ("-x", "-c", "-r", "-u", "-A", "--delete", "--extract", "--create", "--append") for value in values)
    return None if listing and not writing else "tar writes unless it only lists (-t)"


def _unzip(args: list[Word], context: _Context) -> str | None:
    values = _literals(args) or []
    return None if any(value in ("-l", "-Z", "-t", "-v") for value in values) else "unzip writes unless it lists (-l)"


_SED_SUBSTITUTE = re.compile(r"s(?P<d>[^\\\n])(?:(?!(?P=d)).|\\.)*(?P=d)(?:(?!(?P=d)).|\\.)*(?P=d)[gpiIm0-9]*")
_SED_PRINT = re.compile(r"(?:\d+|\$|/[^/\n]*/)?(?:,(?:\d+|\$|/[^/\n]*/))?[pdq=]")


def _sed(args: list[Word], context: _Context) -> str | None:
    """sed with substitutions (flags g, p, i, m, N) and p/d/q/= only: no w, W, e, r, R or in-place editing."""
    scripts: list[str] = []
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None:
            return "a computed sed argument"
        if value in ("-e", "--expression"):
            scripts.append(args[index + 1].literal or "w") if index + 1 < len(args) else None
            index += 2
            continue
        if value.startswith("-"):
            if value not in ("-n", "--quiet", "--silent", "-E", "-r", "--regexp-extended", "-s", "-u", "-z"):
                return f"sed option {value} is not known to be read-only"
            index += 1
            continue
        if not scripts:
            scripts.append(value)
        index += 1
    for script in scripts:
        for part in script.replace("\n", ";").split(";"):
            part = part.strip()
            if part and not (_SED_SUBSTITUTE.fullmatch(part) or _SED_PRINT.fullmatch(part)):
                return f"sed script {part!r} is not known to be read-only"
    return None if scripts else "no sed script"


def _fuser(args: list[Word], context: _Context) -> str | None:
    for arg in args:
        value = arg.literal or ""
        if value == "--kill" or (value.startswith("-") and not value.startswith("--") and "k" in value):
            return "fuser -k kills processes"
    return None


_RULES: dict[str, Rule] = {
    "find": _find,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "sort": _sort,
    "uniq": _uniq,
    "tee": _tee,
    "date": _date,
    "hostname": _hostname,
    "kill": _kill,
    "command": _command,
    "env": _wrapper(("-u", "--unset", "-C", "--chdir", "-S", "--split-string")),
    "timeout": _wrapper(("-s", "--signal", "-k", "--kill-after"), positional=1),
    "nice": _wrapper(("-n", "--adjustment")),
    "ionice": _wrapper(("-c", "--class", "-n", "--classdata", "-p", "--pid", "-P", "--pgid", "-u", "--uid")),
    "sudo": _sudo,
    "sh": _shell,
    "bash": _shell,
    "dash": _shell,
    "systemctl": _systemctl,
    "journalctl": _journalctl,
    "dpkg": _dpkg,
    "apt-get": _apt_get,
    "apt-cache": _apt_cache,
    "apt": _subcommands({"list", "show", "search", "policy", "depends", "rdepends", "madison"}),
    "apt-mark": _subcommands({"showhold", "showmanual", "showauto", "showinstall", "showremove", "showpurge"}),
    "needrestart": _needrestart,
    "docker": _docker,
    "docker-compose": _compose,
    "pm2": _pm2,
    "curl": _curl,
    "redis-cli": _redis_cli,
    "pg_restore": _pg_restore,
    "psql": _psql,
    "nginx": _only_options({"-v", "-V", "-h", "-?"}),
    "openssl": _openssl,
    "crontab": _crontab,
    "mount": _mount,
    "swapon": _only_options({"--show", "-s", "--summary", "--noheadings", "--bytes"}),
    "ufw": _subcommands({"status"}),
    "iptables": _only_options({"-L", "-S", "--list", "--list-rules", "-n", "-v", "--numeric", "--line-numbers", "-x"}),
    "certbot": _subcommands({"certificates"}),
    "node": _only_options({"--version", "-v"}),
    "npm": _only_options({"--version", "-v"}),
    "npx": _only_options({"--version", "-v"}),
    "sysctl": _sysctl,
    "ip": _ip,
    "tar": _tar,
    "unzip": _unzip,
    "fuser": _fuser,
    "sed": _sed,
}
# Commands that write, accepted only when every path they touch lies under a writable directory.
_BOOKKEEPING = {"mkdir", "rmdir", "rm", "mv", "touch"}


def _under(path: str | None, roots: tuple[str, ...]) -> bool:
    if path is None or ".." in path.split("/"):
        return False
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _bookkeeping(name: str, args: list[Word], context: _Context) -> str | None:
    """mkdir/rmdir/rm -f/mv/touch whose every path is under a writable root (opsguard's own lock and record)."""
    if not context.writable:
        return f"{name} changes files"
    paths = []
    options = []
    for arg in args:
        value = arg.literal
        if value is None:
            return f"{name} with a computed argument"
        if value == "--" or value.startswith("-"):
            if name == "rm" and ("r" in value.lstrip("-") or "R" in value):
                return "rm -r"
            options.append(value)
            continue
        paths.append(value)

    def allowed(path: str) -> bool:
        # mkdir -p of a directory ABOVE one of ours only creates the way to it.
        above = name == "mkdir" and "-p" in options and any(_under(root, (path,)) for root in context.writable)
        return _under(path, context.writable) or above

    if paths and all(allowed(path) for path in paths):
        return None
    return f"{name} outside opsguard's own directories"


def _check_words(words: list[Word], context: _Context) -> str | None:
    """Given a command's words (name first), return None if it is read-only, else why not."""
    for word in words:
        for script in word.scripts:
            problem = _problem(script, context.writable)
            if problem:
                return problem
    name = words[0].literal
    if name is None:
        return f"the command name {words[0].raw!r} is computed"
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    args = words[1:]
    if name in _READERS:
        return None
    rule = _RULES.get(name)
    if rule is not None:
        problem = rule(args, context)
        return f"{_show(words)}: {problem}" if problem and not problem.startswith("`") else problem
    if name in _BOOKKEEPING:
        problem = _bookkeeping(name, args, context)
        return f"{_show(words)}: {problem}" if problem else None
    if name in ("eval", "source", ".", "trap", "exec", "xargs", "nohup", "flock", "watch"):
        return f"{_show(words)}: {name} runs commands this check cannot see"
    return f"{_show(words)}: {name!r} is not in the read-only vocabulary"


def _show(words: list[Word]) -> str:
    text = " ".join(word.raw for word in words)
    return "`" + (text if len(text) <= 60 else text[:57] + "...") + "`"


def _problem(script: str, writable: tuple[str, ...]) -> str | None:
    try:
        commands = simple_commands(script)
    except ShellSyntaxUnknown as error:
        return f"shell syntax not followed ({error})"
    for command in commands:
        for word in command.assignments:
            for inner in word.scripts:
                problem = _problem(inner, writable)
                if problem:
                    return problem
        for redirect in command.redirects:
            for inner in redirect.target.scripts:
                problem = _problem(inner, writable)
                if problem:
                    return problem
            operator = redirect.operator.lstrip("0123456789")
            target = redirect.target.literal
            if operator in (">&", "<&") and target is not None and (target.isdigit() or target == "-"):
                continue
            if operator in _OUTPUT_REDIRECTS or operator in (">&",):
                if target == "/dev/null" or _under(target, writable):
                    continue
                return f"output redirected to {redirect.target.raw!r}"
        if not command.words:
            continue
        environment = tuple(str(word.literal) for word in command.assignments if word.literal is not None)
        problem = _check_words(command.words, _Context(script, writable, environment))
        if problem:
            return problem
    return None


def read_only_problem(text: str) -> str | None:
    """Given shell text, return None if every command in it is in the read-only vocabulary, else one line why not."""
    return _problem(text, ())


def classify(text: str, *, writable: Sequence[str] = ()) -> str | None:
    """Given shell text and directories opsguard may write (its lock dir, its change record), return None if the
    text only reads, or writes only under those directories; else one line why not."""
    return _problem(text, tuple(writable))


def is_read_only(text: str) -> bool:
    """Given shell text, return whether it is known not to change the host."""
    return read_only_problem(text) is None
