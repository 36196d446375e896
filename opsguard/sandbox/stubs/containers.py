"""The host's docker containers and images, and the commands run inside them (for docker and compose).

A Zpro host runs ZPRO_CONTAINERS (postgres and redis, outside any compose project); an
integrations host runs one container per service of <root>/opt/stack/docker-compose.yml, named
and labelled as compose v2 does. Every id and digest is derived from the names, so
``docker ps -q``, ``docker inspect`` and ``docker compose ps -q`` agree with each other, and an
image's id (sha256 of its config) differs from its registry digest (repository@sha256:...), as on
a real host. Every container runs; postgres and redis images have a healthcheck and are healthy.

Image versions (stack_images, in <root>/stub-state/stack-images; SandboxHosts.set_stack_images sets them):
a service runs its ``running`` reference (the configured one until ``docker compose up`` recreates it);
an image carries the label org.opencontainers.image.version: its ``local`` version (what was pulled), else
its tag when the tag is a version; ``docker compose pull`` fetches the ``registry`` version of a
configured reference (a floating tag that moved). Files inside a service's container live under
<root>/volumes/<service>/ (n8n's config), its environment is its ``environment:`` list in the compose file.
"""

from __future__ import annotations

import os

from .core import Call, load_state, save_state

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ZPRO_CONTAINERS = (("postgresql", "postgres:14.11"), ("redis-zpro", "redis:7.2.4"))
COMPOSE_DIR = ("opt", "stack")  # the integrations host's compose project, inside the root


def compose_services(call: Call) -> list[tuple[str, str]]:
    """Return (service, image) pairs read from <root>/opt/stack/docker-compose.yml (the sandbox layout)."""
    services: list[tuple[str, str]] = []
    try:
        with open(os.path.join(call.root, *COMPOSE_DIR, "docker-compose.yml"), encoding="utf-8") as compose_file:
            lines = compose_file.read().splitlines()
    except OSError:
        return services
    in_services, current = False, None
    for line in lines:
        if line and not line[0].isspace():
            in_services = line.rstrip() == "services:"
            continue
        stripped = line.strip()
        if in_services and line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
            current = stripped[:-1]
            services.append((current, ""))
        elif in_services and current and stripped.startswith("image:"):
            services[-1] = (current, stripped.split(":", 1)[1].strip().strip("\"'"))
    return services


def digest(text: str) -> str:
    """Given text, return its sha256 digest as docker writes one (sha256:<hex>)."""
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def repository_of(reference: str) -> str:
    """Given an image reference, return it without tag or digest (a colon before the last '/' is a registry port)."""
    name = reference.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def image_id(reference: str, version: str = "") -> str:
    """Given an image reference (and the version pulled, when one was), return its local image id (sha256 of its config)."""
    return digest("image config " + reference + (f" {version}" if version else ""))


def repo_digest(reference: str, version: str = "") -> str:
    """Given an image reference (and the version pulled), return its registry digest reference (repository@sha256:...)."""
    return f"{repository_of(reference)}@{digest('manifest ' + reference + (f' {version}' if version else ''))}"


VERSION_LABEL = "org.opencontainers.image.version"


def stack_images(call: Call) -> dict[str, dict[str, str]]:
    """Return the image state: running {service: reference}, local {reference: version}, registry {reference: version},
    config_files {service: the compose files its container was created from, comma-separated}."""
    saved = load_state(call, "stack-images", {})
    saved = saved if isinstance(saved, dict) else {}
    return {key: dict(saved.get(key) or {}) for key in ("running", "local", "registry", "config_files")}


def save_stack_images(call: Call, state: dict[str, dict[str, str]]) -> None:
    """Given the image state, save it for the next call."""
    save_state(call, "stack-images", state)


def tag_version(reference: str) -> str:
    """Given an image reference, return its tag when the tag is a version (starts with a digit or v+digit), else ""."""
    tag = reference.split("@", 1)[0]
    colon = tag.rfind(":")
    tag = tag[colon + 1 :] if colon > tag.rfind("/") else ""
    return tag if tag[:1].isdigit() or (tag[:1] == "v" and tag[1:2].isdigit()) else ""


def pulled_version(call: Call, reference: str) -> str:
    """Given an image reference, return the version a pull set for it ("" when it was never pulled here)."""
    return stack_images(call)["local"].get(reference, "")

