"""Provider tokens never leave the environment: not in any output, the ledger, the locks, or the hosts; and the
secrets the upgrades copy off the hosts (.env values, n8n's encryption key) stay in the owner-only copies.

Recognisable tokens go through every command that talks to the providers (snapshot, exec, a
failing exec, a dropped exec, a wrong-token run, ledger, discover, backup-check), with and
without --debug (tracebacks and DEBUG logs of requests/urllib3). Then every text the runs printed
and every file opsguard wrote (state dir, remote lock dir, host files) is searched for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli_fixtures import CliResult
from tests.integration.guard_support import UPGRADE, GuardWorld, GuardWorlds
from tests.integration.playbook_support import PlaybookWorld

pytestmark = pytest.mark.integration

VULTR_TOKEN = "tok-SECRET-vultr-7f3a"
HOSTINGER_TOKEN = "tok-SECRET-hostinger-9c1e"
WRONG_TOKEN = "tok-SECRET-wrong-5d2b"
SECRETS = (VULTR_TOKEN, HOSTINGER_TOKEN, WRONG_TOKEN, "SECRET")
TOKENS = {"vultr": {"token": VULTR_TOKEN}, "hostinger": {"token": HOSTINGER_TOKEN}}


def every_command(world: GuardWorld, debug: tuple[str, ...]) -> list[tuple[str, CliResult]]:
    """Given a world and ("--debug",) or (), run every provider-facing command; return (label, result) pairs."""
    world.hosts.set_responses("chat", {"rules": [{"prefix": ["apt-get"], "stderr": "E: broken\n", "exit": 100}]})
    world.hosts.set_responses("ia", {"rules": [{"prefix": ["apt-get"], "drop": True}]})
    runs = [
        ("snapshot chat", world.cli(*debug, "snapshot", "chat", "--json"), 0),
        ("snapshot chat2", world.cli(*debug, "snapshot", "chat2"), 0),
        ("exec chat2", world.cli(*debug, "exec", "chat2", "--yes", "--", *UPGRADE), 0),
        ("failing exec chat", world.cli(*debug, "exec", "chat", "--yes", "--", *UPGRADE), 1),
        ("dropped exec ia", world.cli(*debug, "exec", "ia", "--yes", "--", *UPGRADE), 4),
        ("wrong vultr token", world.cli(*debug, "exec", "chat", "--yes", "--", *UPGRADE, env={"VULTR_API_KEY": WRONG_TOKEN}), 78),
        ("wrong hostinger token", world.cli(*debug, "snapshot", "chat2", env={"HOSTINGER_API_TOKEN": WRONG_TOKEN}), 78),
        ("ledger", world.cli(*debug, "ledger"), 0),
        ("ledger json", world.cli(*debug, "ledger", "--json", "--last", "0"), 0),
        ("discover", world.cli(*debug, "discover"), 0),
        ("discover wrong token", world.cli(*debug, "discover", env={"HOSTINGER_API_TOKEN": WRONG_TOKEN}), 78),
        ("backup-check", world.cli(*debug, "backup-check", "--json"), 0),
    ]  # fmt: skip
    for label, result, expected in runs:
        # The runs must really have gone where they were meant to, or the search below proves little.
        assert result.exit_code == expected, f"{label}: {result.output}"
    return [(label, result) for label, result, _ in runs]


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots if root.exists() for path in sorted(root.rglob("*")) if path.is_file()]


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (
            f"{secret!r} leaked into {where}: ...{text[max(0, text.find(secret) - 200) :][:400]!r}"
        )


@pytest.mark.parametrize("debug", [(), ("--debug",)], ids=["plain", "debug"])
def test_tokens_never_appear_in_output_ledger_locks_or_journals(
    worlds: GuardWorlds, tmp_path: Path, debug: tuple[str, ...]
) -> None:
    api_journal = tmp_path / "api-journal.jsonl"
    world = worlds(TOKENS, journal_path=api_journal)
    assert world.env()["VULTR_API_KEY"] == VULTR_TOKEN  # the runs really carry the recognisable tokens

    results = every_command(world, debug)

    for label, result in results:
        assert_no_secret(f"stdout of {label}", result.stdout)
        assert_no_secret(f"stderr of {label}", result.stderr)
    if debug:
        # --debug really printed tracebacks and request logs, so their absence of tokens means something.
        errors = "".join(result.stderr for _, result in results)
        assert "Traceback" in errors and "/snapshots" in errors

    # Everything opsguard wrote: ledger, local locks, backup-check state, the stale remote lock of
    # the dropped run, and what the hosts recorded.
    assert world.ledger_path.is_file()
    assert (world.state_dir / "locks" / "chat.lock").is_file()
    assert (world.lock_dir("ia") / "owner").is_file()  # left by the dropped run
    written = files_under(world.state_dir, *(world.hosts.host(name).root / "run" for name in ("chat", "chat2", "ia")))
    written += [world.hosts.host(name).journal_path for name in ("chat", "chat2", "ia")]
    for path in written:
        assert_no_secret(str(path), path.read_text(encoding="utf-8", errors="replace"))
    # The simulator's journal records requests without their headers.
    journal_text = api_journal.read_text(encoding="utf-8")
    assert '"method": "POST"' in journal_text
    assert_no_secret(str(api_journal), journal_text)


# -- what the upgrades copy off the hosts: .env secrets and n8n's encryption key ---------------------------

ENV_SECRET = "jwt-SECRET-copied-3b7e"
N8N_KEY = "n8nkey-SECRET-copied-8c2a"


@pytest.mark.parametrize("debug", [(), ("--debug",)], ids=["plain", "debug"])
def test_copied_secrets_never_appear_in_output_ledger_or_manifest(world: PlaybookWorld, debug: tuple[str, ...]) -> None:
    from opsguard.sandbox.hosts import N8N_CONFIG

    env = world.app_dir("chat") / "backend" / ".env"
    env.write_text(env.read_text().replace("JWT_SECRET=sandbox-not-a-secret", f"JWT_SECRET={ENV_SECRET}"))
    world.hosts.host("ia").path(N8N_CONFIG).write_text('{"encryptionKey": "' + N8N_KEY + '"}')
    package = str(world.release())
    runs = [
        ("upgrade chat --json", world.cli(*debug, "upgrade", "chat", "--package", package, "--yes", "--json"), 0),
        ("upgrade ia --json", world.cli(*debug, "upgrade", "ia", "--yes", "--json"), 0),
        ("plan chat rollback --json", world.cli(*debug, "plan", "chat", "rollback", "--json"), 0),
        ("ledger --json", world.cli(*debug, "ledger", "--json", "--last", "0"), 0),
    ]
    # A copy that fails its checksum: its error message must not carry what was copied either.
    world.hosts.set_responses("ia", {"rules": [{"prefix": ["docker", "compose", "exec"], "regex": "base64",
                                                "stdout": "bm90IHRoZSBrZXk=\n"}]})
    runs.append(("corrupted copy ia", world.cli(*debug, "upgrade", "ia", "--yes"), 1))
    for label, result, expected in runs:
        assert result.exit_code == expected, f"{label}: {result.output}"

    copies = world.state_dir / "copies"
    # The copies hold the secrets (that is their purpose), in owner-only files; nothing else opsguard wrote does.
    assert ENV_SECRET in (copies / "chat").joinpath(world.ledger("chat", "run-ended")[0]["run_id"], "env", "backend", ".env").read_text()
    written = [path for path in files_under(world.state_dir) if copies not in path.parents or path.name == "manifest.json"]
    assert any(path.name == "manifest.json" for path in written) and any(path.name == "ledger.jsonl" for path in written)
    for label, result, _ in runs:
        for secret in (ENV_SECRET, N8N_KEY):
            assert secret not in result.stdout + result.stderr, f"{secret} leaked into the output of {label}"
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in (ENV_SECRET, N8N_KEY):
            assert secret not in text, f"{secret} leaked into {path}"
