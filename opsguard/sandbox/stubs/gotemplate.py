"""Go templates, as docker --format renders them: fields, index, join, json, lower and upper.

Enough of text/template for the formats scripts use: {{.Field.Sub}}, {{json .X}},
{{join .List ","}}, {{index .Map "key"}}, {{lower .X}} / {{upper .X}}, and "json" for {{json .}}.
A missing field prints "<no value>" as Go does; an unknown function or a malformed action raises
ValueError with docker's message.
"""

from __future__ import annotations

from .core import to_json

# Startup time matters (every stubbed command pays it): no typing, json or re at import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def render_template(template: str, value: Any) -> str:
    """Given a docker --format template and an object, return the text; raise ValueError for a malformed one."""
    if template == "json":
        template = "{{json .}}"
    parts = []
    position = 0
    while True:
        start = template.find("{{", position)
        if start < 0:
            parts.append(template[position:])
            return "".join(parts)
        end = template.find("}}", start)
        if end < 0:
            raise ValueError("template: :1: unclosed action")
        parts.append(template[position:start])
        parts.append(template_action(template[start + 2 : end].strip("- \t"), value))
        position = end + 2


def template_action(action: str, value: Any) -> str:
    """Given the text of one {{action}} and the object, return what it prints; raise ValueError if unknown."""
    import shlex

    words = shlex.split(action)
    if not words:
        raise ValueError("template: :1: missing value for command")
    function, arguments = words[0], words[1:]
    if function.startswith("."):
        return go_text(field(value, function))
    if function == "json" and len(arguments) == 1:
        return to_json(field(value, arguments[0]), compact=True)
    if function == "join" and len(arguments) == 2:
        items = field(value, arguments[0])
        return arguments[1].join(go_text(item) for item in (items or []))
    if function == "index" and len(arguments) == 2:
        mapping = field(value, arguments[0])
        if isinstance(mapping, dict):
            return go_text(mapping.get(arguments[1], ""))  # Go: a missing map key gives the zero value, ""
        return go_text(None)
    if function in ("lower", "upper") and len(arguments) == 1:
        text = go_text(field(value, arguments[0]))
        return text.lower() if function == "lower" else text.upper()
    raise ValueError(f'template: :1: function "{function}" not defined')


def field(value: Any, path: str) -> Any:
    """Given an object and a path such as .Config.Image (or "."), return the value there (None when absent)."""
    for name in path.strip(".").split("."):
        if not name:
            continue
        value = value.get(name) if isinstance(value, dict) else None
    return value


def go_text(value: Any) -> str:
    """Given a value, return it as Go's text/template prints it."""
    if value is None:
        return "<no value>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(item)}" for key, item in sorted(value.items())) + "]"
    return str(value)
