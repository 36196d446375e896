"""stack_upgrade: pinned database tags, dumps verified before the pull, health before prune."""

from __future__ import annotations

import pytest

from opsguard.errors import ConfigError
from opsguard.plan import Plan
from opsguard.playbooks import build_plan
from opsguard.playbooks.common import dumps_problem
from opsguard.playbooks.stack_upgrade import floating_tag_problem, is_database_image, services_problem
from tests.unit.playbook_cases import COMPOSE_CONFIG, TS, check_of, find_step, make_host, step_index


@pytest.fixture
def plan() -> Plan:
    return build_plan("stack_upgrade", make_host("ia", ("integrations",)), {"ts": TS})


@pytest.mark.parametrize("image", ["postgres", "postgres:latest", "postgres:alpine", "library/postgres:latest"])
def test_stack_upgrade_floating_postgres_tag_fails_the_check(plan: Plan, image: str) -> None:
    config = COMPOSE_CONFIG.replace("image: postgres:16\n", f"image: {image}\n")
    reason = check_of(find_step(plan, "database images pinned"))(config)
    assert reason is not None and image in reason


@pytest.mark.parametrize("image", ["postgres:16", "postgres:16.4-alpine", "pgvector/pgvector:pg16", "postgres@sha256:" + "c" * 64])
def test_stack_upgrade_pinned_database_tags_pass(image: str) -> None:
    assert floating_tag_problem(image) is None


def test_stack_upgrade_recognises_database_images() -> None:
    assert is_database_image("postgres:16") and is_database_image("pgvector/pgvector:pg16")
    assert not is_database_image("baptistearno/typebot-viewer:latest") and not is_database_image("")


def test_stack_upgrade_service_facts_split_databases_from_apps(plan: Plan) -> None:
    step = find_step(plan, "database images pinned")
    assert check_of(step)(COMPOSE_CONFIG) is None
    assert step.facts is not None
    facts = step.facts.parse(COMPOSE_CONFIG)
    assert facts["db_services"] == "n8n-db typebot-db"
    assert facts["app_services"] == "n8n typebot-builder typebot-viewer"


def test_stack_upgrade_config_output_is_reduced_to_names_and_images(plan: Plan) -> None:
    command = find_step(plan, "database images pinned").shell_text()
    assert "docker compose config | grep -E" in command and "--format json" not in command


def test_stack_upgrade_dumps_are_verified_before_the_pull(plan: Plan) -> None:
    dump = step_index(plan, "dump the databases")
    verify = step_index(plan, "verify the dumps")
    pull = step_index(plan, "pull the app images")
    up = step_index(plan, "recreate changed services")
    assert dump < verify < pull < up
    assert "docker compose pull {{app_services}}" in plan.steps()[pull].shell_text()
    assert "docker compose up -d --remove-orphans" in plan.steps()[up].shell_text()
    assert "pg_dump -Fc" in plan.steps()[dump].shell_text() and "exec -T" in plan.steps()[dump].shell_text()


def test_stack_upgrade_dump_check_fails_on_an_empty_dump() -> None:
    assert dumps_problem("expected=n8n-db typebot-db\ndump n8n-db 1024 40\ndump typebot-db 2048 77\n") is None
    assert dumps_problem("expected=n8n-db typebot-db\ndump n8n-db 0 0\ndump typebot-db 2048 77\n") == "the dump of n8n-db is empty or missing"
    assert dumps_problem("expected=typebot-db\ndump typebot-db 2048 0\n") == "pg_restore -l lists nothing in the dump of typebot-db"
    assert "typebot-db" in (dumps_problem("expected=typebot-db\n") or "")


def test_stack_upgrade_prune_runs_only_after_health(plan: Plan) -> None:
    prune = step_index(plan, "remove dangling images")
    waits = [index for index, step in enumerate(plan.steps()) if step.name.startswith("wait: ")]
    assert len(waits) == 2 and max(waits) < prune
    assert plan.steps()[prune].shell_text() == "docker image prune -f" and plan.steps()[prune].mutates
    assert plan.steps()[max(waits)].downtime == "ends"


def test_stack_upgrade_health_endpoints_need_200(plan: Plan) -> None:
    n8n = find_step(plan, "wait: n8n ready")
    assert "http://localhost:5678/healthz/readiness" in n8n.shell_text()
    assert check_of(n8n)("200\n") is None and check_of(n8n)("503\n") == "answered HTTP 503"
    typebot = find_step(plan, "wait: Typebot viewer")
    assert "http://localhost:8081/api/health" in typebot.shell_text()


