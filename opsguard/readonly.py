"""The read-only vocabulary: which shell text is known not to change a host.

SAFETY: this is opsguard's ONE classifier of "changes the host". A preflight probe, a verify step
and every nightly check must pass it before it is sent to a host without a verified snapshot; the
plans are checked with it when they are built, the sessions check the text again right before
sending it, and the tests' oracle judges every command line a sandbox host received with it.

It is an allow-list and it fails closed: a command it does not know, an option it does not
understand where options matter, a computed command name, an output redirection to a file, ``eval``,
a function definition or shell syntax it cannot follow — all count as "may change the host".
Being wrong in that direction costs a refused probe; being wrong in the other costs a change
without a snapshot. Where bash could read a text differently from a simple reading, the whole
category is refused (shellparse.py lists them: backquotes, ``$'..'``/``$"..``, line continuations,
here-document delimiters but a plain word, reserved words unless unquoted and first, ``~``...).
The text is judged by bash's grammar: opsguard sends a sudo step as ``sudo -n -iu USER -- bash -c``.

What "read-only" means here: the command writes nothing on the host — no file (not even a log or a
cache), no daemon's state, no database row, no service state, and sends nothing but its request over
a network. Reading files, listing processes and asking a running daemon for its state are
read-only. Some things need more than a word list:

- ``pm2 jlist`` STARTS the pm2 daemon, writing ``~/.pm2``, when none runs. It is read-only only as
  the exact construct ``PM2_LISTING`` (``if PM2_DAEMON_RUNNING; then pm2 jlist; else echo
  pm2_not_running; fi``), as a whole command of its own (or inside one single-quoted ``sh -c``
  script); ``pm2`` anywhere else is refused. The daemon counts as running when its pid file names a
  process whose command line names PM2 and its socket file exists.
- ``psql`` is read-only only with ``PGOPTIONS`` set to exactly ``READ_ONLY_PGOPTIONS`` (PostgreSQL then
  refuses writes; never through sudo, which drops it, nor with a ``-d`` connection string that
  overrides it) AND a single SELECT without comments, ``U&`` escapes or quoted identifiers but plain
  names, calling only functions known to have no side effect (a read-only transaction still lets a
  query stop other sessions or reload the configuration).
- ``openssl s_client`` sends its standard input to the server: only with ``</dev/null``.
- Redirections: targets are literal; only ``2>&1`` and ``>&2`` duplicate descriptors (bash opens
  ``/dev/tcp/HOST/PORT`` itself, read-write). No literal path may name a device (``/dev/null``
  aside) or a special file whose reading changes it (``/proc/kmsg``, a ``trace_pipe``,
  ``/proc/PID/fd/N``, ``/run/initctl``), however it is written.
- awk programs have no regex literal, backslash, newline, ``@`` or comment (then their strings read
  as awk reads them) and never set ``ARGV``/``ARGC``; sed addresses are a number, ``$`` or a
  ``/literal/`` without a backslash.
- sudo only as ``as_user`` sends it (``-n -H -u USER``): never ``-i``, which escapes the command and has
  a login shell parse it again (a quoted ``'$1-o/x'`` becomes an option). No array assignments
  (``x=(...)``: bash evaluates their subscripts as arithmetic). grep/zcat ``-r`` walk only literal
  absolute trees outside /proc, /sys, /dev and /run; journalctl ``-n`` only with a number.

Every rule is an allow-list of exact options: an option it does not list (or an abbreviation of one,
which GNU tools accept), or an argument whose value the shell computes (``$x``, a glob, a brace
expansion, ``~``), is refused where options matter, and so is a computed container, service, test
operator or printf format. Assignments may set only lower-case shell variables but ``*_proxy`` and
``npm_config_*`` (and ``PGOPTIONS`` to exactly the read-only value, ``PGDATABASE`` to a name):
``PS4``, ``BASH_ENV``, ``LD_PRELOAD``, ``TAR_OPTIONS``, ``http_proxy``... change what other commands do.

Known limits (what this module cannot see, so does not claim):

- A computed argument of a command that only reads (``cat "$f"``, ``head /var/log/*``) may still
  name a device, a FIFO or another special file; so may a literal path to a FIFO elsewhere (reading
  one takes data meant for its reader) or a symlink to a device. Only the literal names above are
  refused.
- ``apt-get -s``, ``apt-cache policy`` and ``apt list`` run as root rewrite ``/var/cache/apt/*.bin``
  when those caches are stale (the nightly health probe passes ``-o Dir::Cache::pkgcache=`` and
  ``srcpkgcache=`` to apt-get; the update playbook's preflight simulation does not).
- ``getent hosts``, ``hostname -A``/``-f`` make DNS queries and ``pg_isready -h H -p P``,
  ``curl`` and ``openssl s_client`` connect to the host and port they are given: a request is read,
  not a change of this host, but the other end sees it.
- Programs read their own configuration (``~/.curlrc``, a login shell's profile under ``sudo -i``,
  a database's ``~/.pg_service.conf``): the host's own settings are trusted, not checked.

``read_only_problem(text)`` returns None for read-only text, else one line saying why not.
``classify(text, writable=(dir, ...))`` also accepts writes under the given directories (opsguard's
own lock dir and change record), with only the options opsguard's bookkeeping uses, for the test
oracle's "nothing but bookkeeping" judgement.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opsguard.shellparse import ShellSyntaxUnknown, SimpleCommand, Word, simple_commands

# The test a probe script runs before asking pm2 anything (pm2 starts a daemon when none runs): the
# pid file names a number, the daemon's socket is there, and that process's command line is the
# daemon's title ("PM2 v5.3.0: God Daemon (...)"): a stale pm2.pid whose pid another process now has
# fails (a live pid alone would pass, and pm2 jlist would start a daemon). /proc/PID/cmdline is
# readable whoever owns the process; -gt fails on anything but a number (/proc/self would match).
PM2_DAEMON_RUNNING = ('pm2_pid=$(cat "$HOME/.pm2/pm2.pid" 2>/dev/null) && [ "$pm2_pid" -gt 0 ] 2>/dev/null'
                      ' && [ -S "$HOME/.pm2/rpc.sock" ] && grep -q PM2 "/proc/$pm2_pid/cmdline" 2>/dev/null')
PM2_NOT_RUNNING = "pm2_not_running"
# The ONLY text in which pm2 may appear: ask it for its list only after finding its daemon alive.
PM2_LISTING = f"if {PM2_DAEMON_RUNNING}; then pm2 jlist; else echo {PM2_NOT_RUNNING}; fi"
_PM2_LISTING_MARK = "opsguard_pm2_listing_after_daemon_check"
# PostgreSQL refuses every write in a session started with this (the server enforces it, not us).
READ_ONLY_PGOPTIONS = "-c default_transaction_read_only=on"


def as_user(user: str, text: str) -> str:
    """Given a user name and shell text, return the text that runs it as that user through sudo, exactly as written.

    SAFETY: never `sudo -i`: with -i sudo escapes every character but letters, digits, '_', '-' and '$' and has
    a login shell parse the line again, so a '$NAME' inside quotes is expanded once more (a quoted '$1-o/FILE'
    became `-o/FILE`; found by a review). -H sets HOME, `bash --login` reads the user's profile as -i did, and
    `cd` starts in the user's home as -i did; -n never waits for a password.
    """
    return f"sudo -n -H -u {shlex.quote(user)} -- bash --login -c {shlex.quote('cd 2>/dev/null' + chr(10) + text)}"

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]*")  # lower-case shell variables only: no PS4, BASH_ENV, LD_*, PATH...
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.,:/@%+=-]*")  # a plain option value: no quotes, no spaces, no expansion
_OUTPUT_REDIRECTS = {">", ">>", ">|", "<>", "&>", "&>>"}


# -- the vocabulary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    writable: tuple[str, ...]
    environment: tuple[str, ...] = ()  # NAME=value assignments in force for the command
    stdin_null: bool = False  # the command's standard input is </dev/null


Rule = Callable[[list[Word], _Context], str | None]

# Commands that cannot write or run another program whatever their arguments (file arguments are only read).
_READERS = frozenset(
    {
        "cat", "head", "tail", "grep", "egrep", "fgrep", "wc", "cut", "tr", "echo", "true", "false", ":", "ls",
        "stat", "df", "du", "free", "uptime", "uname", "id", "whoami", "groups", "basename", "dirname", "realpath",
        "readlink", "ps", "pgrep", "pidof", "nproc", "getconf", "sleep", "seq", "base64", "od", "hexdump", "cmp",
        "comm", "md5sum", "sha1sum", "sha256sum", "sha512sum", "getent", "who", "w", "last", "lsblk", "findmnt",
        "lscpu", "which", "exit", "return", "shift", "break", "continue", "pwd", "zcat",
        "column", "numfmt", "dpkg-query", "pg_isready", "zipinfo", "lsmod", "printenv", "type", "umask",
    }
)  # fmt: skip


def _literals(args: list[Word]) -> list[str] | None:
    """Given arguments, return their literal values, or None if the shell computes one of them."""
    values = [arg.literal for arg in args]
    return None if any(value is None for value in values) else [str(value) for value in values]


def _one_word(word: Word) -> bool:
    """Given a word, return whether the shell keeps it one word whatever it expands to (wholly in double quotes)."""
    return word.literal is not None or re.fullmatch(r'"[^"`\\]*"', word.raw) is not None


def _parse_options(values: list[str], flags: set[str], valued: set[str], *, clusters: str = "",
                   valued_letters: str = "") -> tuple[list[tuple[str, str | None]], list[str]] | str:
    """Given literal arguments and the exact options a command may take, return (options, operands) or why not.

    ``flags`` take no value, ``valued`` take one (``-x V``, ``--long V`` or ``--long=V``); ``clusters``
    are single letters that may be combined (``-sS``), the last of which may be one of ``valued_letters``
    (``-tAc 'query'``). ``--`` ends the options. Anything else, abbreviations included, is refused.
    """
    options: list[tuple[str, str | None]] = []
    operands: list[str] = []
    index = 0
    while index < len(values):
        value = values[index]
        if value == "--":
            operands.extend(values[index + 1 :])
            break
        if not value.startswith("-") or value == "-":
            operands.append(value)
            index += 1
            continue
        name, equals, attached = value.partition("=")
        if name in flags and not equals:
            options.append((name, None))
        elif name in valued:
            if equals:
                options.append((name, attached))
            elif index + 1 < len(values):
                options.append((name, values[index + 1]))
                index += 1
            else:
                return f"option {name} needs a value"
        elif not value.startswith("--") and len(value) > 2 and all(letter in clusters + valued_letters for letter in value[1:]):
            letters = value[1:]
            if any(letter in valued_letters for letter in letters[:-1]):
                return f"option cluster {value} is not known to be read-only"
            for letter in letters[:-1]:
                options.append((f"-{letter}", None))
            if letters[-1] in valued_letters:
                if index + 1 >= len(values):
                    return f"option -{letters[-1]} needs a value"
                options.append((f"-{letters[-1]}", values[index + 1]))
                index += 1
            else:
                options.append((f"-{letters[-1]}", None))
        else:
            return f"option {value} is not known to be read-only"
        index += 1
    return options, operands


def _strict(flags: set[str], valued: set[str] = frozenset(), *, clusters: str = "", valued_letters: str = "",  # type: ignore[assignment]
            operands: int | None = None, check: Callable[[list[tuple[str, str | None]], list[str]], str | None] | None = None,
            computed_operands: bool = False) -> Rule:
    """A rule: every argument literal, every option in the allow-list, at most ``operands`` operands, then ``check``.

    With ``computed_operands`` (a command none of whose options can write, e.g. docker inspect), words the
    shell computes are accepted after the literal ones: whatever they expand to is harmless there.
    """

    def rule(args: list[Word], context: _Context) -> str | None:
        if computed_operands:
            first_computed = next((index for index, arg in enumerate(args) if arg.literal is None), len(args))
            args = args[:first_computed]
        values = _literals(args)
        if values is None:
            return "an argument the shell computes"
        parsed = _parse_options(values, set(flags), set(valued), clusters=clusters, valued_letters=valued_letters)
        if isinstance(parsed, str):
            return parsed
        options, found = parsed
        if operands is not None and len(found) > operands:
            return f"more than {operands} operand(s)"
        if any(operand.startswith("-") and operand != "-" for operand in found):
            return "an operand that looks like an option"
        return check(options, found) if check else None

    return rule


def _printf(args: list[Word], context: _Context) -> str | None:
    """printf FORMAT [ARGUMENT...]: standard output only. SAFETY: the format is literal and no option: a
    computed first word could be -v, and ``printf -v 'a[$(cmd)]'`` runs cmd."""
    dashes = bool(args) and args[0].literal == "--"
    if dashes:
        args = args[1:]
    if not args:
        return None
    if args[0].literal is None:
        return "printf with a computed format (it could be -v)"
    return f"printf option {args[0].literal} is not read-only" if args[0].literal.startswith("-") and not dashes else None


_TEST_BINARY = {"=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef", "-a", "-o"}


def _test_shape_is_fixed(args: list[Word]) -> bool:
    """Given test's arguments, return whether their count and literal operators fix what each one is.

    Bash's test picks by the argument count: 1 is a string; 2 is ``! X`` or ``-OP X``; 3 is ``X BINOP Y``
    (first), else ``! X Y``, else ``( X )``; 4 is ``! X Y Z`` or ``( X Y )``. A computed word anywhere else
    could be read as an operator.
    """
    values = [arg.literal for arg in args]
    if len(args) <= 1:
        return True
    if len(args) == 2:
        return values[0] is not None
    if len(args) == 3:
        if values[1] in _TEST_BINARY:
            return True
        if values[0] == "!":
            return _test_shape_is_fixed(args[1:])
        return values[0] == "(" and values[2] == ")"
    if len(args) == 4:
        if values[0] == "!":
            return _test_shape_is_fixed(args[1:])
        return values[0] == "(" and values[3] == ")" and _test_shape_is_fixed(args[1:3])
    return False


def _test(args: list[Word], context: _Context) -> str | None:
    """test EXPRESSION. SAFETY: no -v or -R (they evaluate an array subscript: ``-v 'a[$(cmd)]'`` runs cmd),
    and a computed word only where it cannot be one of them."""
    for arg in args:
        if arg.literal in ("-v", "-R"):
            return f"test {arg.literal} evaluates an array subscript"
        if not _one_word(arg):
            return "an unquoted argument the shell computes"
    if all(arg.literal is not None for arg in args) or _test_shape_is_fixed(args):
        return None
    return "a computed test argument where an operator could be (-v)"


def _bracket(args: list[Word], context: _Context) -> str | None:
    if not args or args[-1].literal != "]":
        return "[ without its closing ]"
    return _test(args[:-1], context)


def _lsof(args: list[Word], context: _Context) -> str | None:
    # -D b|u|r|i builds, updates or reads a device cache file (where lsof supports one), also in a cluster (-nDb).
    for arg in args:
        if arg.literal is None:
            return "a computed lsof argument"
        if arg.literal.startswith("-") and "D" in arg.literal:
            return "lsof -D (its device cache file)"
    return None


def _wait(args: list[Word], context: _Context) -> str | None:
    # wait -p NAME assigns (an array subscript runs code); plain wait only waits.
    return None if not args else "wait with arguments"


# Environment settings known to make tools do LESS (no prompts, no automatic restarts, C locale).
_KNOWN_ASSIGNMENTS = {"DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=l", "UCF_FORCE_CONFFOLD=1", "LC_ALL=C", "LANG=C"}


def _assignment_problem(text: str) -> str | None:
    """Given NAME=VALUE, return None if it only sets a plain shell variable, else why not."""
    name, _, value = text.partition("=")
    if text in _KNOWN_ASSIGNMENTS:
        return None
    if name == "PGOPTIONS":
        return None if value == READ_ONLY_PGOPTIONS else "PGOPTIONS other than the read-only value"
    if name == "PGDATABASE":
        # libpq reads PGDATABASE as a name only, never as connection settings; refused if it looks like them anyway.
        return "PGDATABASE with a connection string or URI" if _connection_string(value) else None
    if not _SAFE_NAME.fullmatch(name):
        return f"setting {name} changes what other commands do"
    if name.endswith("_proxy") or name.startswith("npm_config_"):
        # Lower-case names that tools do read: curl sends its requests through http_proxy (to any port).
        return f"setting {name} changes what other commands do"
    return None


def _find(args: list[Word], context: _Context) -> str | None:
    # A starting point may be a glob of an absolute path (/home/*/.ssh): it expands to paths, never to a test.
    values = [arg.literal if arg.literal is not None else (arg.raw if _absolute_glob(arg.raw) else None) for arg in args]
    if any(value is None for value in values):
        return "an argument the shell computes"
    tests = {"-type": 1, "-name": 1, "-iname": 1, "-path": 1, "-newer": 1, "-newermt": 1, "-mtime": 1, "-mmin": 1,
             "-maxdepth": 1, "-mindepth": 1, "-printf": 1, "-size": 1, "-user": 1, "-perm": 1, "-print": 0,
             "-print0": 0, "-o": 0, "-a": 0, "!": 0, "(": 0, ")": 0, "-not": 0, "-xdev": 0, "-prune": 0, "-empty": 0,
             "-true": 0, "-false": 0, "-readable": 0}  # fmt: skip
    index = 0
    while index < len(values) and values[index] in ("-L", "-H", "-P"):
        index += 1
    while index < len(values) and not str(values[index]).startswith("-") and values[index] not in ("!", "(", ")"):
        index += 1  # the starting points
    while index < len(values):
        if args[index].literal is None:
            return "a find test the shell computes"
        taken = tests.get(str(values[index]))
        if taken is None:
            return f"find {values[index]} is not known to be read-only"
        index += 1 + taken
    return None


def _absolute_glob(raw: str) -> bool:
    """Given a word as written, return whether it is an unquoted absolute path with globs and nothing else."""
    return raw.startswith("/") and not any(mark in raw for mark in "$`'\"{},")


# SAFETY: awk reads /.../ as a regex literal or a division by context, and a regex may hold a quote
# (`x = /"/; print "cmd" | "sh"`): a simple reading then takes code for a string. A program here has no
# regex literal (at most one /, a division; match with ~ "regex"), no backslash (escapes, continuation
# lines), no newline (`print 1,<newline>2 > f`), no @ (gawk's @load/@include run extensions) and no
# comment: its strings are then exactly "..." without a quote inside, as awk reads them.
_AWK_STRING = re.compile(r'"[^"]*"')
_AWK_STATEMENT = re.compile(r"\b(?:print|printf)\b[^;{}]*")


def _awk(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values is None:
        return "an argument the shell computes"
    index = 0
    while index < len(values) and values[index] in ("-F", "-v"):
        if values[index] == "-v":
            problem = _assignment_problem(values[index + 1] if index + 1 < len(values) else "")
            if problem:
                return problem
        index += 2
    if index >= len(values):
        return "no awk program"
    if values[index].startswith("-"):
        return f"awk option {values[index]} is not known to be read-only"
    return _awk_program_problem(values[index])


def _awk_program_problem(program: str) -> str | None:
    """Given an awk program, return None if it only reads its input and prints to standard output, else why not."""
    if any(mark in program for mark in "\\@\n"):
        return "an awk program with a backslash, an @ or a newline"
    if program.count("/") > 1:
        return "an awk program with a regex literal /.../ (match with ~ \"regex\" instead)"
    code = _AWK_STRING.sub(" 0 ", program)  # each string becomes a plain operand
    if '"' in code or "#" in code:
        return "an awk program with an unterminated string or a comment"
    if re.search(r"\b(system|getline|close|fflush|ARGV|ARGC)\b|\|&|\bENVIRON\b", code):
        return "the awk program runs a command or reads or writes another file"
    if any(re.search(r"[>|]", statement) for statement in _AWK_STATEMENT.findall(code)):
        return "the awk program prints into a file or a command"
    return None


# A backslash always escapes the next character, as in sed (so \/ never ends a part); the delimiter is
# not a backslash or a newline. SAFETY: an address is a line number, $ or /literal/ WITHOUT a backslash:
# with one, `/\|\/,/e cmd #/p` reads as two addresses and p here, as one address and `e cmd` in sed.
_SED_PART = r"(?:\\[^\n]|(?!(?P=d))[^\\\n])*"
_SED_SUBSTITUTE = re.compile(rf"s(?P<d>[^\\\n]){_SED_PART}(?P=d){_SED_PART}(?P=d)[gpiIm0-9]*")
_SED_ADDRESS = r"(?:\d+|\$|/[^/\\\n]*/)"
_SED_PRINT = re.compile(rf"{_SED_ADDRESS}?(?:,{_SED_ADDRESS})?[pdq=]")


def _sed(args: list[Word], context: _Context) -> str | None:
    """sed with substitutions (flags g, p, i, m, N) and p/d/q/= only: no w, W, e, r, R or in-place editing."""
    values = _literals(args)
    if values is None:
        return "an argument the shell computes"
    parsed = _parse_options(values, {"-n", "-E", "-r", "-s", "-u", "-z"}, {"-e"}, clusters="nEr")
    if isinstance(parsed, str):
        return parsed
    options, operands = parsed
    scripts = [value for name, value in options if name == "-e" and value is not None] or operands[:1]
    for script in scripts:
        for part in script.replace("\\n", ";").split(";"):
            part = part.strip()
            if part and not (_SED_SUBSTITUTE.fullmatch(part) or _SED_PRINT.fullmatch(part)):
                return f"sed script {part!r} is not known to be read-only"
    return None if scripts else "no sed script"


def _date(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    return None if all(operand.startswith("+") for operand in operands) else "date with an argument that sets the clock"


def _kill(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values == ["-l"] or (values and values[0] == "-0" and all(value.isdigit() for value in values[1:]) and len(values) > 1):
        return None
    return "kill sends a signal (only kill -0 PID... and kill -l are read-only)"


def _command(args: list[Word], context: _Context) -> str | None:
    if args and args[0].literal in ("-v", "-V"):
        return None if all(arg.literal is not None or arg.raw.startswith('"') for arg in args[1:]) else "a computed name"
    return _check_words(args, context) if args else None


def _env(args: list[Word], context: _Context) -> str | None:
    environment = list(context.environment)
    index = 0
    while index < len(args):
        value = args[index].literal
        if value is None or value.startswith("-"):
            return "env with an option or a computed argument"
        if "=" not in value:
            break
        problem = _assignment_problem(value)
        if problem:
            return problem
        environment.append(value)
        index += 1
    rest = args[index:]
    return _check_words(rest, _Context(context.writable, tuple(environment))) if rest else None


def _timeout(args: list[Word], context: _Context) -> str | None:
    if not args or args[0].literal is None or not re.fullmatch(r"[0-9.]+[smhd]?", args[0].literal):
        return "timeout needs a plain duration first (no options)"
    return _check_words(args[1:], context) if len(args) > 1 else "timeout without a command"


def _sudo(args: list[Word], context: _Context) -> str | None:
    values = [arg.literal for arg in args]
    index = 0
    while index < len(values):
        value = values[index]
        if value is None:
            return "a computed sudo argument"
        if value == "--":
            index += 1
            break
        if not value.startswith("-"):
            break
        if value in ("-n", "-H"):
            index += 1
        elif value in ("-u", "-nu", "-Hu", "-nHu", "-Hnu"):
            if index + 1 >= len(values) or values[index + 1] is None or not re.fullmatch(r"[a-z_][a-z0-9_-]*", str(values[index + 1])):
                return "sudo -u needs a plain user name"
            index += 2
        elif ("i" in value[1:] and not value.startswith("--")) or value == "--login":
            # sudo -i escapes the command and has a login shell parse it again: '$X' inside quotes is expanded.
            return "sudo -i (it parses the command line a second time; use -H -u USER -- bash --login -c)"
        else:
            return f"sudo option {value} is not known to be read-only"
    rest = args[index:]
    # sudo resets the environment (env_reset): what was set before it (PGOPTIONS...) does not reach the command.
    return _check_words(rest, _Context(context.writable, (), stdin_null=context.stdin_null)) if rest else None


def _shell(args: list[Word], context: _Context) -> str | None:
    if args and args[0].literal in ("--login", "-l"):
        args = args[1:]  # a login shell reads the user's profile first (the host's own configuration, trusted)
    if len(args) < 2 or args[0].literal != "-c":
        return "a shell running anything but -c SCRIPT"
    if args[1].literal is None:
        return "sh -c with a computed script"
    return _problem(str(args[1].literal), context.writable)


_SYSTEMCTL_READS = {"is-system-running", "is-active", "is-enabled", "is-failed", "status", "show", "list-units",
                    "list-timers", "list-unit-files", "list-sockets", "list-jobs", "cat", "get-default",
                    "list-dependencies"}  # fmt: skip


def _systemctl_check(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    if not operands:
        return None  # `systemctl` (--failed...) lists units
    return None if operands[0] in _SYSTEMCTL_READS else f"systemctl {operands[0]} is not read-only"


def _apt_get_check(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    names = {name for name, _ in options}
    if not names & {"-s", "--simulate", "--dry-run", "--just-print", "--no-act"}:
        return "apt-get changes packages unless it simulates (-s)"
    allowed = re.compile(r"(DPkg::Lock::Timeout=[0-9]+|Dpkg::Options::=--force-conf(def|old)|Debug::NoLocking=1|"
                         r"Dir::Cache::(pkgcache|srcpkgcache)=)", re.IGNORECASE)
    for name, value in options:
        if name == "-o" and not allowed.fullmatch(value or ""):
            return f"apt-get -o {value} is not known to keep it a simulation"
    if not operands or operands[0] not in {"upgrade", "dist-upgrade", "full-upgrade", "install", "remove", "purge"}:
        return "apt-get simulates only an install or upgrade"
    return None


def _needrestart_check(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    modes = [value for name, value in options if name == "-r"]
    return None if modes == ["l"] and not operands else "needrestart restarts services unless in list mode (-r l, once)"


_DOCKER_FORMAT = {"--format", "-f"}


def _docker(args: list[Word], context: _Context) -> str | None:
    if not args or args[0].literal is None or args[0].literal.startswith("-"):
        return "docker with a global option or a computed sub-command"
    subcommand, rest = args[0].literal, args[1:]
    simple: dict[str, Rule] = {
        "ps": _strict({"-a", "--all", "-q", "--quiet", "--no-trunc"}, {"--format", "--filter", "-f"}, clusters="aq", operands=0),
        "inspect": _strict({"--size", "-s"}, {"--format", "-f", "--type"}, computed_operands=True),
        "images": _strict({"-q", "--digests", "--no-trunc", "-a"}, {"--format", "--filter", "-f"}, clusters="aq"),
        "version": _strict(set(), {"--format", "-f"}, operands=0),
        "info": _strict(set(), {"--format", "-f"}, operands=0),
    }
    if subcommand in simple:
        return simple[subcommand](rest, context)
    if subcommand in ("image", "container") and rest and rest[0].literal in ("inspect", "ls", "list"):
        return _strict({"-a", "-q", "--no-trunc", "--size", "-s"}, {"--format", "-f", "--filter"}, clusters="aq",
                       computed_operands=rest[0].literal == "inspect")(rest[1:], context)
    if subcommand == "compose":
        return _compose(rest, context)
    if subcommand == "exec":
        return _container_exec(rest, context, compose=False)
    return f"docker {subcommand} is not read-only"


def _compose(args: list[Word], context: _Context) -> str | None:
    index = 0
    while index < len(args) and (args[index].literal or "").startswith("-"):
        if args[index].literal not in ("-f", "--file", "-p", "--project-name", "--project-directory", "--env-file"):
            return f"docker compose option {args[index].literal} is not known to be read-only"
        if index + 1 >= len(args) or args[index + 1].literal is None:
            return "a computed docker compose option value"
        if ":" in str(args[index + 1].literal):
            # -f oci://... or a git URL: compose downloads the project (and caches it) first.
            return "a docker compose file or directory that is not a local path"
        index += 2
    if index >= len(args) or args[index].literal is None:
        return "docker compose without a plain sub-command"
    subcommand, rest = args[index].literal, args[index + 1 :]
    rules: dict[str, Rule] = {
        "config": _strict({"-q", "--quiet", "--services", "--images", "--volumes", "--no-interpolate"}, {"--format"}),
        "ps": _strict({"-a", "--all", "-q", "--quiet", "--services"}, {"--format", "--status", "--filter"}, clusters="aq"),
        "images": _strict({"-q", "--quiet"}, {"--format"}),
        "ls": _strict({"-a", "--all", "-q"}, {"--format"}, operands=0),
        "version": _strict({"--short"}, {"--format"}, operands=0),
    }
    if subcommand in rules:
        return rules[subcommand](rest, context)
    if subcommand == "exec":
        return _container_exec(rest, context, compose=True)
    return f"docker compose {subcommand} is not read-only"


_COMPUTED_PGDATABASE = re.compile(r'PGDATABASE="\$[a-z_][a-z0-9_]*"|"PGDATABASE=\$[a-z_][a-z0-9_]*"')


def _container_exec(args: list[Word], context: _Context, *, compose: bool) -> str | None:
    """``docker [compose] exec [options] [--] CONTAINER COMMAND...``: the command runs in the container; check it the same way.

    SAFETY: the container (or service) is a literal word, or one double-quoted word after ``--``: a
    computed word before it may expand to options (``-d web rm -rf /data``). docker exec passes none of
    the caller's environment on, only ``-e`` values.
    """
    environment: list[str] = []
    flags = {"-T", "-i"} if compose else {"-i"}
    index = 0
    after_dashes = False
    while index < len(args):
        value = args[index].literal
        if value == "--":
            index += 1
            after_dashes = True
            break
        if value is None or not value.startswith("-"):
            break
        if value in flags:
            index += 1
            continue
        if value in ("-e", "--env", "-u", "--user"):
            given = args[index + 1].literal if index + 1 < len(args) else None
            if given is None and value in ("-e", "--env") and index + 1 < len(args) and _COMPUTED_PGDATABASE.fullmatch(args[index + 1].raw):
                given = "PGDATABASE=computed"  # a database name from a variable: PGDATABASE is never connection settings
            if given is None:
                return f"a computed docker exec {value} value"
            if value in ("-e", "--env"):
                problem = _assignment_problem(given)
                if problem:
                    return problem
                environment.append(given)
            index += 2
            continue
        return f"docker exec option {value} is not known to be read-only"
    if index >= len(args):
        return "docker exec without a container"
    if args[index].literal is None and not (after_dashes and _one_word(args[index])):
        return "a computed container or service (only as one double-quoted word after --)"
    if index + 1 >= len(args):
        return "docker exec without a command"
    return _check_words(args[index + 1 :], _Context((), tuple(environment), stdin_null=context.stdin_null))


_CURL_SCHEMES = ("http://", "https://")
_CURL_URL_WORD = re.compile(r'"https?://[^"`\\]*"')


def _curl_check(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    for name, value in options:
        if name in ("-o", "--output") and value != "/dev/null":
            return "curl writes a file"
        if name in ("-w", "--write-out") and ("%output" in (value or "") or (value or "").startswith("@")):
            return "curl -w %output writes a file (and -w @FILE reads a format that may)"
        if name in ("-H", "--header") and ((value or "").startswith("@") or "\n" in (value or "")):
            # A line break in a header ends it: the rest is a second request on the same connection.
            return "curl -H with a line break or read from a file"
    if len(operands) != 1 or not operands[0].startswith(_CURL_SCHEMES):
        return "curl needs exactly one http(s) URL"
    return None


def _curl(args: list[Word], context: _Context) -> str | None:
    # The URL may be computed when it is one double-quoted word that starts http(s):// (it cannot become an option).
    if args and args[-1].literal is None and _CURL_URL_WORD.fullmatch(args[-1].raw):
        args = [*args[:-1], Word(raw=args[-1].raw, literal="http://computed.invalid/")]
    return _CURL_OPTIONS(args, context)


def _redis_cli(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values is None:
        return "a computed redis-cli argument"
    while len(values) >= 2 and values[0] in ("-h", "-p", "-n"):
        values = values[2:]
    return None if [value.lower() for value in values] in (["ping"], ["info"], ["dbsize"]) else \
        "only redis-cli [-h H] [-p P] ping/info/dbsize are read-only"


_PSQL_FUNCTIONS = {"pg_database_size", "current_database", "count", "max", "min", "coalesce", "lower", "upper",
                   "version", "now", "length", "to_char", "extract", "date_trunc", "chr", "translate"}  # fmt: skip
_SQL_CALL = re.compile(r'("?)([A-Za-z_][A-Za-z0-9_.]*)\1\s*\(')


def _psql(args: list[Word], context: _Context) -> str | None:
    """psql -c 'SELECT ...' with exactly the read-only PGOPTIONS in force.

    SAFETY: a database given as a connection string (``dbname=x options=-c...``) or a URI
    (``postgresql:///x?options=...``) overrides PGOPTIONS, so -d/--dbname is literal, without ``=`` and
    ``://`` (a computed database goes in PGDATABASE, which libpq never reads as a connection string).
    A user name may come from a variable: one double-quoted word is always a value there.
    """
    if f"PGOPTIONS={READ_ONLY_PGOPTIONS}" not in context.environment or any(
        entry.startswith("PGOPTIONS=") and entry != f"PGOPTIONS={READ_ONLY_PGOPTIONS}" for entry in context.environment
    ):
        return "psql without exactly the read-only PGOPTIONS"
    values: list[str] = []
    for index, arg in enumerate(args):
        previous = args[index - 1].literal if index else None
        if arg.literal is None and previous in ("-U", "--username") and re.fullmatch(r'"\$[a-z_][a-z0-9_]*"', arg.raw):
            values.append("computed-name")  # a user name from a variable: a value, never an option
        elif arg.literal is None:
            return "a computed psql argument"
        else:
            values.append(arg.literal)
    parsed = _parse_options(values, {"-X", "-A", "-t", "-q", "--no-psqlrc", "--tuples-only", "--no-align", "--quiet"},
                            {"-U", "-d", "-h", "-p", "-c", "-F", "--username", "--dbname", "--host", "--port",
                             "--field-separator"},
                            clusters="XAtq", valued_letters="UdhpcF")  # fmt: skip
    if isinstance(parsed, str):
        return parsed
    options, operands = parsed
    for name, value in options:
        if name in ("-d", "--dbname") and _connection_string(value or ""):
            return "psql -d with a connection string or URI (it can override PGOPTIONS)"
    queries = [value for name, value in options if name == "-c"]
    if len(queries) != 1 or operands:
        return "psql needs exactly one -c query"
    return _query_problem(str(queries[0]))


def _connection_string(value: str) -> bool:
    """Given a database name as given, return whether libpq would read it as connection settings instead."""
    return "=" in value or "://" in value


# Double-quoted identifiers: a plain name only ("SequelizeMeta"), so "name"( is still seen as a call.
_SQL_QUOTED_IDENTIFIER = re.compile(r'"(?:[^"]|"")*"?')  # "" inside is a quote; an unterminated one too
_SQL_PLAIN_QUOTED_IDENTIFIER = re.compile(r'"[A-Za-z_][A-Za-z0-9_]*"')


def _query_problem(query: str) -> str | None:
    """Given a query, return None if it is one SELECT calling only functions known to have no side effect.

    SAFETY: what hides a call from that check is refused: comments (``pg_sleep/**/(1)``), Unicode
    escapes (``U&"!0070g_reload_conf" UESCAPE '!'``) and quoted identifiers other than a plain name.
    """
    text = query.strip().rstrip(";").strip()
    lowered = text.lower()
    if not lowered.startswith("select ") or ";" in text or "\\" in text:
        return "a psql query other than one SELECT"
    if "/*" in text or "--" in text or "u&" in lowered:
        return "a psql query with a comment or a Unicode escape (they can hide a function call)"
    if any(not _SQL_PLAIN_QUOTED_IDENTIFIER.fullmatch(quoted) for quoted in _SQL_QUOTED_IDENTIFIER.findall(text)):
        return "a psql query with a quoted identifier other than a plain name"
    if re.search(r"\b(into|copy|lo_\w+|dblink\w*|set_config|pg_\w*(terminate|cancel|reload|rotate|switch|read_file|write)\w*)\b", lowered):
        return "a psql query that may act (into, copy, a function with side effects)"
    unknown = {name for _, name in _SQL_CALL.findall(text) if name.lower() not in _PSQL_FUNCTIONS and name.lower() not in ("in",)}
    return f"a psql query calling {', '.join(sorted(unknown))}" if unknown else None


def _openssl(args: list[Word], context: _Context) -> str | None:
    values = _literals(args)
    if values is None or not values:
        return "a computed openssl argument"
    if values[0] == "x509":
        return _strict({"-noout", "-enddate", "-startdate", "-subject", "-issuer", "-dates", "-serial", "-fingerprint",
                        "-sha256"}, {"-in", "-checkend"}, operands=0,
                       check=lambda options, operands: None if ("-noout", None) in options else "openssl x509 without -noout")(args[1:], context)  # fmt: skip
    if values[0] == "s_client":
        # SAFETY: s_client sends its standard input to the server: only with </dev/null on its command
        # (on the right of a pipe, or from a here-document, it would send whatever it is given).
        if not context.stdin_null:
            return "openssl s_client without </dev/null (it sends its input to the server)"
        return _strict({"-showcerts", "-brief"}, {"-connect", "-servername", "-CAfile"}, operands=0)(args[1:], context)
    return None if values == ["version"] else "only openssl x509 -noout, s_client and version are read-only"


def _pm2(args: list[Word], context: _Context) -> str | None:
    return "pm2 starts its daemon (writing ~/.pm2) when none runs: ask it only through PM2_LISTING"


def _ip_check(options: list[tuple[str, str | None]], operands: list[str]) -> str | None:
    if not operands or operands[0] not in ("addr", "a", "address", "route", "r", "link", "l", "neigh", "n"):
        return "only ip addr/route/link/neigh show are read-only"
    return None if operands[1:2] in ([], ["show"], ["list"], ["ls"]) and len(operands) <= 4 else "ip that changes the network"


_CURL_OPTIONS = _strict({"-s", "-S", "-f", "-k", "-L", "-I", "--silent", "--show-error", "--fail", "--head", "--insecure",
                     "--location"}, {"-o", "--output", "--max-time", "-m", "--connect-timeout", "-w", "--write-out", "-H",
                                     "--header"}, clusters="sSfkLI", valued_letters="o", check=_curl_check)


_RULES: dict[str, Rule] = {
    "printf": _printf,
    "test": _test,
    "[": _bracket,
    "wait": _wait,
    "lsof": _lsof,
    # cd only to a literal directory: after `cd /d?v`, a relative path such as watchdog is a device.
    "cd": _strict({"-P", "-L"}, operands=1),
    "find": _find,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "sed": _sed,
    "sort": _strict({"-n", "-r", "-u", "-h", "-V", "-s", "-b", "-f", "-g", "-M", "-z"}, {"-k", "-t"},
                    clusters="nruhVsbfgMz"),
    "uniq": _strict({"-c", "-d", "-u", "-i"}, clusters="cdui", operands=1),
    "tee": _strict(set(), operands=0),  # stdout only
    "date": _strict({"-u", "--utc", "-R", "-Is", "-Iseconds"}, {"-d", "--date"}, check=_date),
    "hostname": _strict({"-f", "--fqdn", "-s", "--short", "-i", "-I", "-d", "-A"}, operands=0),
    "kill": _kill,
    "command": _command,
    "env": _env,
    "timeout": _timeout,
    "sudo": _sudo,
    "sh": _shell,
    "bash": _shell,
    "dash": _shell,
    "systemctl": _strict({"--no-pager", "--plain", "--no-legend", "--all", "-a", "--failed", "--value", "--quiet", "-q",
                          "--wait", "--full", "-l"}, {"--state", "-p", "--property", "--type", "-t"},
                         check=_systemctl_check),
    "journalctl": _strict({"--list-boots", "--no-pager", "-q", "--utc", "-k", "-r", "--reverse", "-b"},
                          {"-u", "--unit", "--since", "--until", "-n", "--lines", "-o", "--output", "-t", "-p"}, operands=0,
                          # journalctl takes -n's value only when it is a number: `-n --vacuum-size=1` vacuums.
                          check=lambda options, operands: None if all(str(value).isdigit() for name, value in options
                                                                     if name in ("-n", "--lines"))
                          else "journalctl -n/--lines without a number (the next word would be an option)"),
    "dpkg": _strict({"--audit", "-l", "--list", "-s", "--status", "-L", "--listfiles", "--print-architecture",
                     "--get-selections"}),
    "apt-get": _strict({"-s", "--simulate", "--dry-run", "--just-print", "--no-act", "-q", "-qq"}, {"-o"},
                       check=_apt_get_check),
    "apt-cache": _strict({"-q"}, check=lambda options, operands: None if operands[:1] and operands[0] in
                         ("policy", "show", "madison", "depends", "rdepends", "showpkg", "search") else "apt-cache that writes"),
    "apt": _strict({"--upgradable", "--installed", "-a", "--all-versions", "-q"},
                   check=lambda options, operands: None if operands[:1] and operands[0] in ("list", "show", "policy", "search")
                   else "apt that changes packages"),
    "apt-mark": _strict(set(), check=lambda options, operands: None if operands[:1] and operands[0] in
                        ("showhold", "showmanual", "showauto") else "apt-mark that marks"),
    "needrestart": _strict({"-b", "-q"}, {"-r"}, check=_needrestart_check),
    "docker": _docker,
    "docker-compose": _compose,
    "pm2": _pm2,
    "curl": lambda args, context: _curl(args, context),

    "redis-cli": _redis_cli,
    "pg_restore": _strict({"-l", "--list"}, operands=1,
                          check=lambda options, operands: None if options else "pg_restore writes unless it only lists (-l)"),
    "psql": _psql,
    "openssl": _openssl,
    "crontab": _strict({"-l"}, {"-u"}, operands=0,
                       check=lambda options, operands: None if ("-l", None) in options else "crontab that changes the table"),
    "mount": _strict(set(), operands=0),
    "swapon": _strict({"--show", "-s", "--summary", "--noheadings", "--bytes", "--raw"}, operands=0),
    "ufw": _strict({"verbose", "numbered"}, check=lambda options, operands: None if operands[:1] == ["status"] and
                   set(operands[1:]) <= {"verbose", "numbered"} else "ufw that changes the firewall"),
    "iptables": _strict({"-L", "-S", "--list", "--list-rules", "-n", "-v", "--numeric", "--line-numbers", "-x"}, {"-t"},
                        clusters="LSnvx", operands=1,
                        check=lambda options, operands: None if all(value == "filter" for name, value in options if name == "-t")
                        else "iptables -t other than filter (listing nat, mangle or raw loads their kernel modules)"),
    "nginx": _strict({"-v", "-V"}, operands=0),
    "node": _strict({"--version", "-v"}, operands=0),
    "npm": _strict({"--version", "-v"}, operands=0),
    "ip": _strict({"-j", "-4", "-6", "-br", "-o", "-d"}, check=_ip_check),
    "unzip": _strict({"-l", "-Z", "-t", "-v"}, operands=1,
                     check=lambda options, operands: None if options else "unzip extracts unless it lists (-l)"),
    "fuser": _strict({"-v", "-m", "-s", "-u", "-a"}, clusters="vmsua"),
}
# Commands that write, accepted only when every path they touch lies under a writable directory.
_BOOKKEEPING_OPTIONS = {"mkdir": {"-p", "--"}, "rmdir": {"--"}, "rm": {"-f", "--"}, "mv": {"-f", "--"}, "touch": {"--"}}
_BOOKKEEPING = set(_BOOKKEEPING_OPTIONS)


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
    after_dashes = False
    for arg in args:
        value = arg.literal
        if value is None:
            return f"{name} with a computed argument"
        if not after_dashes and value.startswith("-"):
            # SAFETY: only the options opsguard's bookkeeping uses; any other may hold a path
            # (mv --target-directory=/etc/cron.d) or a mode.
            if value not in _BOOKKEEPING_OPTIONS[name]:
                return f"{name} option {value} is not one opsguard's bookkeeping uses"
            after_dashes = value == "--"
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


# How a reader may walk a tree or open devices. grep -r walks a tree without following symlinks: allowed
# only over literal absolute trees outside /proc, /sys, /dev and /run (grep -r /proc reads /proc/kmsg, and
# consumes it); -R and --dereference-recursive follow symlinks (into devices and FIFOs), -d/-D choose how
# directories and devices are opened: refused. Letters after a valued letter are its value.
# name -> (recursive letter, refused letters, valued letters, letters that give the pattern, refused long options)
_RECURSION = {"grep": ("r", "RdD", "efmABC", "ef", ("--dereference-recursive", "--directories", "--devices")),
              "zcat": ("r", "", "S", "", ())}  # fmt: skip
_RECURSION["egrep"] = _RECURSION["fgrep"] = _RECURSION["grep"]
_NO_WALK = ("/proc", "/sys", "/dev", "/run")


def _reader_recursion_problem(name: str, args: list[Word]) -> str | None:
    """Given a reader's name and arguments, return why an option makes it walk a tree it must not or open devices."""
    if name not in _RECURSION:
        return None
    recursive_letter, refused, valued, pattern_letters, long_names = _RECURSION[name]
    recursive, pattern_given, skip, operands = False, name not in ("grep", "egrep", "fgrep"), False, []
    for index, arg in enumerate(args):
        value = arg.literal
        if skip:
            skip = False
            continue
        if value == "--":
            operands += [word.literal for word in args[index + 1:]]
            break
        if value is None or not value.startswith("-") or value == "-":
            operands.append(value)
            continue
        if value.startswith("--"):
            if any(value == long or value.startswith(long + "=") for long in long_names):
                return f"{value}: {name} would follow links or open devices"
            recursive = recursive or value == "--recursive"
            pattern_given = pattern_given or value.startswith(("--regexp", "--file"))
            skip = value in ("--regexp", "--file")
            continue
        for position, letter in enumerate(value[1:], start=1):
            if letter in refused:
                return f"-{letter}: {name} would follow links or open devices"
            recursive = recursive or letter == recursive_letter
            if letter in valued:
                pattern_given = pattern_given or letter in pattern_letters
                skip = position == len(value) - 1  # the value is the next word
                break
    if not recursive:
        return None
    trees = operands if pattern_given else operands[1:]
    for tree in trees:
        path = posixpath.normpath(tree) if tree is not None else ""
        if not path.startswith("/") or path == "/" or any(path == top or path.startswith(top + "/") for top in _NO_WALK):
            return f"{name} -r over {tree or 'a computed path'!r} (only literal absolute trees outside /proc, /sys, /dev, /run)"
    return None if trees else f"{name} -r with no tree (it would walk the working directory)"


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
        return f"{_show(words)}: a command named by its path (only bare names are in the vocabulary)"
    args = words[1:]
    if name in ("export", "local"):
        for arg in args:
            problem = "a computed assignment" if arg.literal is None else _assignment_problem(arg.literal)
            if problem:
                return f"{_show(words)}: {problem}"
        return None
    if name == "set":
        values = _literals(args)
        if values is None or not set(values) <= {"-e", "-u", "+e", "+u", "-eu", "-ue", "-o", "+o", "pipefail"}:
            return f"{_show(words)}: only set -e, -u and -o pipefail are read-only"
        return None
    if name in _READERS:
        problem = _reader_recursion_problem(name, args)
        return f"{_show(words)}: {problem}" if problem else None
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
    text = " ".join(word.raw for word in words).replace(_PM2_LISTING_MARK, "PM2_LISTING")
    return "`" + (text if len(text) <= 60 else text[:57] + "...") + "`"


# SAFETY: reading some files changes the host: opening /dev/watchdog arms a reboot, reading /proc/kmsg or
# a tracing trace_pipe consumes what others would read, /proc/PID/fd/N reopens another process's pipe or
# device, /run/initctl is init's FIFO. A literal path there is refused (/dev/null aside); a computed one
# (a variable, a glob) cannot be known: a documented limit, like any other FIFO.
_SPECIAL_FILE_PARTS = frozenset({"kmsg", "trace_pipe", "trace_pipe_raw", "initctl", "fd"})
# In text with blanks: /dev/ (but /dev/null), gawk's /inet special files, and the names above.
_SPECIAL_IN_TEXT = re.compile(r"/dev/(?!null(?![\w/.-]))|/inet[46]?/|\bkmsg\b|\btrace_pipe|\binitctl\b|/fd(?:/|\b)")


def _special_file_problem(value: str) -> str | None:
    """Given a literal word, return why a path in it may name a device or a special file, else None."""
    if any(blank in value for blank in " \t\n") and _SPECIAL_IN_TEXT.search(value):
        # Text (a TZ="..." date, a script): a special path anywhere in it, as a program may open what it names.
        return f"{value[:40]!r} names a device or a special file whose reading changes it"
    candidates = [value, value.lstrip("@")]
    if value.startswith("-") and not value.startswith("--") and len(value) > 2 and (
            "/" in value[2:] or value[2:] in _SPECIAL_FILE_PARTS):
        candidates.append(value[2:])  # -f/dev/x, -fdev/x, -fkmsg (an attached value); not find's -xdev
    if "=" in value:
        candidates.append(value.split("=", 1)[1])  # --file=/dev/x, x=/dev/x
    for candidate in candidates:
        if not candidate:
            continue
        path = posixpath.normpath(re.sub("/+", "/", candidate))
        parts = path.split("/")
        if path == "/dev/null":
            continue
        if path.startswith("/"):
            # /inet, /inet4, /inet6: gawk opens a network socket for such a "file".
            if parts[1] in ("dev", "inet", "inet4", "inet6") or _SPECIAL_FILE_PARTS & set(parts) or \
                    any(part.startswith("trace_pipe") for part in parts):
                return f"{value!r} may name a device or a special file whose reading changes it"
        elif "://" in candidate or any(blank in candidate for blank in " \t\n"):
            continue  # a URL, or text (a script, a query, a pattern with spaces), not a relative path
        elif ({"dev", ".."} | _SPECIAL_FILE_PARTS) & set(parts):
            return f"{value!r} may name a device or a special file (a relative path into dev, .., kmsg, fd...)"
    return None


# Descriptor duplications that only join the two output streams.
_OUTPUT_DUPLICATIONS = {("2", ">&", "1"), ("", ">&", "2"), ("1", ">&", "2")}


def _redirect_problem(operator: str, target: Word, writable: tuple[str, ...]) -> str | None:
    descriptor = "".join(character for character in operator if character.isdigit())
    kind = operator.lstrip("0123456789")
    if kind in ("<<", "<<-"):
        return None if descriptor in ("", "0") else f"a here-document on descriptor {descriptor}"
    value = target.literal
    if value is None:
        # SAFETY: bash itself opens /dev/tcp/HOST/PORT (connects) for any redirection: never computed.
        return f"a redirection to a computed target {target.raw!r}"
    if kind in (">&", "<&") and (value.isdigit() or value == "-"):
        # >&0 writes into what stdin opened (read-write for /dev/tcp/...); 3>&-, <&4...: not followed.
        return None if (descriptor, kind, value) in _OUTPUT_DUPLICATIONS else f"the descriptor duplication {operator}{value}"
    if kind == "<&":
        return f"the redirection {operator}{value}"
    if value != "/dev/null":
        problem = _special_file_problem(value)
        if problem:
            return f"a redirection: {problem}"
    if kind == "<":
        # Input only on standard input: `1</dev/tcp/...` or `2<file` turn an input into something else.
        return None if descriptor in ("", "0") else f"an input redirection on descriptor {descriptor}"
    if value == "/dev/null" or _under(value, writable):
        return None
    return f"output redirected to {target.raw!r}"


def _is_pm2_listing(command: SimpleCommand) -> bool:
    return [word.raw for word in command.words] == [_PM2_LISTING_MARK] and not command.assignments and not command.redirects


def _pm2_listing_problem(script: str, commands: list[SimpleCommand]) -> str | None:
    """Given a script with each PM2_LISTING turned into the marker, and its commands, return None if every
    marker stands alone as a whole command or lies inside one single-quoted word, else why not. Such a
    word gets its text back (an ``sh -c`` script is then checked, and finds its construct, again).

    SAFETY: only as a whole command does bash read the construct as the if-compound it is; elsewhere its
    words are arguments (``if : if pm2_pid=...; then pm2 jlist; ...`` runs pm2 jlist after `:` succeeds),
    double-quoted text whose $(...) runs, a comment or a here-document, whose `if` bash never tests.
    """
    accounted = 0
    for command in commands:
        if _is_pm2_listing(command):
            accounted += 1
            continue
        for word in [*command.assignments, *command.words, *(redirect.target for redirect in command.redirects)]:
            if _PM2_LISTING_MARK in word.raw and word.literal is not None and re.fullmatch(r"'[^']*'", word.raw):
                accounted += word.raw.count(_PM2_LISTING_MARK)
                word.literal = word.literal.replace(_PM2_LISTING_MARK, PM2_LISTING)
    if script.count(_PM2_LISTING_MARK) != accounted:
        return "the pm2 listing construct is not a whole command of its own (nor one single-quoted word)"
    return None


def _stdin_is_null(command: SimpleCommand) -> bool:
    """Given a simple command, return whether its last redirection of standard input is </dev/null."""
    inputs = [redirect for redirect in command.redirects
              if redirect.operator.lstrip("0123456789") in ("<", "<<", "<<-", "<&", "<>")
              and redirect.operator[:1] in ("<", "0")]
    return bool(inputs) and inputs[-1].operator in ("<", "0<") and inputs[-1].target.literal == "/dev/null"


def _problem(script: str, writable: tuple[str, ...]) -> str | None:
    if _PM2_LISTING_MARK in script:
        return "the text holds opsguard's internal pm2 marker"
    # The exact pm2 construct becomes one marker word before parsing: pm2 anywhere else is refused.
    script = script.replace(PM2_LISTING, _PM2_LISTING_MARK)
    try:
        commands = simple_commands(script)
    except ShellSyntaxUnknown as error:
        return f"shell syntax not followed ({error})"
    problem = _pm2_listing_problem(script, commands)
    if problem:
        return problem
    for command in commands:
        if _is_pm2_listing(command):
            continue
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
            problem = _redirect_problem(redirect.operator, redirect.target, writable)
            if problem:
                return problem
        for word in [*command.assignments, *command.words]:
            problem = _special_file_problem(word.literal) if word.literal is not None else None
            if problem:
                return problem
        for word in command.assignments:
            if _ASSIGNMENT.match(word.raw):
                problem = _assignment_problem(word.raw.split("=", 1)[0] + "=" + (word.literal or "").split("=", 1)[-1]
                                              if word.literal is not None else word.raw)
                if problem:
                    return problem
        if not command.words:
            continue
        environment = tuple(str(word.literal) for word in command.assignments if word.literal is not None)
        problem = _check_words(command.words, _Context(writable, environment, stdin_null=_stdin_is_null(command)))
        if problem:
            return problem
    return None


def environment_problem(environment: Mapping[str, str] | None) -> str | None:
    """Given the variables a read would be sent with, return None if each only sets a plain shell variable, else why not.

    SAFETY: an environment changes what the commands do (TAR_OPTIONS, LD_PRELOAD, BASH_ENV, PATH...).
    """
    for name, value in (environment or {}).items():
        problem = _assignment_problem(f"{name}={value}")
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
