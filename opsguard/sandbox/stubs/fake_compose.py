"""docker compose (v2) and docker-compose: the integrations host's project in <root>/opt/stack.

The services and images come from its docker-compose.yml (containers.py); every container runs.
config prints the model (starting with the project name), --services or --images, or checks it
quietly (-q); ps lists the project's containers as a table, full ids (-q), one JSON object per line
(--format json, as v2.21+) or services; images lists the images; exec runs a command inside a
service's container (stdin is passed on: -T only turns the TTY off); pull, up, down, restart, stop,
start, create and rm report each selected service on stderr, as compose does without a terminal,
and fail for an unknown service. A Zpro host has no compose file: its project has no services.
"""

from __future__ import annotations

import os

from .containers import (
    COMPOSE_DIR,
    compose_services,
    container_records,
    image_id,
    inner_command,
    save_stack_images,
    stack_images,
)
from .core import Call, err, first_word, has_flag, options_and_words, out, to_json

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


PROJECT = COMPOSE_DIR[-1]  # compose names the project after its directory
# The global options of docker compose that take a value (before the action).
GLOBAL_OPTIONS = (
    "-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile", "--ansi", "--progress",
)  # fmt: skip
# What compose reports of each container for the actions that change containers (up reports "Running").
VERBS = {"down": "Removed", "restart": "Started", "stop": "Stopped", "start": "Started", "create": "Created",
         "rm": "Removed"}  # fmt: skip


def docker_compose(call: Call) -> int:
    """Answer the docker-compose command (the same as docker compose)."""
    return compose(call, call.args)


def compose(call: Call, args: list[str]) -> int:
    """Given the arguments after ``docker compose``, answer them."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in GLOBAL_OPTIONS else 1
    if index >= len(args):
        return 0
    action, rest = args[index], args[index + 1 :]
    services = compose_services(call)
    files = config_files(call, args[:index])
    overrides = override_images(files[1:])
    if action == "config":
        return compose_config(call, rest, services)
    if action == "ps":
        return compose_ps(call, rest, services)
    if action == "images":
        return compose_images(rest, services)
    if action == "exec":
        return compose_exec(call, rest, services)
    if action == "version":
        out("Docker Compose version v2.29.7\n")
        return 0
    return compose_change(call, action, rest, services, overrides, files)


def wants_json(rest: list[str]) -> bool:
    """Given the arguments after the action, return whether they ask for --format json."""
    return "--format=json" in rest or any(
        option == "--format" and value == "json"
        for option, value in zip(rest, rest[1:], strict=False)  # noqa: RUF007 - no itertools import
    )


def compose_config(call: Call, rest: list[str], services: list[tuple[str, str]]) -> int:
    """Answer compose config: the services, the images, nothing with -q, else the model."""
    if "--services" in rest:
        out("".join(f"{service}\n" for service, _ in services))
    elif "--images" in rest:
        out("".join(f"{image}\n" for _, image in services))
    elif not ("-q" in rest or "--quiet" in rest):
        try:
            with open(os.path.join(call.root, *COMPOSE_DIR, "docker-compose.yml"), encoding="utf-8") as source:
                text = source.read()
        except OSError:
            text = "services: {}\n"
        # Like the real command: the normalised model starts with the project name.
        out(("" if text.startswith("name:") else f"name: {PROJECT}\n") + text)
    return 0


def compose_ps(call: Call, rest: list[str], services: list[tuple[str, str]]) -> int:
    """Answer compose ps: the project's containers as full ids, JSON lines, service names or a table."""
    project_containers = [record for record in container_records(call) if record["Config"]["Labels"]]
    if has_flag(rest, "q", "--quiet"):  # compose prints full ids
        out("".join(record["Id"] + "\n" for record in project_containers))
    elif wants_json(rest):  # docker compose v2.21+: one JSON object per line
        for record in project_containers:
            labels, health = record["Config"]["Labels"], record["State"].get("Health")
            status = "Up 3 days" + (f" ({health['Status']})" if health else "")
            out(to_json({"ID": record["Id"][:12], "Name": record["Name"][1:], "Service": labels["com.docker.compose.service"],
                         "Image": record["Config"]["Image"], "Project": PROJECT, "State": record["State"]["Status"],
                         "Health": health["Status"] if health else "", "ExitCode": 0, "Status": status}) + "\n")  # fmt: skip
    elif "--services" in rest:
        out("".join(f"{service}\n" for service, _ in services))
    else:
        out("NAME   IMAGE   SERVICE   STATUS\n")
        out("".join(f"{PROJECT}-{service}-1   {image}   {service}   Up 3 days\n" for service, image in services))
    return 0


