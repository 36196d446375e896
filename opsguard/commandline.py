"""Command-line input checked before anything happens: text sent to a host, durations, and `exec`'s arguments.

Every check here runs before the snapshot: on Hostinger a new snapshot replaces the previous one, so
input that can only fail later must cost nothing now.
"""

from __future__ import annotations

import difflib
from typing import Any

import click

from opsguard.durations import MAX_DURATION_SECONDS, parse_positive_duration
from opsguard.errors import ConfigError

# surrogateescape maps an undecodable byte 0xXX to U+DCXX (PEP 383): this is how argv bytes that are
# not UTF-8 reach Python.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def validate_command_text(text: str, *, what: str, allow_empty: bool = False) -> None:
    """Given text bound for a host or the ledger (a command, a --var value, a reason) and what it is, return None if usable.

    Raise ConfigError naming ``what`` if it is not a string, cannot be encoded as strict UTF-8 (bytes
    that were not UTF-8 arrive as surrogate escapes and would fail only when sent), contains a NUL,
    or is empty or only whitespace (unless ``allow_empty``).
    """
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(f"{what}: not valid UTF-8 ({_describe_surrogate(text, error.start)})") from None
    if "\x00" in text:
        raise ConfigError(f"{what}: contains a NUL character (at character {text.index(chr(0)) + 1})")
    if not allow_empty and not text.strip():
        raise ConfigError(f"{what}: is empty")


def positive_duration_option(text: str, *, option: str, maximum: float = MAX_DURATION_SECONDS) -> float:
    """Given an option's duration text (e.g. --timeout "60m") and the option's name, return seconds.

    Raise ConfigError naming the option if the text is malformed, zero, or longer than ``maximum``
    (default 7 days).
    """
    try:
        return parse_positive_duration(text, maximum=maximum)
    except ValueError as error:
        raise ConfigError(f"{option}: {error}") from None


class CommandAfterHost(click.Command):
    """A click command read as ``HOST [OPTIONS] [--] CMD...``: every word from the command's first on is the command's.

    Declare exactly two arguments, HOST then the command (``nargs=-1``). This command's own options may
    stand before HOST and between HOST and the command; the command starts at the first word after
    HOST that is not one of them (an option's value belongs to its option) or right after a ``--``.
    From there on every word is passed through untouched, including words like ``--yes``, ``--help``
    or a later ``--``: SAFETY: `exec chat echo --yes` must not skip the confirmation. An unknown option
    before the command is a usage error (put ``--`` before a command that starts with '-').
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        arguments = [param for param in self.params if isinstance(param, click.Argument)]
        if len(arguments) != 2 or arguments[1].nargs != -1:
            raise TypeError(f"command {self.name!r}: CommandAfterHost needs exactly two arguments: HOST, then the command (nargs=-1)")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Given the words after the command's name, parse options and HOST; hand the command's words over as they are."""
        if not args:
            return super().parse_args(ctx, args)  # keeps no_args_is_help and the missing-argument errors
        own, host, command = self._split(ctx, list(args))
        # After "--" click takes every word as an argument: HOST, then the command, option-like or not.
        return super().parse_args(ctx, [*own, "--", *host, *command])

    def _split(self, ctx: click.Context, args: list[str]) -> tuple[list[str], list[str], list[str]]:
        """Given the arguments, return (this command's option words, [HOST] or [], the command's words)."""
        options = self._options_by_name(ctx)
        own: list[str] = []
        host: list[str] = []
        index = 0
        while index < len(args):
            word = args[index]
            if word == "--":
                rest = args[index + 1 :]
                return (own, rest[:1], rest[1:]) if not host else (own, host, rest)
            if word.startswith("-") and word != "-":
                taken = self._option_words(ctx, options, args, index)
                own.extend(taken)
                index += len(taken)
                continue
            if host:
                return own, host, args[index:]
            host = [word]
            index += 1
        return own, host, []

    def _options_by_name(self, ctx: click.Context) -> dict[str, click.Option]:
        options: dict[str, click.Option] = {}
        for param in self.get_params(ctx):  # with --help
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    options[name] = param
        return options

    @staticmethod
    def _option_words(ctx: click.Context, options: dict[str, click.Option], args: list[str], index: int) -> list[str]:
        """Given the arguments and the index of an option word, return that option's words (with its values)."""
        word = args[index]
        name, equals, _ = word.partition("=")
        if word.startswith("--") and equals:
            if name not in options:
                raise click.NoSuchOption(name, possibilities=difflib.get_close_matches(name, options), ctx=ctx)
            return [word]  # --reason=TEXT; click says so if the option takes no value
        option = options.get(word)
        if option is None and not word.startswith("--") and len(word) > 2:
            attached = options.get(word[:2])  # -t5s: a short option with its value attached
            if attached is not None and _takes_values(attached):
                return [word]
        if option is None:
            raise click.NoSuchOption(word, possibilities=difflib.get_close_matches(word, options), ctx=ctx)
        count = option.nargs if _takes_values(option) else 0
        values = args[index + 1 : index + 1 + count]
        if len(values) < count:
            raise click.BadOptionUsage(word, f"Option '{word}' requires an argument.", ctx=ctx)
        return [word, *values]


def _takes_values(option: click.Option) -> bool:
    return not option.is_flag and not option.count


def _describe_surrogate(text: str, index: int) -> str:
    code = ord(text[index])
    where = f"at character {index + 1}"
    if code in _ESCAPED_BYTES:
        return f"byte 0x{code - 0xDC00:02x} {where}"
    return f"lone surrogate U+{code:04X} {where}"

