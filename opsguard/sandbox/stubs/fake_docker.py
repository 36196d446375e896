"""docker: the container engine of a host whose containers all run (containers.py has them).

ps (and container ls) lists them, with -q or a --format template; inspect, image inspect and
container inspect show them and their images as JSON or through a --format template, by name, id
(or a prefix of 4+ characters) or image reference, and name each one missing on stderr (exit 1);
exec runs the command inside a running container (without -i it gets no stdin); prune reclaims
nothing; ``docker compose`` is fake_compose. Other calls (pull, restart) print nothing and succeed.
"""

from __future__ import annotations

from .containers import container_records, find_object, inner_command
from .core import Call, err, first_word, has_flag, option_value, options_and_words, out
from .gotemplate import render_template

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def docker(call: Call) -> int:
    """Answer docker: exec, compose, ps / container ls, inspect, image inspect, container inspect, prune, version."""
    args = call.args
    if not args:
        return 0
    if args[0] == "exec":
        rest = args[1:]
        first = first_word(rest, ("-u", "--user", "-e", "--env", "-w", "--workdir", "--env-file", "--detach-keys"))
        if first is None:
            err('"docker exec" requires at least 2 arguments.\n')
            return 1
        if find_object(call, rest[first], ("container",)) is None:
            err(f"Error response from daemon: No such container: {rest[first]}\n")
            return 1
        # Without -i docker exec does not pass stdin on to the command.
        interactive = has_flag(rest[:first], "i", "--interactive")
        return inner_command(call, rest[first + 1 :], call.stdin_bytes if interactive else 0, service=rest[first])
    if args[0] == "compose":
        from .fake_compose import compose

        return compose(call, args[1:])
    if args[0] == "ps" or args[:2] == ["container", "ls"]:
        return docker_ps(call, args[1:] if args[0] == "ps" else args[2:])
    if args[0] == "inspect":
        return docker_inspect(call, args[1:], ("container", "image"))
    if args[:2] == ["image", "inspect"]:
        return docker_inspect(call, args[2:], ("image",))
    if args[:2] == ["container", "inspect"]:
        return docker_inspect(call, args[2:], ("container",))
    if "prune" in args:
        out("Total reclaimed space: 0B\n")
    elif args[0] == "version":
        out("Client: Docker Engine - Community\n Version:           27.3.1\n")
    return 0


def ps_context(record: dict[str, Any]) -> dict[str, Any]:
    """Given a container record, return the fields `docker ps --format` offers."""
    health = record["State"].get("Health")
    return {
        "ID": record["Id"][:12], "Image": record["Config"]["Image"], "Command": '"docker-entrypoint.s\u2026"',
        "CreatedAt": "2024-11-25 02:59:58 +0000 UTC", "RunningFor": "3 days ago", "Ports": "",
        "State": record["State"]["Status"], "Status": "Up 3 days" + (f" ({health['Status']})" if health else ""),
        "Size": "0B", "Names": record["Name"][1:], "Mounts": "", "Networks": "bridge",
        "Labels": ",".join(f"{key}={value}" for key, value in sorted(record["Config"]["Labels"].items())),
    }  # fmt: skip


def docker_ps(call: Call, args: list[str]) -> int:
    """Answer docker ps: every container (they all run, so -a lists the same), as a table, ids or a template."""
    records = container_records(call)  # every container runs: -a lists the same
    template = option_value(args, ("--format",))
    if has_flag(args, "q", "--quiet"):
        out("".join(record["Id"][:12] + "\n" for record in records))
        return 0
    if template:
        try:
            lines = [render_template(template, ps_context(record)) for record in records]
        except ValueError as error:
            err(f"{error}\n")
            return 1
        out("".join(line + "\n" for line in lines))
        return 0
    out("CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES\n")
    for record in records:
        context = ps_context(record)
        out(f"{context['ID']}   {context['Image']}   {context['Command']}   {context['RunningFor']}   "
            f"{context['Status']}      {context['Names']}\n")  # fmt: skip
    return 0


def docker_inspect(call: Call, args: list[str], kinds: tuple[str, ...]) -> int:
    """Answer docker inspect for objects of the given kinds; exit 1 naming each target not found."""
    template = option_value(args, ("-f", "--format")) or ""
    kind_option = option_value(args, ("--type",))
    if kind_option in ("container", "image"):
        kinds = (kind_option,)
    _, targets = options_and_words(args, ("-f", "--format", "--type"))
    found, missing = [], []
    for target in targets:
        record = find_object(call, target, kinds)
        if record is None:
            missing.append(target)
        else:
            found.append(record)
    try:
        if template:
            out("".join(render_template(template, record) + "\n" for record in found))
        else:
            import json

            out(json.dumps(found, indent=4) + "\n")
    except ValueError as error:
        err(f"{error}\n")
        return 1
    what = kinds[0] if len(kinds) == 1 else "object"
    for target in missing:
        err(f"Error: No such {what}: {target}\n")
    return 1 if missing else 0
