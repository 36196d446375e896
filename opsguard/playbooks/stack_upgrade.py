"""Upgrade of the integrations stack (Typebot, n8n, AI flows) under docker compose.

What it does: checks the compose project, records the image each service runs now (the rollback
target, by registry digest), refuses a database image on a floating tag, dumps every Postgres service
and verifies the dumps, then pulls the APP services' images and runs `docker compose up -d
--remove-orphans`. It waits for n8n's readiness and Typebot's health before removing dangling images.

Why it is safe: the database images are never pulled (they change only when an operator changes their
pinned tag: a floating `postgres` tag jumping a major version cannot read the old data files); the
dumps are verified with `pg_restore -l` before anything is pulled; old images are pruned only after the
new stack answers healthy; the recorded digests let an operator pin every service back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from opsguard.errors import ConfigError
from opsguard.hostfacts import (
    parse_compose_ps,
    parse_compose_services,
    parse_container_images,
    parse_key_values,
    split_image_reference,
)
from opsguard.inventory import Host
from opsguard.plan import Check, Facts, Plan, Poll, Step
from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.common import (
    disk_step,
    dump_verification_lines,
    dumps_problem,
    guarded,
    http_status_check,
    http_status_command,
    number_param,
    path_param,
    paths_param,
    quote,
    timestamp_param,
    word_list,
)

KIND: Final = "change"

VARS: dict[str, Any] = {
    "compose_dir": "/opt/stack",  # holds the compose file of Typebot, n8n and their databases
    "backup_dir": "/var/backups/opsguard",  # a <ts>/ directory per run with one dump per database service
    "disk_paths": ["/", "/var"],
    "disk_limit_percent": 90,
    "n8n_url": "http://localhost:5678",  # "" when the host runs no n8n
    "typebot_viewer_url": "http://localhost:8081",  # "" when the host runs no Typebot
    "health_wait": 180.0,  # seconds for the new containers to answer healthy
    "poll_every": 5.0,
    "pull_timeout": 1800.0,
    "dump_timeout": 3600.0,
}

OPTIONS: dict[str, Any] = {}

# Images whose name says "this is PostgreSQL": their data directory is tied to the major version.
DATABASE_IMAGES = ("postgres", "pgvector", "postgis", "timescaledb")


def is_database_image(reference: str) -> bool:
    """Given an image reference, return whether it is a PostgreSQL image (postgres, pgvector, postgis...)."""
    if not reference:
        return False
    name = split_image_reference(reference).name
    return any(name == known or name.startswith(known + "-") for known in DATABASE_IMAGES)


def floating_tag_problem(reference: str) -> str | None:
    """Given a database image reference, return None if it is pinned to a version or digest, else why not.

    ``postgres``, ``postgres:latest`` and ``postgres:alpine`` float across major versions; ``postgres:16``,
    ``postgres:16.4-alpine``, ``pgvector/pgvector:pg16`` and ``postgres@sha256:...`` do not.
    """
    image = split_image_reference(reference)
    if image.digest:
        return None
    if image.tag is None:
        return f"{reference} has no tag (means :latest, which jumps major versions)"
    if image.tag == "latest" or not any(character.isdigit() for character in image.tag):
        return f"{reference} uses the floating tag :{image.tag} (pin a major version, e.g. :16)"
    return None


def plan(host: Host, params: Mapping[str, Any]) -> Plan:
    """Given an integrations host and its params (VARS + ts), return the stack upgrade plan; raise ConfigError on a bad param."""
    compose_dir = path_param(params, "compose_dir")
    backup_dir = path_param(params, "backup_dir")
    ts = timestamp_param(params)
    run_backup = f"{backup_dir}/{ts}"
    every = number_param(params, "poll_every", minimum=0.01)
    health_wait = number_param(params, "health_wait", minimum=0)
    in_dir = f"cd {quote(compose_dir)} && "
    health = _health_steps(params, every, health_wait)
    if not health:
        raise ConfigError("n8n_url and typebot_viewer_url are both empty: nothing would prove the stack healthy")

    preflight = (
        Step(name="compose file valid", command=in_dir + "docker compose config -q", mutates=False, timeout=60),
        Step(
            name="services, and database images pinned",
            # Only top-level keys, service names and image lines leave the host: no environment values.
            command=in_dir + "docker compose config | grep -E '^[^[:space:]#]|^  [^[:space:]#]|^    image:'",
            mutates=False,
            timeout=60,
            check=Check("every database image pinned to a version; at least one app service to pull", guarded(_pinned_problem)),
            facts=Facts(("services", "db_services", "app_services"), _service_facts),
            why="a floating postgres tag can jump a major version and then cannot read the old data",
        ),
        Step(
            name="images running now (rollback target)",
            command=in_dir + _CURRENT_IMAGES,
            mutates=False,
            timeout=120,
            facts=Facts(("image_digests",), _digest_facts),
            why="registry digests: the exact images to pin back to",
        ),
        disk_step([*paths_param(params, "disk_paths"), compose_dir], number_param(params, "disk_limit_percent", minimum=1),
                  also=[backup_dir]),
        Step(
            name="databases ready",
            command=in_dir + 'for service in {{db_services}}; do docker compose exec -T -- "$service" pg_isready || exit 1; done',
            mutates=False,
            timeout=120,
        ),
    )
    change = (
        Step(
            name="create the backup directory for this run",
            command=f"install -d -m 0700 {quote(run_backup)}",
            mutates=True,
            timeout=30,
        ),
        Step(
            name="dump the databases (pg_dump -Fc)",
            command="\n".join(
                [
                    f"cd {quote(compose_dir)} || exit 1",
                    "for service in {{db_services}}; do",
                    "  docker compose exec -T \"$service\" sh -c "
                    "'pg_dump -Fc -U \"${POSTGRES_USER:-postgres}\" \"${POSTGRES_DB:-${POSTGRES_USER:-postgres}}\"' "
                    f"> {quote(run_backup)}/\"$service.dump\" || exit 1",
                    "done",
                ]
            ),
            mutates=True,
            timeout=number_param(params, "dump_timeout", minimum=1),
            why="user and database from each container's own environment: no password in the command",
        ),
        Step(
            name="verify the dumps (gates the pull)",
            command="\n".join(
                [
                    f"cd {quote(compose_dir)} || exit 1",
                    'echo "expected={{db_services}}"',
                    "for service in {{db_services}}; do",
                    f'  file={quote(run_backup)}/"$service.dump"',
                    *(f"  {line}" for line in dump_verification_lines('"$service"', '"$file"', 'docker compose exec -T -- "$service"')),
                    "done",
                ]
            ),
            mutates=False,
            timeout=600,
            check=Check("every database dump non-empty and listed by pg_restore -l", guarded(dumps_problem)),
        ),
        Step(
            name="pull the app images",
            command=in_dir + "docker compose pull {{app_services}}",
            mutates=True,
            timeout=number_param(params, "pull_timeout", minimum=1),
            why="app services only: database images stay as they are",
        ),
        Step(
            name="recreate changed services",
            command=in_dir + "docker compose up -d --remove-orphans",
            mutates=True,
            timeout=900,
            downtime="starts",
            why="only containers whose image or config changed are recreated",
        ),
        *_with_downtime_end(health),
        Step(
            name="remove dangling images",
            command="docker image prune -f",
            mutates=True,
            timeout=300,
            why="only after the new stack answers healthy; the recorded digests can still be pulled back",
        ),
    )
    verify = (
        Step(
            name="every service running (healthy where it has a healthcheck)",
            command='echo "expected={{services}}"; ' + in_dir + "docker compose ps -a --format json",
            mutates=False,
            timeout=60,
            check=Check("each service has a running container, none unhealthy", guarded(services_problem)),
            poll=Poll(every=every, within=health_wait),
        ),
        *(_single(step) for step in health),
    )
    rollback = (
        "stopped before 'pull the app images': nothing changed but the dumps in " + run_backup + ".",
        f"back to the previous images: in {compose_dir} set each service's image: to its recorded reference "
        "({{image_digests}}) and run: docker compose up -d",
        "if the new version migrated a database: docker compose stop the app services, then per database service: "
        f"docker compose exec -T SERVICE sh -c 'pg_restore --clean --if-exists -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"' < {run_backup}/SERVICE.dump",
        f"last resort: opsguard restore {host.name} --snapshot {{snapshot_id}}",
    )
    return Plan(
        playbook="stack_upgrade",
        host=host.name,
        kind=KIND,
        summary=f"docker compose stack in {compose_dir}: dump databases, pull app images, up -d, health, prune",
        preflight=preflight,
        change=change,
        verify=verify,
        rollback=rollback,
        params=dict(params),
    )


_CURRENT_IMAGES = "\n".join(
    [
        "for container in $(docker compose ps -a -q); do",
        "  service=$(docker inspect --format '{{index .Config.Labels \"com.docker.compose.service\"}}' \"$container\") || exit 1",
        "  reference=$(docker inspect --format '{{.Config.Image}}' \"$container\") || exit 1",
        "  image=$(docker inspect --format '{{.Image}}' \"$container\") || exit 1",
        "  digests=$(docker image inspect --format '{{join .RepoDigests \",\"}}' \"$image\" 2>/dev/null)",
        '  echo "$service $reference $image ${digests:--}"',
        "done",
    ]
)


def _pinned_problem(stdout: str) -> str | None:
    services = parse_compose_services(stdout)
    problems = []
    for image in services.values():
        problem = floating_tag_problem(image) if is_database_image(image) else None
        if problem:
            problems.append(problem)
    if problems:
        return "; ".join(problems)
    if not any(image and not is_database_image(image) for image in services.values()):
        return "no app service with an image to pull"
    return None


def _service_facts(stdout: str) -> dict[str, str]:
    services = parse_compose_services(stdout)
    databases = [name for name, image in services.items() if is_database_image(image)]
    apps = [name for name, image in services.items() if image and not is_database_image(image)]
    return {"services": word_list(services), "db_services": word_list(databases), "app_services": word_list(apps)}


def _digest_facts(stdout: str) -> dict[str, str]:
    images = parse_container_images(stdout)
    return {"image_digests": word_list(f"{image.service}={image.rollback_reference()}" for image in images) or "none"}


def services_problem(stdout: str) -> str | None:
    """Given ``expected=SERVICES`` and ``docker compose ps`` output, return None if each service runs and none is unhealthy."""
    lines = stdout.splitlines()
    expected = parse_key_values(lines[0] if lines else "").get("expected", "").split()
    containers = parse_compose_ps("\n".join(lines[1:]))
    problems = []
    for service in expected:
        mine = [container for container in containers if container.service == service]
        if not mine:
            problems.append(f"{service} has no container")
        for container in mine:
            if container.state != "running":
                problems.append(f"{service} is {container.state or 'unknown'}")
            elif container.health not in ("", "healthy"):
                problems.append(f"{service} is {container.health}")
    return "; ".join(problems) or None


def _health_steps(params: Mapping[str, Any], every: float, within: float) -> list[Step]:
    steps = []
    n8n = params.get("n8n_url") or ""
    typebot = params.get("typebot_viewer_url") or ""
    if not isinstance(n8n, str) or not isinstance(typebot, str):
        raise ConfigError("n8n_url and typebot_viewer_url must be strings")
    if n8n:
        steps.append(
            Step(
                name="n8n ready (GET /healthz/readiness = 200)",
                command=http_status_command(n8n.rstrip("/") + "/healthz/readiness"),
                mutates=False,
                timeout=15,
                check=http_status_check("HTTP 200", lambda status: status == 200),
                poll=Poll(every=every, within=within),
            )
        )
    if typebot:
        steps.append(
            Step(
                name="Typebot viewer healthy (GET /api/health = 200)",
                command=http_status_command(typebot.rstrip("/") + "/api/health"),
                mutates=False,
                timeout=15,
                check=http_status_check("HTTP 200", lambda status: status == 200),
                poll=Poll(every=every, within=within),
            )
        )
    return steps


def _with_downtime_end(steps: list[Step]) -> list[Step]:
    """The health waits of the change phase; the last one ends the downtime."""
    waits = [replace(step, name="wait: " + step.name) for step in steps]
    waits[-1] = replace(waits[-1], downtime="ends")
    return waits


def _single(step: Step) -> Step:
    """A health step for the verify phase: asked a few times, not waited for (the change phase waited)."""
    assert step.poll is not None
    return replace(step, poll=Poll(every=step.poll.every, within=min(step.poll.within, step.poll.every * 3)))


PLAYBOOK = Playbook(
    name="stack_upgrade",
    kind=KIND,
    summary="docker compose stack upgrade (Typebot, n8n): dumps first, database images never pulled",
    variables=VARS,
    options=OPTIONS,
    required={},
    roles=("integrations",),
    build=plan,
    examples=(Example(roles=("integrations",)),),
)
