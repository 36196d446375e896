"""Malformed inventories and the exact problem lines each must produce.

Shared by tests/unit/test_inventory.py (load_inventory in-process) and
tests/integration/test_cli_inventory.py (the real CLI, `opsguard -i PATH validate`).
Each expected line holds ``{path}``, replaced by the inventory path the test passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

MISSING = object()  # the inventory path does not exist
DIRECTORY = object()  # the inventory path is a directory

SETTING_KEYS = "identity_file, known_hosts, receipt_ttl, remote_lock, remote_state, snapshot_poll, snapshot_timeout, state_dir, user"
HOST_KEYS = "address, backups, instance, port, provider, remote_lock, remote_state, roles, user, vars"
NOT_A_DURATION = 'is not a duration (use a number and one of ms, s, m, h, d, e.g. "15s")'
VULTR_UUID = "cb676a46-66fd-4dfb-b839-443f2e6c0b60"

CHAT = """
[hosts.chat]
address = "chat.example.test"
provider = "vultr"
roles = ["zpro"]
"""
CHAT2 = """
[hosts.chat2]
address = "chat2.example.test"
provider = "hostinger"
roles = ["zpro"]
"""


def inventory_text(*, top: str = "", settings: str = "", chat: str = "", chat2: str = "") -> str:
    """Given extra lines for the top level, [settings], [hosts.chat] and [hosts.chat2], return TOML text."""
    return f"{top}\n[settings]\n{settings}\n{CHAT}{chat}\n{CHAT2}{chat2}"


VALID = inventory_text()


@dataclass(frozen=True)
class Case:
    """One malformed inventory: its content (text, bytes, MISSING or DIRECTORY) and the exact lines."""

    id: str
    content: object
    expected: tuple[str, ...]

    def write(self, directory: Path) -> Path:
        """Given a directory, put this case's inventory in it and return the path to pass to -i."""
        path = directory / "inventory.toml"
        if self.content is DIRECTORY:
            path.mkdir()
        elif isinstance(self.content, bytes):
            path.write_bytes(self.content)
        elif isinstance(self.content, str):
            path.write_text(self.content, encoding="utf-8")
        return path

    def lines(self, path: Path | str) -> list[str]:
        """Given the path the inventory was loaded from, return the exact problem lines expected."""
        return [line.format(path=path) for line in self.expected]


