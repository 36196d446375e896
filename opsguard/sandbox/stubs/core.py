"""What every fake shares: the call, the state kept between calls, output and argument helpers.

Imported on every stubbed command, so it imports only os, sys and marshal: start-up time is paid
by every stubbed command a playbook runs. A fake imports anything heavier (json, re, shlex,
hashlib, zipfile) inside the function that needs it.
"""

from __future__ import annotations

import marshal
import os
import sys

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REFUSED_OUTSIDE = 97  # exit status when a call would write outside the sandbox root


class Call:
    """One invocation: argv (argv[0] is the command name), the host's sandbox root and profile."""

    def __init__(self, root: str, argv: list[str], stdin_bytes: int, profile: str) -> None:
        self.root = root
        self.argv = argv
        self.args = argv[1:]
        self.stdin_bytes = stdin_bytes
        self.profile = profile
        self.user = os.environ.get("USER", "")

    def inside_root(self, path: str) -> bool:
        """Given a path, return True if it resolves inside the sandbox root."""
        full = os.path.realpath(os.path.join(current_directory(), path))
        return full == os.path.realpath(self.root) or full.startswith(os.path.realpath(self.root) + os.sep)

    def host_path(self, path: str) -> str:
        """Given a path, return it as the host sees it: relative to the sandbox root when inside it."""
        full = os.path.normpath(os.path.join(current_directory(), path))
        root = os.path.normpath(self.root)
        if full == root:
            return "/"
        return full[len(root) :] if full.startswith(root + os.sep) else full


def current_directory() -> str:
    """Return the working directory, or "?" when it was removed under the caller."""
    try:
        return os.getcwd()
    except OSError:
        return "?"


# -- state the fakes keep between calls (<root>/stub-state/, wiped by a reset) ---------------------


def load_state(call: Call, name: str, default: Any) -> Any:
    """Given a state name, return what an earlier call saved under <root>/stub-state/, else the default."""
    try:
        with open(os.path.join(call.root, "stub-state", name), "rb") as source:
            return marshal.load(source)
    except (OSError, EOFError, ValueError, TypeError):
        return default


def save_state(call: Call, name: str, value: Any) -> None:
    """Given a state name and plain data, save it under <root>/stub-state/ (atomically: calls may overlap)."""
    directory = os.path.join(call.root, "stub-state")
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{name}.{os.getpid()}")
    with open(partial, "wb") as target:
        marshal.dump(value, target)
    os.replace(partial, os.path.join(directory, name))


# -- output --------------------------------------------------------------------------------------


def out(text: str) -> None:
    """Given text, write it to stdout."""
    sys.stdout.write(text)


def err(text: str) -> None:
    """Given text, write it to stderr."""
    sys.stderr.write(text)


def out_bytes(data: bytes) -> None:
    """Given bytes, write them to stdout after any text already written (a dump, a file's content)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)


def to_json(value: Any, compact: bool = False) -> str:
    """Given plain data (dict, list, str, int, float, bool, None), return JSON text, without importing json.

    ``compact`` leaves out the spaces after ',' and ':' (as Go and docker's ``{{json}}`` write it).
    """
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # not CPython: the slow, sure way
        import json

        return json.dumps(value, separators=(",", ":") if compact else None)
    comma, colon = (",", ":") if compact else (", ", ": ")
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return str(quote(value))
    if isinstance(value, list | tuple):
        return "[" + comma.join(to_json(item, compact) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + comma.join(f"{quote(str(key))}{colon}{to_json(item, compact)}" for key, item in value.items()) + "}"
        )
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# -- arguments -----------------------------------------------------------------------------------


def options_and_words(args: list[str], with_value: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Split args into options and positional words, skipping the value of each option in with_value."""
    options: list[str] = []
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("-") and arg != "-":
            options.append(arg)
            skip = arg in with_value
        else:
            words.append(arg)
    return options, words


def first_word(args: list[str], with_value: tuple[str, ...] = ()) -> int | None:
    """Return the index of the first positional argument, skipping options and the values of those in with_value."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return index + 1 if index + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return index
        index += 2 if arg in with_value else 1
    return None


def option_value(args: list[str], names: tuple[str, ...]) -> str | None:
    """Return the value of the first option in names (``--x VALUE`` or ``--x=VALUE``), else None."""
    for position, arg in enumerate(args):
        if arg in names and position + 1 < len(args):
            return args[position + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def has_flag(args: list[str], letter: str, long_name: str) -> bool:
    """Return whether a short flag (alone or in a cluster such as -aq) or its long form is given."""
    return any(
        arg == long_name or (arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]) for arg in args
    )


# -- files a real command leaves behind ------------------------------------------------------------


def write_inside(call: Call, path: str, text: str) -> None:
    """Write a file the real command would leave behind, only when it lies inside the sandbox root."""
    if call.inside_root(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as target:
            target.write(text)
