"""opsguard.hostfacts: pure parsers of host command output, fed realistic samples."""

from __future__ import annotations

import json

import pytest

from opsguard.hostfacts import (
    dotenv_value,
    parse_apt_simulation,
    parse_compose_ps,
    parse_compose_services,
    parse_container_images,
    parse_df,
    parse_dotenv,
    parse_dotenv_raw,
    parse_free,
    parse_key_values,
    parse_migration_listing,
    parse_newest_file,
    parse_pm2_jlist,
    parse_sha256sum,
    parse_systemctl_failed,
    split_image_reference,
    url_problem,
)
from tests.unit.playbook_cases import APT_SIMULATION, COMPOSE_CONFIG, DF_OK, FREE_8GB, MIGRATION_LISTING, pm2_jlist


def test_hostfacts_pm2_jlist_reads_names_status_and_restarts() -> None:
    text = pm2_jlist({"zpro-backend": ("online", 7), "zpro-frontend": ("stopped", 0)})
    processes = parse_pm2_jlist(text)
    assert [(p.name, p.status, p.restarts) for p in processes] == [("zpro-backend", "online", 7), ("zpro-frontend", "stopped", 0)]


def test_hostfacts_pm2_jlist_skips_daemon_messages_before_the_json() -> None:
    preface = "[PM2] Spawning PM2 daemon with pm2_home=/home/deployzdg/.pm2\n[PM2] PM2 Successfully daemonized\n"
    processes = parse_pm2_jlist(pm2_jlist({"zpro-backend": ("online", 0)}, preface=preface))
    assert [p.name for p in processes] == ["zpro-backend"]


def test_hostfacts_pm2_jlist_reads_a_minimal_process_list() -> None:
    filtered = json.dumps([{"name": "zpro-backend", "pm2_env": {"status": "errored", "restart_time": 15}}])
    assert parse_pm2_jlist(filtered)[0].status == "errored"
    assert parse_pm2_jlist(filtered)[0].restarts == 15


def test_hostfacts_pm2_jlist_empty_list_when_nothing_runs() -> None:
    assert parse_pm2_jlist("[]\n") == []


def test_hostfacts_pm2_jlist_raises_without_json() -> None:
    with pytest.raises(ValueError, match="pm2"):
        parse_pm2_jlist("[PM2][ERROR] Permission denied\n")


def test_hostfacts_df_reads_rows_in_bytes_with_mounts() -> None:
    rows = parse_df(DF_OK)
    assert [row.mount for row in rows] == ["/", "/", "/var"]
    assert rows[2].used_percent == 20
    assert rows[2].available == 16384000 * 1024


def test_hostfacts_df_reads_byte_blocks_and_mounts_with_spaces() -> None:
    text = "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 900 100 90% /mnt/my disk\n"
    row = parse_df(text)[0]
    assert (row.size, row.available, row.used_percent, row.mount) == (1000, 100, 90, "/mnt/my disk")


def test_hostfacts_df_raises_without_header() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_df("df: /boot: No such file or directory\n")


def test_hostfacts_free_reads_ram_and_swap() -> None:
    memory = parse_free(FREE_8GB)
    assert memory.ram_total == 8323600384
    assert memory.swap_total == 2147479552
    assert memory.ram_available == 4806066176


def test_hostfacts_free_raises_without_mem_row() -> None:
    with pytest.raises(ValueError, match="Mem"):
        parse_free("free: command not found\n")


def test_hostfacts_dotenv_handles_quotes_comments_and_export() -> None:
    text = (
        "# Zpro backend\n"
        "export PORT=3000\n"
        "POSTGRES_USER='zpro'\n"
        'JWT_SECRET="a#b c"\n'
        "DB_PORT=5432 # mapped port\n"
        "   # indented comment\n"
        "EMPTY=\n"
        "not a line\n"
        "PORT=3001\n"
    )
    values = parse_dotenv(text)
    assert values == {"PORT": "3001", "POSTGRES_USER": "zpro", "JWT_SECRET": "a#b c", "DB_PORT": "5432", "EMPTY": ""}


def test_hostfacts_dotenv_raw_keeps_trailing_semicolon_and_carriage_return() -> None:
    raw = parse_dotenv_raw("BACKEND_URL=https://api.example.test;\r\nFRONTEND_URL=https://x.test\r\n")
    assert raw["BACKEND_URL"] == "https://api.example.test;\r"
    assert dotenv_value('"https://x.test"') == "https://x.test"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.example.test", None),
        ('"https://api.example.test"', None),
        ("https://api.example.test # prod", None),
        ("https://api.example.test;", "ends with ';'"),
        ('"https://api.example.test;"', "ends with ';'"),
        ('https://api.example.test"', "contains a quote"),
        ("https://api.example.test ", "ends with a space"),
        ('"https://api.example.test "', "contains a space"),
        ("https://api.example.test\r", "carriage return"),
        ("api.example.test", "not an http"),
        ("", "is empty"),
    ],
)
def test_hostfacts_url_problem_flags_what_breaks_the_backend(raw: str, expected: str | None) -> None:
    problem = url_problem(raw)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_hostfacts_apt_simulation_lists_inst_lines_only() -> None:
    changes = parse_apt_simulation(APT_SIMULATION)
    assert [change.package for change in changes] == [
        "libssl3", "openssl", "containerd.io", "docker-ce", "nginx-common", "nginx", "nodejs",
    ]
    docker = changes[3]
    assert (docker.old_version, docker.new_version) == ("5:25.0.3-1~ubuntu.22.04~jammy", "5:27.3.1-1~ubuntu.22.04~jammy")