MALFORMED = [
    Case(
        "unknown-top-key",
        inventory_text(top='secrets = "hunter2"'),
        ("{path}: secrets: unknown key (expected: settings, hosts)",),
    ),
    Case(
        "unknown-settings-key-typo",
        inventory_text(settings='snapshot_timout = "5m"'),
        (f"{{path}}: settings.snapshot_timout: unknown key (expected one of: {SETTING_KEYS})",),
    ),
    Case(
        "unknown-host-key",
        inventory_text(chat2="instnace = 123456"),
        (f"{{path}}: hosts.chat2.instnace: unknown key (expected one of: {HOST_KEYS})",),
    ),
    Case(
        "unknown-backups-key",
        inventory_text(chat='[hosts.chat.backups]\nschedule = "daily"\nmax_age = "26h"\nkeep = 7'),
        ("{path}: hosts.chat.backups.keep: unknown key (expected one of: max_age, schedule)",),
    ),
    Case(
        "bad-provider",
        inventory_text().replace('provider = "vultr"', 'provider = "vulture"'),
        ("{path}: hosts.chat.provider: 'vulture' is not one of: vultr, hostinger",),
    ),
    Case(
        "missing-provider",
        inventory_text().replace('provider = "vultr"\n', ""),
        ("{path}: hosts.chat.provider: is required (one of: vultr, hostinger)",),
    ),
    Case(
        "missing-address",
        inventory_text().replace('address = "chat.example.test"\n', ""),
        ("{path}: hosts.chat.address: is required",),
    ),
    Case(
        "address-with-newline",
        inventory_text().replace('"chat.example.test"', '"chat.example.test\\n"'),
        ("{path}: hosts.chat.address: 'chat.example.test\\n' is not a DNS name or IP address",),
    ),
    Case(
        "bad-duration-in-settings",
        inventory_text(settings='snapshot_poll = "15 seconds"'),
        (f"{{path}}: settings.snapshot_poll: '15 seconds' {NOT_A_DURATION}",),
    ),
    Case(
        "duration-without-unit",
        inventory_text(settings='snapshot_timeout = "60"'),
        (f"{{path}}: settings.snapshot_timeout: '60' {NOT_A_DURATION}",),
    ),
    Case(
        "zero-duration",
        inventory_text(settings='receipt_ttl = "0s"'),
        ("{path}: settings.receipt_ttl: must be greater than zero",),
    ),
    Case(
        "negative-duration",
        inventory_text(settings='snapshot_timeout = "-5m"'),
        (f"{{path}}: settings.snapshot_timeout: '-5m' {NOT_A_DURATION}",),
    ),
    Case(
        "duration-not-a-string",
        inventory_text(settings="snapshot_poll = 15"),
        ("{path}: settings.snapshot_poll: must be a non-empty string",),
    ),
    Case(
        "bad-max-age",
        inventory_text(chat='[hosts.chat.backups]\nschedule = "daily"\nmax_age = "26 hours"'),
        (f"{{path}}: hosts.chat.backups.max_age: '26 hours' {NOT_A_DURATION}",),
    ),
    Case(
        "max-age-integer",
        inventory_text(chat='[hosts.chat.backups]\nschedule = "daily"\nmax_age = 26'),
        ('{path}: hosts.chat.backups.max_age: expected a duration string such as "15s", got 26',),
    ),
    Case(
        "missing-max-age",
        inventory_text(chat='[hosts.chat.backups]\nschedule = "daily"'),
        ('{path}: hosts.chat.backups.max_age: is required (e.g. "26h")',),
    ),
    Case(
        "bad-schedule",
        inventory_text(chat='[hosts.chat.backups]\nschedule = "monthly"\nmax_age = "26h"'),
        ("{path}: hosts.chat.backups.schedule: 'monthly' is not one of: daily, weekly",),
    ),
    Case(
        "missing-schedule",
        inventory_text(chat='[hosts.chat.backups]\nmax_age = "26h"'),
        ("{path}: hosts.chat.backups.schedule: is required (one of: daily, weekly)",),
    ),
    Case(
        "vultr-instance-not-uuid",
        inventory_text(chat='instance = "12345"'),
        ("{path}: hosts.chat.instance: '12345' is not a Vultr instance id (a UUID string)",),
    ),
    Case(
        "vultr-instance-misplaced-hyphens",
        inventory_text(chat='instance = "cb676a4666fd-4dfb-b839-443f-2e6c0b60"'),
        (
            "{path}: hosts.chat.instance: 'cb676a4666fd-4dfb-b839-443f-2e6c0b60' is not a Vultr instance id (a UUID string)",
        ),
    ),
    Case(
        "vultr-instance-integer",
        inventory_text(chat="instance = 12345"),
        ("{path}: hosts.chat.instance: 12345 is not a Vultr instance id (a UUID string)",),
    ),
    Case(
        "hostinger-instance-quoted",
        inventory_text(chat2='instance = "123456"'),
        ("{path}: hosts.chat2.instance: '123456' is not a Hostinger VM id (a positive integer, unquoted)",),
    ),
    Case(
        "hostinger-instance-bool",
        inventory_text(chat2="instance = true"),
        ("{path}: hosts.chat2.instance: True is not a Hostinger VM id (a positive integer, unquoted)",),
    ),
    Case(
        "hostinger-instance-zero",
        inventory_text(chat2="instance = 0"),
        ("{path}: hosts.chat2.instance: 0 is not a Hostinger VM id (a positive integer, unquoted)",),
    ),
    Case(
        "port-out-of-range",
        inventory_text(chat="port = 70000"),
        ("{path}: hosts.chat.port: 70000 is not a port number (1-65535)",),
    ),
    Case(
        "port-quoted",
        inventory_text(chat='port = "22"'),
        ("{path}: hosts.chat.port: '22' is not a port number (1-65535)",),
    ),
    Case(
        "bad-role",
        inventory_text().replace('roles = ["zpro"]', 'roles = ["web"]', 1),
        ("{path}: hosts.chat.roles: 'web' is not one of: zpro, integrations",),
    ),
    Case(
        "roles-not-a-list",
        inventory_text().replace('roles = ["zpro"]', 'roles = "zpro"', 1),
        ("{path}: hosts.chat.roles: must be a list of strings",),
    ),
    Case(
        "relative-remote-lock",
        inventory_text(chat='remote_lock = "run/lock"'),
        ("{path}: hosts.chat.remote_lock: must be an absolute path",),
    ),
    Case(
        "upper-case-host-name",
        inventory_text(top='[hosts.Chat3]\naddress = "chat3.example.test"\nprovider = "vultr"'),
        ("{path}: hosts.Chat3: host name must be lower-case letters, digits, '-' or '_'",),
    ),
    Case(
        "nested-table-in-vars",
        inventory_text(chat='[hosts.chat.vars.deploy]\nuser = "deployzdg"'),
        ("{path}: hosts.chat.vars.deploy: must be a string, number, boolean or list of those",),
    ),
    Case(
        "duplicate-address-and-port",
        inventory_text().replace('"chat2.example.test"', '"CHAT.example.test"'),
        ("{path}: hosts.chat2.address: CHAT.example.test:22 is also hosts.chat (two hosts, one machine)",),
    ),
    Case(
        "no-hosts",
        '[settings]\nuser = "root"\n',
        ("{path}: hosts: no hosts defined (add a [hosts.NAME] table)",),
    ),
    Case(
        "toml-syntax-error",
        '[settings]\nuser = "root"\n\n[hosts.chat]\naddress = "chat.example.test\nprovider = "vultr"\n',
        ("{path}: TOML syntax error: Illegal character '\\n' (at line 5, column 29)",),
    ),
    Case(
        "toml-duplicate-key",
        '[hosts.chat]\naddress = "a.example.test"\naddress = "b.example.test"\n',
        ("{path}: TOML syntax error: Cannot overwrite a value (at line 3, column 27)",),
    ),
    Case("missing-file", MISSING, ("{path}: file not found (use -i PATH or set OPSGUARD_INVENTORY)",)),
    Case("empty-file", "", ("{path}: is empty (expected [hosts.NAME] tables)",)),
    Case("blank-file", "\n   \n\t\n", ("{path}: is empty (expected [hosts.NAME] tables)",)),
    Case("directory", DIRECTORY, ("{path}: is a directory, not an inventory file",)),
    Case(
        # Latin-1 "ç" and "ã", as an editor set to ISO-8859-1 would save a Portuguese comment.
        "non-utf8-bytes",
        b'[settings]\nuser = "root"\n# Configura\xe7\xe3o dos servidores\n',
        ("{path}: line 3: not valid UTF-8 (byte 0xe7)",),
    ),
    Case(
        "several-problems-at-once",
        inventory_text(
            top='secrets = "hunter2"',
            settings='snapshot_timout = "5m"\nsnapshot_poll = "0s"\nuser = ""',
            chat='port = 0\ninstance = "not-a-uuid"',
            chat2='instance = "123456"\n[hosts.chat2.backups]\nschedule = "hourly"\nmax_age = "1 week"',
        ).replace('provider = "vultr"', 'provider = "vulture"'),
        (
            "{path}: secrets: unknown key (expected: settings, hosts)",
            f"{{path}}: settings.snapshot_timout: unknown key (expected one of: {SETTING_KEYS})",
            "{path}: settings.user: must be a non-empty string",
            "{path}: settings.snapshot_poll: must be greater than zero",
            "{path}: hosts.chat.port: 0 is not a port number (1-65535)",
            "{path}: hosts.chat.provider: 'vulture' is not one of: vultr, hostinger",
            "{path}: hosts.chat2.instance: '123456' is not a Hostinger VM id (a positive integer, unquoted)",
            "{path}: hosts.chat2.backups.schedule: 'hourly' is not one of: daily, weekly",
            f"{{path}}: hosts.chat2.backups.max_age: '1 week' {NOT_A_DURATION}",
        ),
    ),
]

MALFORMED_PARAMS = [pytest.param(case, id=case.id) for case in MALFORMED]
