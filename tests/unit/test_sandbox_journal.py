"""The classifier that decides which recorded host commands changed the host."""

from __future__ import annotations

import pytest

from opsguard.sandbox.journal import is_mutating_call, mutating_calls


@pytest.mark.parametrize(
    "argv",
    [
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "upgrade"],
        ["pm2", "stop", "zpro-backend", "zpro-frontend"],
        ["npm", "run", "build"],
        ["npx", "sequelize", "db:migrate"],
        ["docker", "compose", "up", "-d", "--remove-orphans"],
        ["docker", "image", "prune", "-f"],
        ["systemctl", "reload", "nginx"],
        ["needrestart", "-r", "a"],
        ["reboot"],
        ["ufw", "reset"],
    ],
)
def test_journal_classifier_flags_changing_commands(argv: list[str]) -> None:
    assert is_mutating_call(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["apt-get", "-s", "upgrade"],
        ["pm2", "jlist"],
        ["npx", "sequelize", "db:migrate:status"],
        ["docker", "ps", "--format", "{{.Names}}"],
        ["docker", "compose", "config", "-q"],
        ["systemctl", "is-system-running"],
        ["needrestart", "-r", "l", "-b"],
        ["df", "-P", "/"],
        ["sudo", "-n", "-iu", "deployzdg", "--", "sh", "-c", "pm2 stop all"],
    ],
)
def test_journal_classifier_passes_read_only_commands(argv: list[str]) -> None:
    assert not is_mutating_call(argv)


def test_journal_mutating_calls_filters_records() -> None:
    journal = [{"argv": ["df", "-P"]}, {"argv": ["pm2", "restart", "zpro-backend"]}, {"other": 1}]
    assert mutating_calls(journal) == [["pm2", "restart", "zpro-backend"]]