def has_healthcheck(reference: str) -> bool:
    """Given an image reference, return whether its image has a healthcheck (postgres and redis here)."""
    return repository_of(reference).rsplit("/", 1)[-1] in ("postgres", "redis")


def containers(call: Call) -> list[tuple[str, str]]:
    """Return (container name, image reference) of every container on the host (the image it RUNS, see stack_images)."""
    if call.profile == "zpro":
        return list(ZPRO_CONTAINERS)
    running = stack_images(call)["running"]
    return [(f"{COMPOSE_DIR[-1]}-{service}-1", running.get(service, image)) for service, image in compose_services(call)]


def container_records(call: Call) -> list[dict[str, Any]]:
    """Return what `docker inspect` shows of each container (the fields scripts read)."""
    project = COMPOSE_DIR[-1]
    working_dir = os.path.join(call.root, *COMPOSE_DIR)
    services = (
        {} if call.profile == "zpro" else {f"{project}-{service}-1": service for service, _ in compose_services(call)}
    )
    records = []
    overrides = load_state(call, "containers", {})
    created_from = stack_images(call)["config_files"] if services else {}
    for index, (name, reference) in enumerate(containers(call)):
        labels: dict[str, str] = {}
        if name in services:
            labels = {
                "com.docker.compose.config-hash": digest("config " + name)[7:], "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False", "com.docker.compose.project": project,
                "com.docker.compose.project.config_files": created_from.get(services[name],
                                                                            os.path.join(working_dir, "docker-compose.yml")),
                "com.docker.compose.project.working_dir": working_dir, "com.docker.compose.service": services[name],
            }  # fmt: skip
        state: dict[str, Any] = {
            "Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 3100 + index, "ExitCode": 0, "Error": "",
            "StartedAt": "2024-11-25T03:00:00.000000000Z", "FinishedAt": "0001-01-01T00:00:00Z",
        }  # fmt: skip
        if has_healthcheck(reference):
            state["Health"] = {"Status": "healthy", "FailingStreak": 0}
        container_id = digest("container " + name)[7:]
        record = {
            "Id": container_id, "Created": "2024-11-25T02:59:58.000000000Z", "Path": "docker-entrypoint.sh",
            "Name": "/" + name, "RestartCount": 0, "Image": image_id(reference, pulled_version(call, reference)), "State": state,
            "Config": {"Hostname": container_id[:12], "Image": reference, "Labels": labels},
            "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}},
        }  # fmt: skip
        records.append(scripted_container(record, overrides.get(name) if isinstance(overrides, dict) else None))
    return records


def scripted_container(record: dict[str, Any], changes: Any) -> dict[str, Any]:
    """Given a container record and a test's changes from stub-state "containers" ({name: {"Created", "StartedAt",
    "Image" (a reference), "Status", "Health", "RestartCount"}}), return the record changed."""
    if not isinstance(changes, dict):
        return record
    if "Image" in changes:  # recreated from another image: new reference, new image id
        record["Config"]["Image"] = str(changes["Image"])
        record["Image"] = image_id(str(changes["Image"]))
    for key in ("Created", "RestartCount"):
        if key in changes:
            record[key] = changes[key]
    if "StartedAt" in changes:
        record["State"]["StartedAt"] = changes["StartedAt"]
    if "Status" in changes:
        record["State"]["Status"] = changes["Status"]
        record["State"]["Running"] = changes["Status"] == "running"
    if "Health" in changes:
        if changes["Health"] is None:
            record["State"].pop("Health", None)
        else:
            record["State"]["Health"] = {"Status": changes["Health"], "FailingStreak": 0 if changes["Health"] == "healthy" else 3}
    return record


def image_records(call: Call) -> list[dict[str, Any]]:
    """Return what `docker image inspect` shows of each local image: those the containers run, and those pulled."""
    local = stack_images(call)["local"]
    references = sorted({reference for _, reference in containers(call)} | set(local))
    records = []
    for reference in references:
        pulled = local.get(reference, "")
        version = pulled or tag_version(reference)
        records.append(
            {"Id": image_id(reference, pulled), "RepoTags": [reference], "RepoDigests": [repo_digest(reference, pulled)],
             "Created": "2024-10-30T12:00:00.000000000Z", "Size": 250_000_000, "Architecture": "amd64", "Os": "linux",
             "Config": {"Labels": {VERSION_LABEL: version} if version else {}}}
        )  # fmt: skip
    return records


