"""Upgrade of the integrations stack (Typebot, n8n, AI flows) under docker compose.

What it does: checks the compose project, records the image each service runs now (the rollback
target, by registry digest, and its version), refuses a database image on a floating tag, refuses
when n8n's encryption key is neither in its environment nor in its config, dumps every Postgres
service and verifies the dumps, copies the compose files, .env, dumps and n8n's key/config off the
host, then pulls the APP services' images, checks that n8n and Typebot do not jump a major version
(unless ``--allow-major``), and runs `docker compose up -d --remove-orphans`. It waits for n8n's
readiness and Typebot's health before removing dangling images.

Why it is safe: the database images are never pulled (they change only when an operator changes their
pinned tag: a floating `postgres` tag jumping a major version cannot read the old data files); without
its encryption key a restarted n8n generates a new one and every stored credential becomes unreadable;
a major version migrates the database one way (n8n 1.x -> 2.x has breaking changes); the dumps are
verified with `pg_restore -l` before anything is pulled; old images are pruned only after the new stack
answers healthy; the recorded digests and the dumps let `opsguard rollback` pin every service back.
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
    version_major,
)
from opsguard.inventory import Host
from opsguard.plan import Check, CopyItem, Facts, Plan, Poll, Step
from opsguard.playbooks.base import Example, Playbook
from opsguard.playbooks.common import (
    COPY_VARS,
    copies_download,
    copies_size_step,
    disk_step,
    du_bytes_line,
    dumps_problem,
    guarded,
    http_status_check,
    http_status_command,
    number_param,
    path_param,
    paths_param,
    quote,
    relative_paths_param,
    service_dumps_command,
    text_param,
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
    "compose_files": ["docker-compose.yml"],  # relative to compose_dir, at least one: copied off the host
    "n8n_service": "n8n",  # the compose service running n8n ("" when the host runs no n8n)
    "n8n_config_path": "/home/node/.n8n/config",  # inside that container: the key n8n generated on first start
    **COPY_VARS,
}

OPTIONS: dict[str, Any] = {"allow_major": False}
# The change steps a rollback looks for in the ledger: once the services were recreated, the new images ran.
PULL_STEP = "pull the app images"
RECREATE_STEP = "recreate changed services"
# The fact naming the compose files `docker compose` reads here with no -f (the upgrade's): the rollback's -f files.
COMPOSE_FILES_FACT = "compose_files_used"
# What compose looks for with no -f and no COMPOSE_FILE, in its order of preference (the first found wins, then the
# first override found beside it).
DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DEFAULT_OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                          "docker-compose.override.yaml")
# Apps whose database migrations only go forward: a major version jump needs --allow-major.
MAJOR_CHECKED = ("n8n", "typebot")
VERSION_LABEL = "org.opencontainers.image.version"

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
    health = health_steps(params, every, health_wait)
    if not health:
        raise ConfigError("n8n_url and typebot_viewer_url are both empty: nothing would prove the stack healthy")

    allow_major = bool(params.get("allow_major"))
    compose_files = relative_paths_param(params, "compose_files")
    if not compose_files:
        raise ConfigError("param compose_files: names no compose file (at least the one in compose_dir; they are copied "
                          "off the host)")
    n8n_service = str(params.get("n8n_service") or "")
    preflight = (
        Step(name="compose file valid", command=in_dir + "docker compose config -q", mutates=False, timeout=60),
        _compose_files_step(compose_dir),
        Step(
            name="services, and database images pinned",
            # Only top-level keys, service names and image lines leave the host: no environment values.
            command=in_dir + "docker compose config | grep -E '^[^[:space:]#]|^  [^[:space:]#]|^    image:'",
            mutates=False,
            timeout=60,
            check=Check("every database image pinned to a version; at least one app service to pull", guarded(_pinned_problem)),
            facts=Facts(("services", "db_services", "app_services", "configured_images"), _service_facts),
            why="a floating postgres tag can jump a major version and then cannot read the old data",
        ),
        Step(
            name="images running now (rollback target), and no major version jump in the configured tags",
            command='echo "configured={{configured_images}}"\n' + in_dir + _CURRENT_IMAGES,
            mutates=False,
            timeout=120,
            check=Check("n8n and Typebot tags keep the major version they run" + (" (--allow-major: any)" if allow_major else ""),
                        guarded(lambda stdout: None if allow_major else _configured_major_problem(stdout))),
            facts=Facts(("image_digests", "app_versions"), _digest_facts),
            why="registry digests: the exact images to pin back to; a major jump migrates n8n's or Typebot's database "
            "one way",
        ),
        *([_n8n_key_step(compose_dir, n8n_service, text_param(params, "n8n_config_path"))] if n8n_service else []),
        disk_step([*paths_param(params, "disk_paths"), compose_dir], number_param(params, "disk_limit_percent", minimum=1),
                  also=[backup_dir]),
        Step(
            name="databases ready",
            command=in_dir + 'for service in {{db_services}}; do docker compose exec -T -- "$service" pg_isready || exit 1; done',
            mutates=False,
            timeout=120,
        ),
        _copies_size_step(compose_dir, compose_files),
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
            command=service_dumps_command(compose_dir, run_backup, "docker compose"),
            mutates=False,
            timeout=600,
            check=Check("every database dump non-empty and listed by pg_restore -l", guarded(dumps_problem)),
        ),
        _copy_step(params, compose_dir, compose_files, run_backup, n8n_service),
        Step(
            name=PULL_STEP,
            command=in_dir + "docker compose pull {{app_services}}",
            mutates=True,
            timeout=number_param(params, "pull_timeout", minimum=1),
            why="app services only: database images stay as they are",
        ),
        Step(
            name="no major version jump in the pulled images (n8n, Typebot)",
            command=_PULLED_VERSIONS.replace("CD_COMPOSE_DIR", f"cd {quote(compose_dir)} || exit 1"),
            mutates=False,
            timeout=120,
            check=Check("the pulled n8n and Typebot images keep the major version they run"
                        + (" (--allow-major: any)" if allow_major else ""),
                        guarded(lambda stdout: None if allow_major else _pulled_major_problem(stdout))),
            why="a floating tag (latest) shows its version only once pulled; nothing runs the new images yet",
        ),
        Step(
            name=RECREATE_STEP,
            command=in_dir + "docker compose up -d --remove-orphans",
            mutates=True,
            timeout=900,
            downtime="starts",
            why="only containers whose image or config changed are recreated",
        ),
        *with_downtime_end(health),
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
        f"opsguard rollback {host.name} runs the two lines after the next for this run, under its snapshot (no provider "
        "restore); by hand:",
        f"stopped before {RECREATE_STEP!r}: the containers still run the old images; nothing changed but the dumps in "
        f"{run_backup} (and the images pulled).",
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
        f"  version=$(docker image inspect --format '{{{{index .Config.Labels \"{VERSION_LABEL}\"}}}}' \"$image\" 2>/dev/null)",
        '  echo "$service $reference $image ${digests:--} ${version:--}"',
        "done",
    ]
)
# After the pull: the version of the image each checked service's configured reference now names.
_PULLED_VERSIONS = "\n".join(
    [
        'echo "running={{app_versions}}"',
        "CD_COMPOSE_DIR",
        "for pair in {{configured_images}}; do",
        '  if [ "$pair" = none ]; then continue; fi',
        # service=reference, split by cut: the read-only vocabulary allows no ${...} but plain defaults.
        "  service=$(printf '%s\\n' \"$pair\" | cut -d = -f 1)",
        "  reference=$(printf '%s\\n' \"$pair\" | cut -d = -f 2-)",
        f"  version=$(docker image inspect --format '{{{{index .Config.Labels \"{VERSION_LABEL}\"}}}}' \"$reference\" 2>/dev/null)",
        '  echo "pulled $service $reference ${version:--}"',
        "done",
    ]
)


def _compose_files_step(compose_dir: str) -> Step:
    """The compose files `docker compose` reads here with no -f: recorded, so the rollback's -f names the same ones."""
    names = " ".join([*DEFAULT_COMPOSE_FILES, *DEFAULT_OVERRIDE_FILES])
    command = "\n".join([
        f"cd {quote(compose_dir)} || exit 1",
        'echo "environment_compose_file=$(printenv COMPOSE_FILE)"',
        'echo "environment_path_separator=$(printenv COMPOSE_PATH_SEPARATOR)"',
        # Only the COMPOSE_FILE and COMPOSE_PATH_SEPARATOR lines of .env leave the host: never its other values.
        "if [ -f .env ]; then grep -E '^[[:space:]]*(export[[:space:]]+)?COMPOSE_(FILE|PATH_SEPARATOR)[[:space:]]*=' .env; fi",
        f'for name in {names}; do if [ -f "$name" ]; then echo "present $name"; fi; done',
    ])  # fmt: skip
    return Step(
        name="compose files docker compose reads (COMPOSE_FILE, else the default file and its override)",
        command=command,
        mutates=False,
        timeout=30,
        facts=Facts((COMPOSE_FILES_FACT,), lambda stdout: {COMPOSE_FILES_FACT: word_list(compose_files_in_use(stdout))}),
        why="the upgrade's compose runs with no -f: a rollback passes -f, which replaces compose's defaults, so it "
        "must name the same files (an override file or COMPOSE_FILE would otherwise be left out)",
    )


