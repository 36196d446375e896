"""The oracle that decides which recorded host commands may have changed the host (unknown = change)."""

from __future__ import annotations

import pytest

from opsguard.sandbox.journal import changing_sessions, is_mutating_call, mutating_calls


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
        # Not known to be read-only: counted as changes.
        ["npx", "sequelize", "db:migrate:status"],  # creates SequelizeMeta, runs the app's config
        ["nginx", "-t"],  # creates missing log files
        ["pm2", "jlist"],  # starts a daemon when none runs
        ["some-tool-nobody-knows", "--status"],
        ["mv", "/etc/a", "/etc/b"],
    ],
)
def test_journal_classifier_flags_changing_commands(argv: list[str]) -> None:
    assert is_mutating_call(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["apt-get", "-s", "upgrade"],
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


def test_journal_pm2_listing_is_read_only_only_when_its_daemon_already_ran() -> None:
    journal = [{"argv": ["pm2", "jlist"], "pm2_daemon": True}, {"argv": ["pm2", "jlist"], "pm2_daemon": False}]
    assert mutating_calls(journal) == [["pm2", "jlist"]]


def test_journal_changing_sessions_sees_every_command_line_and_bookkeeping_only_in_our_dirs() -> None:
    from opsguard.sandbox.hosts import SFTP_SERVER, SessionRecord

    lock, state = "/r/run/lock/opsguard", "/r/var/lib/opsguard"
    sessions = [
        SessionRecord(1.0, 1, "df -P / && cat /etc/os-release"),
        SessionRecord(2.0, 2, f"umask 077; mkdir -p -- /r/run/lock && if mkdir -- {lock} 2>/dev/null; then echo ok; fi"),
        SessionRecord(3.0, 3, f"printf '%s' x > {state}/last-change.json.tmp && mv -f -- {state}/last-change.json.tmp {state}/last-change.json"),
        SessionRecord(4.0, 4, "tar -C /r/home -cf /r/backup.tar ."),
        SessionRecord(5.0, 5, "echo data > /r/etc/motd"),
        SessionRecord(6.0, 6, SFTP_SERVER),
        SessionRecord(7.0, 7, f"mkdir -p -- {lock}/../../../etc/cron.d"),
    ]
    assert changing_sessions(sessions, writable=(lock, state)) == [
        "tar -C /r/home -cf /r/backup.tar .", "echo data > /r/etc/motd", SFTP_SERVER, f"mkdir -p -- {lock}/../../../etc/cron.d"]
    assert len(changing_sessions(sessions)) == 6  # without naming opsguard's own dirs, its bookkeeping counts too


def test_journal_read_behind_the_step_pid_file_is_a_read_only_inside_opsguards_lock_dir() -> None:
    """A read in a change session carries the transport's pid-file prefix (its process group can be stopped):
    the oracle lets that exact prefix through only when the pid file is in opsguard's own lock dir."""
    from opsguard.sandbox.hosts import SessionRecord
    from opsguard.transport import render_command

    lock, state = "/r/run/lock/opsguard", "/r/var/lib/opsguard"
    read = render_command("base64 -w0 -- /srv/app/.env", pid_file=f"{lock}/chat/step.pid")
    write = render_command("rm -rf /srv/app", pid_file=f"{lock}/chat/step.pid")
    elsewhere = render_command("base64 -w0 -- /srv/app/.env", pid_file="/etc/cron.d/step.pid")
    escaping = render_command("base64 -w0 -- /srv/app/.env", pid_file=f"{lock}/../../../etc/step.pid")
    changed = changing_sessions([SessionRecord(float(n), n, text) for n, text in enumerate((read, write, elsewhere, escaping))],
                                writable=(lock, state))
    assert changed == [write, elsewhere, escaping]