def compose_images(rest: list[str], services: list[tuple[str, str]]) -> int:
    """Answer compose images: each service's image, as a JSON list or a table."""
    records: list[dict[str, Any]] = []
    for service, image in services:
        repository, _, tag = image.partition(":")
        records.append({"ID": image_id(image), "ContainerName": f"{PROJECT}-{service}-1", "Repository": repository,
                        "Tag": tag or "latest", "Size": 250_000_000})  # fmt: skip
    if wants_json(rest):
        out(to_json(records) + "\n")
    else:
        out("CONTAINER   REPOSITORY   TAG   IMAGE ID   SIZE\n")
        out(
            "".join(
                f"{r['ContainerName']}   {r['Repository']}   {r['Tag']}   {r['ID'][7:19]}   250MB\n" for r in records
            )
        )
    return 0


def compose_exec(call: Call, rest: list[str], services: list[tuple[str, str]]) -> int:
    """Answer compose exec: run the command inside the service's container; 1 if it names no service."""
    first = first_word(rest, ("-u", "--user", "-e", "--env", "-w", "--workdir", "--index"))
    if first is None:
        err('"docker compose exec" requires at least 2 arguments\n')
        return 1
    if rest[first] not in [service for service, _ in services]:
        err(f'service "{rest[first]}" is not running\n')
        return 1
    # -T only turns the TTY off: stdin is passed on.
    return inner_command(call, rest[first + 1 :], call.stdin_bytes, service=rest[first])


def config_files(call: Call, global_options: list[str]) -> list[str]:
    """Given the options before the action, return the absolute paths of the compose files read: the -f files, else
    (as compose does without -f) docker-compose.yml and docker-compose.override.yml when it is there."""
    directory = os.path.join(call.root, *COMPOSE_DIR)
    named = [value for option, value in zip(global_options, global_options[1:], strict=False)  # noqa: RUF007 - no itertools import
             if option in ("-f", "--file")]
    if named:
        return [name if os.path.isabs(name) else os.path.join(directory, name) for name in named]
    default = os.path.join(directory, "docker-compose.override.yml")
    return [os.path.join(directory, "docker-compose.yml"), *([default] if os.path.isfile(default) else [])]


def override_images(paths: list[str]) -> dict[str, str]:
    """Given the compose files after the first (overrides), return {service: image} of the image lines they hold."""
    images: dict[str, str] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as source:
                lines = source.read().splitlines()
        except OSError:
            continue
        service = None
        for line in lines:
            stripped = line.strip()
            if line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
                service = stripped[:-1]
            elif service and stripped.startswith("image:"):
                images[service] = stripped.split(":", 1)[1].strip().strip("\"'")
    return images


def compose_change(call: Call, action: str, rest: list[str], services: list[tuple[str, str]],
                   overrides: dict[str, str] | None = None, files: list[str] | None = None) -> int:
    """Answer an action on the services named (all when none): pull, up, down, restart, stop, start, create, rm.

    pull fetches each selected service's configured image (its ``registry`` version, stack_images); up makes each
    service run its configured image (or the one an override file names), created from the compose files read
    (its label com.docker.compose.project.config_files).
    """
    _, chosen = options_and_words(rest, ("-t", "--timeout", "--wait-timeout", "--scale", "--pull"))
    names = [service for service, _ in services]
    unknown = [service for service in chosen if service not in names]
    if unknown:
        err(f"no such service: {unknown[0]}\n")
        return 1
    selected = [(service, image) for service, image in services if not chosen or service in chosen]
    images = stack_images(call)
    if action == "pull":
        for _, image in selected:
            if image and image in images["registry"]:
                images["local"][image] = images["registry"][image]
        save_stack_images(call, images)
        # compose v2 without a terminal: one line per service and step, on stderr.
        err("".join(f" {service} Pulling \n" for service, image in selected if image))
        err("".join(f" {service} Pulled \n" for service, image in selected if image))
    elif action == "up":
        for service, image in selected:
            images["running"][service] = (overrides or {}).get(service, image)
            if files:
                images["config_files"][service] = ",".join(files)
        save_stack_images(call, images)
        err("".join(f" Container {PROJECT}-{service}-1  Running\n" for service, _ in selected))
    elif action in VERBS:
        err("".join(f" Container {PROJECT}-{service}-1  {VERBS[action]}\n" for service, _ in selected))
    return 0