def compose_files_in_use(stdout: str) -> list[str]:
    """Given the output of the compose files step, return the files `docker compose` reads with no -f, in order:
    COMPOSE_FILE from the environment, else from .env (split by COMPOSE_PATH_SEPARATOR, default ':'), else the first
    default file present and the first default override present.

    Raise ValueError when that cannot be told (no compose file, an empty or computed COMPOSE_FILE, an unsafe path).
    """
    values: dict[str, str] = {}
    dotenv: dict[str, str] = {}
    present: list[str] = []
    for line in stdout.splitlines():
        key, separator, value = line.partition("=")
        if line.startswith("present "):
            present.append(line[len("present ") :].strip())
        elif key in ("environment_compose_file", "environment_path_separator") and separator:
            values[key] = value.strip()
        elif separator:
            name = key.strip().removeprefix("export").strip()
            if name in ("COMPOSE_FILE", "COMPOSE_PATH_SEPARATOR"):
                dotenv[name] = _dotenv_value(value)
    # The environment wins over .env, as in compose; printenv prints nothing for a variable that is not set.
    listed = values.get("environment_compose_file") or dotenv.get("COMPOSE_FILE")
    if listed is not None:
        separator = values.get("environment_path_separator") or dotenv.get("COMPOSE_PATH_SEPARATOR") or ":"
        files = [name.strip() for name in listed.split(separator)]
        if not listed.strip() or not all(files) or "$" in listed:
            raise ValueError(f"COMPOSE_FILE {listed!r} does not name the compose files plainly")
    else:
        main = [name for name in DEFAULT_COMPOSE_FILES if name in present]
        if not main:
            raise ValueError(f"no compose file ({', '.join(DEFAULT_COMPOSE_FILES)}) and no COMPOSE_FILE")
        files = [main[0], *[name for name in DEFAULT_OVERRIDE_FILES if name in present][:1]]
    word_list(files)  # each must be one plain shell word: it is passed to `docker compose -f` by the rollback
    return files