def test_hostfacts_apt_simulation_reads_new_package_without_old_version() -> None:
    changes = parse_apt_simulation("Inst linux-image-6.8.0-49-generic (6.8.0-49.49 Ubuntu:24.04/noble-updates [amd64])\n")
    assert changes[0].package == "linux-image-6.8.0-49-generic"
    assert changes[0].old_version is None


def test_hostfacts_systemctl_failed_reads_unit_names() -> None:
    text = "● certbot.service loaded failed failed Certbot\nsnapd.seeded.service loaded failed failed Wait\n"
    assert parse_systemctl_failed(text) == ["certbot.service", "snapd.seeded.service"]


def test_hostfacts_compose_services_from_filtered_yaml() -> None:
    services = parse_compose_services(COMPOSE_CONFIG)
    assert services["typebot-db"] == "postgres:16"
    assert services["n8n"] == "docker.n8n.io/n8nio/n8n:latest"
    assert "default" not in services and "db-data" not in services


def test_hostfacts_compose_services_from_json() -> None:
    text = json.dumps({"name": "stack", "services": {"db": {"image": "postgres"}, "app": {"build": {"context": "."}}}})
    assert parse_compose_services(text) == {"db": "postgres", "app": ""}


def test_hostfacts_compose_services_raises_when_none() -> None:
    with pytest.raises(ValueError, match="no services"):
        parse_compose_services("name: stack\nnetworks:\n  default:\n")


@pytest.mark.parametrize(
    ("reference", "repository", "tag", "digest"),
    [
        ("postgres", "postgres", None, None),
        ("postgres:16-alpine", "postgres", "16-alpine", None),
        ("localhost:5000/org/app", "localhost:5000/org/app", None, None),
        ("localhost:5000/org/app:2.1", "localhost:5000/org/app", "2.1", None),
        ("n8nio/n8n@sha256:" + "a" * 64, "n8nio/n8n", None, "sha256:" + "a" * 64),
    ],
)
def test_hostfacts_split_image_reference_parts(reference: str, repository: str, tag: str | None, digest: str | None) -> None:
    image = split_image_reference(reference)
    assert (image.repository, image.tag, image.digest) == (repository, tag, digest)


def test_hostfacts_container_images_pick_the_matching_repo_digest() -> None:
    text = (
        "n8n docker.n8n.io/n8nio/n8n:latest sha256:1111 n8nio/n8n@sha256:aaaa,docker.n8n.io/n8nio/n8n@sha256:bbbb\n"
        "typebot-db postgres:16 sha256:2222 -\n"
    )
    images = parse_container_images(text)
    assert images[0].rollback_reference() == "docker.n8n.io/n8nio/n8n@sha256:bbbb"
    assert images[1].rollback_reference() == "sha256:2222"


def test_hostfacts_compose_ps_reads_template_lines_and_json_lines() -> None:
    lines = parse_compose_ps("n8n running healthy\ntypebot-db exited\n")
    assert [(c.service, c.state, c.health) for c in lines] == [("n8n", "running", "healthy"), ("typebot-db", "exited", "")]
    json_lines = '{"Service":"n8n","State":"running","Health":"starting"}\n{"Service":"db","State":"running","Health":""}\n'
    assert [c.health for c in parse_compose_ps(json_lines)] == ["starting", ""]


def test_hostfacts_migration_listing_marks_files_missing_from_sequelizemeta_down() -> None:
    migrations = parse_migration_listing(MIGRATION_LISTING + "20250101000000-new-table.js\nREADME.md\n")
    assert [m.state for m in migrations] == ["up", "up", "up", "down"]
    assert migrations[-1].name == "20250101000000-new-table.js"


def test_hostfacts_migration_listing_raises_without_both_parts() -> None:
    with pytest.raises(ValueError, match="SequelizeMeta"):
        parse_migration_listing('ERROR:  relation "SequelizeMeta" does not exist\n')
    with pytest.raises(ValueError, match="no migration files"):
        parse_migration_listing("--- applied\n--- files\n")


def test_hostfacts_sha256sum_reads_digest() -> None:
    digest = "ab" * 32
    assert parse_sha256sum(f"{digest.upper()}  /var/backups/opsguard/x/package.zip\n") == digest
    with pytest.raises(ValueError):
        parse_sha256sum("sha256sum: package.zip: No such file or directory\n")


def test_hostfacts_newest_file_reads_line_or_none() -> None:
    newest = parse_newest_file("1735689600.5 1048576 /var/backups/opsguard/2025/database dump.dump")
    assert newest is not None and newest.path.endswith("database dump.dump") and newest.size == 1048576
    assert parse_newest_file("") is None


def test_hostfacts_key_values_ignore_other_lines() -> None:
    assert parse_key_values("size=10\nnoise line\n entries=3 \n") == {"size": "10", "entries": "3"}