def test_stack_upgrade_services_check_fails_on_exited_or_unhealthy() -> None:
    expected = "expected=n8n typebot-db\n"
    assert services_problem(expected + "n8n running healthy\ntypebot-db running \n") is None
    assert services_problem(expected + "n8n exited\ntypebot-db running\n") == "n8n is exited"
    assert services_problem(expected + "n8n running unhealthy\ntypebot-db running\n") == "n8n is unhealthy"
    assert services_problem(expected + "n8n running\n") == "typebot-db has no container"


def test_stack_upgrade_services_check_reads_compose_json_lines(plan: Plan) -> None:
    step = find_step(plan, "every service running")
    assert "docker compose ps -a --format json" in step.shell_text()
    lines = (
        '{"Name":"stack-n8n-1","Service":"n8n","State":"running","Health":"healthy","ExitCode":0}\n'
        '{"Name":"stack-typebot-db-1","Service":"typebot-db","State":"restarting","Health":"","ExitCode":1}\n'
    )
    assert check_of(step)("expected=n8n typebot-db\n" + lines) == "typebot-db is restarting"
    assert check_of(step)("expected=n8n\n" + lines) is None


def test_stack_upgrade_records_rollback_digests(plan: Plan) -> None:
    step = find_step(plan, "images running now")
    assert step.facts is not None
    facts = step.facts.parse("n8n docker.n8n.io/n8nio/n8n:latest sha256:1111 docker.n8n.io/n8nio/n8n@sha256:bbbb\n")
    assert facts["image_digests"] == "n8n=docker.n8n.io/n8nio/n8n@sha256:bbbb"
    assert any("{{image_digests}}" in line for line in plan.rollback)


def test_stack_upgrade_empty_health_urls_are_a_config_error() -> None:
    from opsguard.errors import ConfigError

    with pytest.raises(ConfigError, match="nothing would prove"):
        build_plan("stack_upgrade", make_host("ia", ("integrations",)), {"ts": TS, "n8n_url": "", "typebot_viewer_url": ""})


def test_stack_upgrade_without_n8n_keeps_typebot_health(plan: Plan) -> None:
    plan = build_plan("stack_upgrade", make_host("ia", ("integrations",)), {"ts": TS, "n8n_url": "", "n8n_service": ""})
    # No n8n: no n8n health wait, no key check; the one check that names n8n guards Typebot's major version too.
    assert [step.name for step in plan.steps() if "n8n" in step.name] == ["no major version jump in the pulled images (n8n, Typebot)"]
    assert find_step(plan, "wait: Typebot").downtime == "ends"


def compose_files_read(plan: Plan, stdout: str) -> str:
    step = find_step(plan, "compose files docker compose reads")
    assert step.facts is not None and not step.mutates
    return step.facts.parse(stdout)["compose_files_used"]


def test_stack_upgrade_records_the_default_compose_file_and_its_override(plan: Plan) -> None:
    """What `docker compose` reads with no -f (the upgrade's up): the first default name, and the override beside it."""
    stdout = "environment_compose_file=\npresent docker-compose.yml\npresent docker-compose.override.yml\n"
    assert compose_files_read(plan, stdout) == "docker-compose.yml docker-compose.override.yml"
    assert compose_files_read(plan, "present docker-compose.yml\npresent compose.yaml\n") == "compose.yaml"


def test_stack_upgrade_records_compose_file_from_the_env_file_or_the_environment(plan: Plan) -> None:
    dotenv = "present docker-compose.yml\nN8N_VERSION=1\nexport COMPOSE_FILE=\"docker-compose.yml:ops/extra.yml\"  \n"
    assert compose_files_read(plan, dotenv) == "docker-compose.yml ops/extra.yml"
    separated = "COMPOSE_PATH_SEPARATOR=,\nCOMPOSE_FILE=a.yml,b.yml # the stack\n"
    assert compose_files_read(plan, separated) == "a.yml b.yml"
    environment = "environment_compose_file=/srv/main.yml\nCOMPOSE_FILE=a.yml\npresent docker-compose.yml\n"
    assert compose_files_read(plan, environment) == "/srv/main.yml"


@pytest.mark.parametrize("stdout", ["", "present docker-compose.override.yml\n", "COMPOSE_FILE=\n", "COMPOSE_FILE=${OTHER}.yml\n",
                                    "COMPOSE_FILE=a b.yml\n"])
def test_stack_upgrade_refuses_when_the_compose_files_read_cannot_be_told(plan: Plan, stdout: str) -> None:
    with pytest.raises(ValueError):
        compose_files_read(plan, stdout)


def test_stack_upgrade_empty_compose_files_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="compose_files"):
        build_plan("stack_upgrade", make_host("ia", ("integrations",)), {"ts": TS, "compose_files": []})