def _dotenv_value(text: str) -> str:
    """Given what follows ``NAME=`` on a .env line, return the value as compose reads it (quotes, a trailing comment)."""
    value = text.strip()
    if value[:1] in ("'", '"'):
        closing = value.find(value[0], 1)
        return value[1:closing] if closing > 0 else value[1:]
    return value.split(" #", 1)[0].strip()


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


def is_major_checked(reference: str) -> bool:
    """Given an image reference, return whether a major version jump of it needs --allow-major (n8n, Typebot)."""
    return bool(reference) and any(key in split_image_reference(reference).name for key in MAJOR_CHECKED)


def _service_facts(stdout: str) -> dict[str, str]:
    services = parse_compose_services(stdout)
    databases = [name for name, image in services.items() if is_database_image(image)]
    apps = [name for name, image in services.items() if image and not is_database_image(image)]
    checked = [f"{name}={image}" for name, image in services.items() if is_major_checked(image)]
    return {"services": word_list(services), "db_services": word_list(databases), "app_services": word_list(apps),
            "configured_images": word_list(checked) or "none"}


def _digest_facts(stdout: str) -> dict[str, str]:
    images = parse_container_images("\n".join(line for line in stdout.splitlines() if not line.startswith("configured=")))
    versions = [f"{image.service}={image.version or tag_version(image.reference) or '-'}"
                for image in images if is_major_checked(image.reference)]
    return {"image_digests": word_list(f"{image.service}={image.rollback_reference()}" for image in images) or "none",
            "app_versions": word_list(versions) or "none"}