def find_object(call: Call, target: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """Given a name, id (or a prefix of 4+ characters) or image reference, return the container or image it names."""
    if "container" in kinds:
        for record in container_records(call):
            if target in (record["Name"], record["Name"][1:]) or (len(target) >= 4 and record["Id"].startswith(target)):
                return record
    if "image" in kinds:
        bare = target[7:] if target.startswith("sha256:") else target
        for record in image_records(call):
            if target in record["RepoTags"] or target in record["RepoDigests"]:
                return record
            if len(bare) >= 4 and record["Id"][7:].startswith(bare):
                return record
    return None


def inner_command(call: Call, command: list[str], stdin_bytes: int = 0, service: str = "") -> int:
    """Answer a command run inside a container (docker exec / docker compose exec of ``service``) that got stdin_bytes on stdin."""
    if command[:1] in (["sh"], ["bash"]) and "-c" in command:
        import shlex

        command = shlex.split(command[command.index("-c") + 1]) if command.index("-c") + 1 < len(command) else []
    while command and "=" in command[0] and not command[0].startswith("-"):
        command = command[1:]  # VAR=value before the command: its environment, not the command
    if not command:
        return 0
    name, options = command[0], command[1:]
    if name in ("cat", "base64", "sha256sum", "printenv", "grep"):
        return container_tool(call, service, name, options)
    if name == "redis-cli":
        from .fake_redis import redis_answer

        return redis_answer(options)
    from . import fake_postgres as postgres

    if name == "pg_isready":
        return postgres.pg_isready_answer()
    if name == "pg_dump":
        return postgres.dump_to_stdout(call)  # inside a container the dump goes to stdout: callers pipe it out
    if name == "pg_restore":
        return postgres.pg_restore_answer(call, options, stdin_bytes)
    if name == "psql":
        return postgres.psql_answer(call, options)
    return 0


def container_environment(call: Call, service: str) -> dict[str, str]:
    """Given a compose service, return its environment: the ``- KEY=VALUE`` / ``KEY: VALUE`` entries under its
    ``environment:`` in <root>/opt/stack/docker-compose.yml."""
    try:
        with open(os.path.join(call.root, *COMPOSE_DIR, "docker-compose.yml"), encoding="utf-8") as compose_file:
            lines = compose_file.read().splitlines()
    except OSError:
        return {}
    environment: dict[str, str] = {}
    current, inside = None, False
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent == 2 and stripped.endswith(":"):
            current, inside = stripped[:-1], False
        elif indent == 4:
            inside = current == service and stripped == "environment:"
        elif inside and indent >= 6 and stripped:
            entry = stripped[2:] if stripped.startswith("- ") else stripped
            key, separator, value = entry.partition("=") if "=" in entry else entry.partition(":")
            if separator:
                environment[key.strip()] = value.strip().strip("\"'")
    return environment


def container_tool(call: Call, service: str, name: str, options: list[str]) -> int:
    """Answer cat, base64, sha256sum, printenv and grep -q inside a service's container: its files live under
    <root>/volumes/<service>/, its environment in the compose file."""
    import base64
    import hashlib
    import sys

    from .core import err, out

    if name == "printenv":
        environment = container_environment(call, service)
        wanted = [option for option in options if not option.startswith("-")]
        if not wanted or wanted[0] not in environment:
            return 1
        out(environment[wanted[0]] + "\n")
        return 0
    words = [option for option in options if not option.startswith("-") or option == "-"]
    if name == "grep":
        pattern, paths = (words[0], words[1:]) if words else ("", [])
    else:
        pattern, paths = "", words
    if not paths:
        return 1
    path = os.path.join(call.root, "volumes", service, paths[0].lstrip("/"))
    try:
        with open(path, "rb") as source:
            data = source.read()
    except OSError:
        err(f"{name}: {paths[0]}: No such file or directory\n")
        return 1
    if name == "cat":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    elif name == "base64":
        encoded = base64.b64encode(data).decode()
        out("".join(encoded[index : index + 76] + "\n" for index in range(0, len(encoded), 76)))
    elif name == "sha256sum":
        out(f"{hashlib.sha256(data).hexdigest()}  {paths[0]}\n")
    else:
        import re

        flags = "".join(option[1:] for option in options if option.startswith("-") and not option.startswith("--"))
        found = re.search(pattern if "E" in flags else re.escape(pattern), data.decode(errors="replace")) is not None
        return 0 if found else 1
    return 0
