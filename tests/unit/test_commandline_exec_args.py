"""CommandAfterHost: `exec HOST [OPTIONS] CMD...` gives every word from the command's first one to the command.

`opsguard exec chat echo --yes` must run `echo --yes` on chat (with a confirmation), not read --yes
as opsguard's own option and skip the question.
"""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from opsguard.commandline import CommandAfterHost, positive_duration_option
from opsguard.errors import ConfigError


def _exec_like(command_class: type[click.Command] = CommandAfterHost, **settings: object) -> click.Command:
    @click.command(cls=command_class, context_settings=settings)
    @click.argument("host")
    @click.argument("words", nargs=-1, required=True, type=click.UNPROCESSED, metavar="[--] CMD...")
    @click.option("--yes", is_flag=True)
    @click.option("--reason", default=None)
    @click.option("--timeout", "-t", default="60m")
    @click.option("--json/--no-json", "as_json", default=False)
    def exec_like(host: str, words: tuple[str, ...], yes: bool, reason: str | None, timeout: str, as_json: bool) -> None:
        click.echo(json.dumps({"host": host, "words": list(words), "yes": yes, "reason": reason, "timeout": timeout, "json": as_json}))

    return exec_like


def _parsed(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(_exec_like(), list(args))
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.output)
    return parsed


def _usage_error(*args: str) -> str:
    result = CliRunner().invoke(_exec_like(), list(args))
    assert result.exit_code == 2, result.output
    return result.output


def test_command_after_host_takes_options_before_double_dash_and_passes_the_rest() -> None:
    parsed = _parsed("chat", "--yes", "--", "echo", "--yes")

    assert (parsed["host"], parsed["yes"], parsed["words"]) == ("chat", True, ["echo", "--yes"])


def test_command_after_host_leaves_option_after_first_command_word_to_the_command() -> None:
    parsed = _parsed("chat", "echo", "--yes")

    assert (parsed["yes"], parsed["words"]) == (False, ["echo", "--yes"])


def test_command_after_host_reads_option_values_before_the_command() -> None:
    parsed = _parsed("chat", "--reason", "x y", "--timeout", "5s", "ls", "-l")

    assert (parsed["reason"], parsed["timeout"], parsed["words"]) == ("x y", "5s", ["ls", "-l"])


def test_command_after_host_reads_equals_and_attached_short_values() -> None:
    parsed = _parsed("chat", "--reason=why not", "-t5s", "ls")

    assert (parsed["reason"], parsed["timeout"], parsed["words"]) == ("why not", "5s", ["ls"])


def test_command_after_host_option_value_that_looks_like_an_option_is_the_value() -> None:
    parsed = _parsed("chat", "--reason", "--yes", "uptime")

    assert (parsed["reason"], parsed["yes"], parsed["words"]) == ("--yes", False, ["uptime"])


def test_command_after_host_double_dash_lets_command_start_with_a_dash() -> None:
    assert _parsed("chat", "--", "--weird")["words"] == ["--weird"]


def test_command_after_host_keeps_later_double_dash_in_the_command() -> None:
    assert _parsed("chat", "--yes", "--", "git", "log", "--", "file")["words"] == ["git", "log", "--", "file"]
    assert _parsed("chat", "grep", "-r", "--", "-x", ".")["words"] == ["grep", "-r", "--", "-x", "."]


def test_command_after_host_takes_options_before_host_and_secondary_flag_names() -> None:
    parsed = _parsed("--yes", "--no-json", "chat", "--json", "uptime")

    assert (parsed["host"], parsed["yes"], parsed["json"], parsed["words"]) == ("chat", True, True, ["uptime"])


def test_command_after_host_keeps_words_untouched() -> None:
    words = ["sh", "-c", "echo 'a  b' \"$HOME\" \\; --help", "-", "--reason", ""]

    assert _parsed("chat", *words)["words"] == words


def test_command_after_host_help_after_the_command_belongs_to_the_command() -> None:
    assert _parsed("chat", "man", "--help")["words"] == ["man", "--help"]


def test_command_after_host_help_before_the_command_shows_help() -> None:
    result = CliRunner().invoke(_exec_like(), ["chat", "--help"])

    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_command_after_host_usage_error_when_no_command() -> None:
    assert "Missing argument '[--] CMD...'" in _usage_error("chat", "--yes")


def test_command_after_host_usage_error_when_only_double_dash() -> None:
    assert "Missing argument '[--] CMD...'" in _usage_error("chat", "--yes", "--")


def test_command_after_host_usage_error_when_no_host() -> None:
    assert "Missing argument 'HOST'" in _usage_error("--yes")


def test_command_after_host_usage_error_names_unknown_option_before_the_command() -> None:
    output = _usage_error("chat", "--bogus", "ls")

    assert "No such option '--bogus'." in output


def test_command_after_host_usage_error_suggests_close_option() -> None:
    output = _usage_error("chat", "--reasn", "x", "ls")

    assert "No such option '--reasn'." in output and "'--reason'" in output


def test_command_after_host_usage_error_when_option_value_missing() -> None:
    assert "Option '--reason' requires an argument." in _usage_error("chat", "--reason")


def test_command_after_host_usage_error_when_flag_given_a_value() -> None:
    assert "Option '--yes' does not take a value." in _usage_error("chat", "--yes=1", "ls")


def test_command_after_host_refuses_declaration_without_command_argument() -> None:
    with pytest.raises(TypeError, match="HOST, then the command"):
        @click.command(cls=CommandAfterHost)
        @click.argument("host")
        def broken(host: str) -> None:
            click.echo(host)


@pytest.mark.parametrize(("text", "seconds"), [("60m", 3600.0), ("5s", 5.0), ("7d", 604800.0)])
def test_positive_duration_option_returns_seconds(text: str, seconds: float) -> None:
    assert positive_duration_option(text, option="--timeout") == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "--timeout: '0s' must be greater than zero"),
        ("8d", "--timeout: '8d' is longer than the maximum of 7d"),
        ("soon", "--timeout: 'soon' is not a duration (use a number and one of ms, s, m, h, d, e.g. \"15s\")"),
    ],
)
def test_positive_duration_option_refuses_with_option_name(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        positive_duration_option(text, option="--timeout")

    assert str(caught.value) == message