def tag_version(reference: str) -> str:
    """Given an image reference, return its tag when the tag names a version (``1.64.3``, ``v2``), else ""."""
    tag = split_image_reference(reference).tag or ""
    return tag if version_major(tag) is not None else ""


def _pairs(text: str) -> dict[str, str]:
    """Given ``service=value`` words (or "none"), return {service: value}."""
    return dict(word.split("=", 1) for word in text.split() if "=" in word)


def major_jumps(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Given {service: version} before and after, return "service X -> Y" for each whose major number changes.

    A version without a major number (latest, unknown) cannot be judged and is not reported.
    """
    jumps = []
    for service, new in after.items():
        old_major, new_major = version_major(before.get(service, "")), version_major(new)
        if old_major is not None and new_major is not None and old_major != new_major:
            jumps.append(f"{service} {before[service]} -> {new}")
    return jumps


def _major_message(jumps: list[str], when: str) -> str:
    return (f"major version jump {when}: {'; '.join(jumps)}: n8n and Typebot migrate their databases one way on start "
            "(breaking changes between majors); read the release notes, then run again with --allow-major")


def _configured_major_problem(stdout: str) -> str | None:
    configured = _pairs(parse_key_values(stdout.splitlines()[0] if stdout else "").get("configured", ""))
    images = parse_container_images("\n".join(stdout.splitlines()[1:]))
    running = {image.service: image.version or tag_version(image.reference) for image in images}
    jumps = major_jumps(running, {service: tag_version(reference) for service, reference in configured.items()})
    return _major_message(jumps, "in the configured tags") if jumps else None


def _pulled_major_problem(stdout: str) -> str | None:
    running = _pairs(parse_key_values(stdout.splitlines()[0] if stdout else "").get("running", ""))
    pulled = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "pulled":
            pulled[fields[1]] = fields[3] if fields[3] != "-" else tag_version(fields[2])
    jumps = major_jumps({service: version for service, version in running.items() if version != "-"}, pulled)
    return _major_message(jumps, "in the pulled images (nothing runs them yet)") if jumps else None


def _n8n_key_step(compose_dir: str, service: str, config_path: str) -> Step:
    inside = f"docker compose exec -T {quote(service)}"
    command = "\n".join([
        f"cd {quote(compose_dir)} || exit 1",
        f"if {inside} printenv N8N_ENCRYPTION_KEY 2>/dev/null | grep -q .; then echo key_in_environment=yes; "
        "else echo key_in_environment=no; fi",
        f"if {inside} grep -q '\"encryptionKey\"' {quote(config_path)} 2>/dev/null; then echo key_in_config=yes; "
        "else echo key_in_config=no; fi",
    ])  # fmt: skip

    def test(stdout: str) -> str | None:
        values = parse_key_values(stdout)
        if "yes" in (values.get("key_in_environment"), values.get("key_in_config")):
            return None
        return (f"n8n's encryption key is neither in its environment (N8N_ENCRYPTION_KEY) nor in {config_path} of service "
                f"{service} (or that container is not running): a restart would make n8n generate a new key and every "
                "stored credential would become unreadable; set N8N_ENCRYPTION_KEY (e.g. in the compose .env) to the "
                "key in use, or n8n_service = \"\" if this host runs no n8n")

    return Step(
        name="n8n's encryption key kept (environment or config)",
        command=command,
        mutates=False,
        timeout=60,
        check=Check("N8N_ENCRYPTION_KEY set, or encryptionKey in n8n's config", guarded(test)),
        why="only whether the key is there leaves the host (grep -q, printenv into grep -q), never the key",
    )


def _copies_size_step(compose_dir: str, compose_files: list[str]) -> Step:
    query = "select pg_database_size(current_database())"
    lines = [
        f"cd {quote(compose_dir)} || exit 1",
        "for service in {{db_services}}; do",
        # The image's defaults: user POSTGRES_USER or postgres, database POSTGRES_DB or the user's name.
        # The database in PGDATABASE: libpq never reads it as connection settings (a -d value can be).
        "  size=$(docker compose exec -T -- \"$service\" sh -c 'db_user=${POSTGRES_USER:-postgres}; db_name=${POSTGRES_DB:-}; "
        "if [ -z \"$db_name\" ]; then db_name=$db_user; fi; PGOPTIONS=\"-c default_transaction_read_only=on\" "
        f"PGDATABASE=\"$db_name\" psql -X -U \"$db_user\" -tAc \"{query}\"') || exit 1",
        '  echo "dump_${service}_bytes=$size"',  # one line a database: the step sums every *_bytes line
        "done",
        du_bytes_line("files", [f"{compose_dir}/{name}" for name in [*compose_files, ".env"]]),
    ]
    return copies_size_step(lines, why="each database's size bounds its dump; refused before the snapshot when the copies "
                            "would not fit on this machine (copies_max_gb, free space of the state dir)")


def _copy_step(params: Mapping[str, Any], compose_dir: str, compose_files: list[str], run_backup: str,
               n8n_service: str) -> Step:
    items = [
        *(CopyItem(f"compose/{name}", f"{compose_dir}/{name}") for name in compose_files),
        CopyItem("compose/.env", f"{compose_dir}/.env", optional=True),
        CopyItem("dumps", run_backup, kind="dir"),
    ]
    if n8n_service:
        items += [
            CopyItem("n8n/config", text_param(params, "n8n_config_path"), kind="container-file", service=n8n_service,
                     compose_dir=compose_dir, optional=True),
            CopyItem("n8n/N8N_ENCRYPTION_KEY", "N8N_ENCRYPTION_KEY", kind="container-env", service=n8n_service,
                     compose_dir=compose_dir, optional=True),
        ]
    return Step(
        name="copy off the host: compose files, .env, dumps" + (", n8n's key" if n8n_service else ""),
        command=": copied by opsguard through read-only commands: base64 and sha256sum, nothing written on the host",
        mutates=False,
        timeout=3600,
        download=copies_download(params, items),
        why="n8n's encryption key and the dumps on this machine, verified by sha256 against the host's, before "
        "anything is pulled",
    )


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


def health_steps(params: Mapping[str, Any], every: float, within: float) -> list[Step]:
    """Given params with n8n_url and typebot_viewer_url, the poll gap and the wait, return the health steps of the
    services configured ("" leaves one out); raise ConfigError if a URL is not a string."""
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


def with_downtime_end(steps: list[Step]) -> list[Step]:
    """Given the health steps, return them as waits of the change phase; the last one ends the downtime."""
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
