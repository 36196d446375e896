"""The one redactor: configured token values (and their encodings) never survive into a text opsguard emits (no sockets)."""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

import click
import pytest

from opsguard import cli as cli_module
from opsguard.errors import ProviderUnreachable
from opsguard.redact import MARKER, RedactingFilter, redact, redact_data

VULTR_TOKEN = "tok-SECRET-vultr-unit\nsecond-line-5b7e"
HOSTINGER_TOKEN = "tok-SECRET-hostinger-unit-3c9d"
FRAGMENTS = ("SECRET", "second-line-5b7e")


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", VULTR_TOKEN)
    monkeypatch.setenv("HOSTINGER_API_TOKEN", HOSTINGER_TOKEN)


def assert_clean(text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"{fragment!r} survived in {text!r}"


def encodings(token: str) -> list[str]:
    return [
        token,
        json.dumps(token)[1:-1],
        json.dumps(token, ensure_ascii=False)[1:-1],
        repr(token)[1:-1],
        repr(token.encode())[2:-1],
        urllib.parse.quote(token, safe=""),
        urllib.parse.quote(token),
        urllib.parse.quote_plus(token),
        repr(repr(token))[1:-1],  # a repr inside a repr (an error message quoting another)
    ]


@pytest.mark.usefixtures("tokens")
@pytest.mark.parametrize("token", [VULTR_TOKEN, HOSTINGER_TOKEN], ids=["vultr", "hostinger"])
def test_redact_replaces_token_in_every_common_encoding(token: str) -> None:
    for form in encodings(token):
        text = f"before {form} after"
        result = redact(text)
        assert_clean(result)
        assert result.startswith("before ") and result.endswith(" after")
        assert MARKER in result


@pytest.mark.usefixtures("tokens")
def test_redact_replaces_each_line_of_a_multiline_token() -> None:
    # A message cut at its first line (one line per problem) keeps only part of the token.
    first, second = VULTR_TOKEN.splitlines()
    assert redact(f"x {first}") == f"x {MARKER}"
    assert redact(f"{second} y") == f"{MARKER} y"


@pytest.mark.usefixtures("tokens")
def test_redact_leaves_text_without_a_token_unchanged() -> None:
    text = "vultr API HTTP 401: POST /snapshots: Invalid API token.\n\tline two"
    assert redact(text) == text


def test_redact_ignores_values_too_short_to_be_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", "abc")
    monkeypatch.setenv("HOSTINGER_API_TOKEN", "x\ny")
    assert redact("abc x y abc") == "abc x y abc"


def test_redact_reads_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    assert redact("tok-SECRET-late") == "tok-SECRET-late"
    monkeypatch.setenv("VULTR_API_KEY", "tok-SECRET-late")
    assert redact("tok-SECRET-late") == MARKER


@pytest.mark.usefixtures("tokens")
def test_redact_data_recurses_into_dicts_lists_and_keys_keeping_other_values() -> None:
    data: dict[str, Any] = {
        "error": f"Invalid header value b'Bearer {VULTR_TOKEN}'",
        HOSTINGER_TOKEN: [1, 2.5, True, None, {"nested": (f"x{HOSTINGER_TOKEN}y",)}],
        "count": 3,
    }
    result = redact_data(data)
    assert_clean(json.dumps(result))
    assert result["count"] == 3
    assert result[MARKER][:4] == [1, 2.5, True, None]
    assert result[MARKER][4] == {"nested": [f"x{MARKER}y"]}
    assert data["error"].count("SECRET") == 1  # the input is not modified


@pytest.mark.usefixtures("tokens")
def test_redact_data_turns_other_objects_into_redacted_text() -> None:
    class Holder:
        def __str__(self) -> str:
            return f"holder of {HOSTINGER_TOKEN}"

    assert redact_data({"value": Holder()}) == {"value": f"holder of {MARKER}"}


@pytest.mark.usefixtures("tokens")
def test_redacting_filter_cleans_message_arguments_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("opsguard.test.redact")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"Invalid header value b'Bearer {VULTR_TOKEN}'")
        except ValueError:
            logger.exception("request with %s failed", HOSTINGER_TOKEN, stack_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    printed = capsys.readouterr().err
    assert "request with" in printed and "Traceback" in printed and "ValueError" in printed
    assert_clean(printed)


@pytest.mark.usefixtures("tokens")
def test_cli_logging_setup_redacts_every_log_record(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process, where basicConfig installs the handler
    monkeypatch.setattr(root, "level", root.level)
    cli_module._configure_logging(debug=True)
    logging.getLogger("urllib3.connectionpool").debug("header %r", f"Bearer {VULTR_TOKEN}")
    printed = capsys.readouterr().err
    assert "header" in printed
    assert_clean(printed)


def _failing_command(error: BaseException) -> click.Command:
    @click.command("boom")
    def boom() -> None:
        try:
            raise RuntimeError(f"inner cause carrying {HOSTINGER_TOKEN}")
        except RuntimeError as cause:
            raise error from cause

    return boom


@pytest.mark.usefixtures("tokens")
@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
@pytest.mark.parametrize(
    ("error", "exit_code"),
    [
        (ValueError(f"Invalid header value b'Bearer {VULTR_TOKEN}'"), 70),
        (ProviderUnreachable("vultr", f"a future bug put {VULTR_TOKEN!r} here"), 4),
    ],
    ids=["internal", "opsguard"],
)
def test_cli_main_redacts_a_token_a_future_bug_puts_into_an_exception(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    debug: list[str],
    error: BaseException,
    exit_code: int,
) -> None:
    command = _failing_command(error)
    monkeypatch.setattr(cli_module.cli, "get_command", lambda ctx, name: command if name == "boom" else None)
    with pytest.raises(SystemExit) as exited:
        cli_module.main([*debug, "boom"])
    assert exited.value.code == exit_code
    printed = capsys.readouterr()
    assert MARKER in printed.err
    if debug:
        assert "Traceback" in printed.err and "inner cause carrying" in printed.err
    assert_clean(printed.out + printed.err)


@pytest.mark.usefixtures("tokens")
def test_print_json_redacts_tokens_and_stays_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    from opsguard.output import print_json

    print_json({"hosts": [{"problem": f"bad {VULTR_TOKEN}", "count": 2}]})
    printed = capsys.readouterr().out
    assert_clean(printed)
    assert json.loads(printed) == {"hosts": [{"problem": f"bad {MARKER}", "count": 2}]}


@pytest.mark.usefixtures("tokens")
def test_notify_redacts_webhook_payload_and_ping_body(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsguard import notify

    sent: list[tuple[str, bytes]] = []
    monkeypatch.setattr(notify, "_post", lambda url, body, content_type, timeout: sent.append((url, body)) or 200)
    assert notify.post_json("http://127.0.0.1:1/hook", {"problem": f"bad {VULTR_TOKEN}"}) is None
    assert notify.ping("http://127.0.0.1:1/ping", "4", f"first line {VULTR_TOKEN.splitlines()[0]}") is None
    assert len(sent) == 2
    for _, body in sent:
        assert_clean(body.decode("utf-8"))
    assert json.loads(sent[0][1]) == {"problem": f"bad {MARKER}"}
    assert sent[1][1].decode() == f"first line {MARKER}"


@pytest.mark.usefixtures("tokens")
def test_backup_check_redacts_a_token_in_problem_lines_report_webhook_and_ping(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from opsguard import notify
    from opsguard.commands import backup_check

    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[settings]\nstate_dir = "{tmp_path / "state"}"\n'
        '[hosts.chat]\naddress = "127.0.0.2"\nprovider = "hostinger"\ninstance = 1001\n'
        '[hosts.chat.backups]\nschedule = "weekly"\nmax_age = "8d"\n',
        encoding="utf-8",
    )

    def broken_factory(deadline_seconds: float) -> Any:
        def build(host: Any) -> Any:
            raise RuntimeError(f"a future bug quotes {VULTR_TOKEN!r} and {HOSTINGER_TOKEN}")

        return build

    sent: list[tuple[str, bytes]] = []
    monkeypatch.setattr(backup_check, "_provider_factory", broken_factory)
    monkeypatch.setattr(notify, "_post", lambda url, body, content_type, timeout: sent.append((url, body)) or 200)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(
            ["-i", str(inventory), "backup-check", "--json", "--webhook", "http://127.0.0.1:1/hook",
             "--ping-url", "http://127.0.0.1:1/ping"]
        )  # fmt: skip
    assert exited.value.code != 0
    printed = capsys.readouterr()
    assert "a future bug quotes" in printed.out and "a future bug quotes" in printed.err
    assert [url for url, _ in sent] == [
        "http://127.0.0.1:1/ping/start",
        "http://127.0.0.1:1/ping/70",
        "http://127.0.0.1:1/hook",
    ]
    assert b"a future bug quotes" in sent[-1][1]
    assert_clean(printed.out + printed.err + "".join(body.decode() for _, body in sent))
