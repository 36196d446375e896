"""A malformed token (one with a line break) is refused by name and never shown anywhere.

requests refuses a header value with a line break and puts the value in its message, so before
the token was checked, `VULTR_API_KEY=$'tok\\nx' opsguard snapshot chat` printed the token on
stderr, wrote it into the ledger and sent it in backup-check's report, webhook and ping. Here the
Vultr token has a line break and the Hostinger token is plain; the real CLI runs `snapshot` and
`backup-check --json --webhook URL --ping-url URL` (to a local receiver), with and without --debug,
and every text it printed, the ledger and every body the receiver got are searched for each
token, its JSON-escaped, repr and URL-encoded forms and each of its lines.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import CliResult
from tests.integration.backup_check_support import Receiver
from tests.integration.guard_support import GuardWorld, GuardWorlds

pytestmark = pytest.mark.integration

VULTR_TOKEN = "tok-SECRET-vultr-first-line-7f3a\nsecond-line-of-the-vultr-token-91d0"
HOSTINGER_TOKEN = "tok-SECRET-hostinger-plain-9c1e"


def secret_forms(token: str) -> set[str]:
    """Given a token, return every form of it a leak could take: as is, escaped, quoted, each line."""
    forms = {
        token,
        json.dumps(token)[1:-1],
        repr(token)[1:-1],
        urllib.parse.quote(token, safe=""),
        urllib.parse.quote_plus(token),
    }
    forms.update(line for line in token.splitlines() if line)
    return forms


SECRETS = sorted(secret_forms(VULTR_TOKEN) | secret_forms(HOSTINGER_TOKEN) | {"SECRET"})


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (
            f"{secret!r} leaked into {where}: ...{text[max(0, text.find(secret) - 200) :][:400]!r}"
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


def _world(worlds: GuardWorlds) -> GuardWorld:
    return worlds({"vultr": {"token": VULTR_TOKEN}, "hostinger": {"token": HOSTINGER_TOKEN}})


@pytest.mark.parametrize("debug", [(), ("--debug",)], ids=["plain", "debug"])
def test_cli_malformed_token_is_refused_by_name_and_never_shown(
    worlds: GuardWorlds, receiver: Receiver, tmp_path: Path, debug: tuple[str, ...]
) -> None:
    world = _world(worlds)
    assert world.env()["VULTR_API_KEY"] == VULTR_TOKEN  # the runs really carry the malformed token

    runs: list[tuple[str, CliResult]] = []
    snapshot = world.cli(*debug, "snapshot", "chat")
    runs.append(("snapshot chat", snapshot))
    assert snapshot.exit_code == 78, snapshot.output
    assert "VULTR_API_KEY" in snapshot.stderr
    plain = world.cli(*debug, "snapshot", "chat2", "--json")
    runs.append(("snapshot chat2", plain))
    assert plain.exit_code == 0, plain.output  # the plain token works: the check is about the value, not the host
    check = world.cli(
        *debug, "backup-check", "--json", "--webhook", f"{receiver.url}/hook", "--ping-url", f"{receiver.url}/ping"
    )
    runs.append(("backup-check", check))
    assert check.exit_code == 78, check.output
    report = json.loads(check.stdout)
    chat = next(host for host in report["hosts"] if host["host"] == "chat")
    assert "VULTR_API_KEY" in json.dumps(chat)  # the report names the variable...

    for label, result in runs:
        assert_no_secret(f"stdout of {label}", result.stdout)
        assert_no_secret(f"stderr of {label}", result.stderr)
    if debug:
        assert "Traceback" in snapshot.stderr  # --debug really printed a traceback, and it is clean
    assert world.ledger_path.is_file()
    assert_no_secret(str(world.ledger_path), world.ledger_path.read_text(encoding="utf-8"))
    paths = receiver.paths()
    assert "/hook" in paths and "/ping/start" in paths and "/ping/78" in paths, paths
    for request in receiver.requests:
        assert_no_secret(f"body of {request.method} {request.path}", request.body.decode("utf-8", errors="replace"))
