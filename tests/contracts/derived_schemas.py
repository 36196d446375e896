"""JSON Schemas derived from the vendored OpenAPI excerpts (plus the overlay), for the contract tests.

OpenAPI 3.0 schema objects are almost JSON Schema; the differences handled here:
``$ref`` is resolved inline (a component keeps its name as ``title``), ``nullable: true`` adds
``null`` to the type (or wraps the schema in ``anyOf``), and ``example`` / ``x-*`` are dropped.
Nothing is tightened: no ``additionalProperties: false`` is ever added, because the real APIs
send fields the descriptions do not list, and neither description marks a response field
``required`` (so a schema alone would accept ``{}``). :func:`missing_published_properties` is the
stronger check the tests add: every property the description lists must be in the answer.
"""

from __future__ import annotations

import copy
import functools
import re
from datetime import datetime
from typing import Any

import jsonschema

from tests.contracts.excerpts import load_excerpt
from tests.contracts.overlay import AMENDMENTS, ERROR_BODIES, NOT_IN_ANSWERS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_DROPPED = ("example", "nullable", "discriminator", "xml", "externalDocs")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # jsonschema checks "date-time" only with an optional package; this is RFC 3339 section 5.6.
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # raises on e.g. month 13
    return True


@functools.cache
def amended_excerpt(api: str) -> dict[str, Any]:
    """Given "vultr" or "hostinger", return its vendored excerpt with the overlay's amendments applied."""
    document = load_excerpt(api)
    for amendment in AMENDMENTS:
        if amendment.api == api:
            *parents, last = _pointer_parts(amendment.pointer)
            node: Any = document
            for part in parents:
                node = node[part]
            node[last] = copy.deepcopy(amendment.value)
    return document


def _pointer_parts(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _resolve(document: dict[str, Any], reference: str) -> Any:
    if not reference.startswith("#"):
        raise ValueError(f"only local references are supported, not {reference!r}")
    node: Any = document
    for part in _pointer_parts(reference[1:]):
        node = node[part]
    return node


def to_json_schema(node: Any, document: dict[str, Any]) -> Any:
    """Given an OpenAPI 3.0 schema object and its document, return the equivalent JSON Schema (draft 2020-12)."""
    if not isinstance(node, dict):
        return copy.deepcopy(node)
    if "$ref" in node:
        reference = node["$ref"]
        converted = to_json_schema(_resolve(document, reference), document)
        if reference.startswith("#/components/schemas/") and isinstance(converted, dict):
            converted = {"title": reference.rsplit("/", 1)[1], **{k: v for k, v in converted.items() if k != "title"}}
        return converted
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-"):
            continue
        if key == "properties":
            result[key] = {name: to_json_schema(member, document) for name, member in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            result[key] = to_json_schema(value, document)
        elif key in ("oneOf", "anyOf", "allOf"):
            result[key] = [to_json_schema(member, document) for member in value]
        else:
            result[key] = copy.deepcopy(value)
    if node.get("nullable") is True:
        result = _nullable(result)
    return result


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        widened = dict(schema, type=[kind, "null"])
        if "enum" in widened:
            widened["enum"] = [*widened["enum"], None]
        return widened
    return {"anyOf": [schema, {"type": "null"}]}


def response_schema(api: str, method: str, path: str, status: int) -> dict[str, Any] | None:
    """Given an operation (path as the description spells it) and an answer status, return the body's JSON Schema.

    Return None when the description says the answer has no body (e.g. 204). An error status
    the operation does not describe gets the overlay's error body. Raise KeyError if the
    operation, or a success status, is not in the description.
    """
    document = amended_excerpt(api)
    operation = document["paths"][path][method.lower()]
    described = operation["responses"].get(str(status))
    if isinstance(described, dict) and "$ref" in described:
        described = _resolve(document, described["$ref"])
    if isinstance(described, dict) and "content" in described:
        return _schema_document(described["content"]["application/json"]["schema"], document)
    if status >= 400:
        errors = ERROR_BODIES[api]
        target = _resolve(document, errors.get(str(status), errors["default"]))
        if "content" in target:
            target = target["content"]["application/json"]["schema"]
        return _schema_document(target, document)
    if described is None:
        raise KeyError(f"{api} {method.upper()} {path} does not describe a {status} answer")
    return None


def _schema_document(node: Any, document: dict[str, Any]) -> dict[str, Any]:
    schema = to_json_schema(node, document)
    return {"$schema": DRAFT, **schema}


def validate(schema: dict[str, Any], body: Any) -> None:
    """Given a derived schema and a decoded answer, raise jsonschema.ValidationError if the answer does not fit."""
    jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER).validate(body)


def missing_published_properties(schema: Any, value: Any, where: str = "$") -> list[str]:
    """Given a derived schema and a decoded answer, return the path of every listed property the answer lacks.

    Listed means in ``properties`` or ``required``. Walks nested objects and arrays; a property
    the overlay's NOT_IN_ANSWERS exempts for that component (by title) may be absent unless required. A null value (where the schema allows it) has no properties.
    """
    if not isinstance(schema, dict) or value is None:
        return []
    missing: list[str] = []
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(keyword, []):
            if branch != {"type": "null"}:
                missing.extend(missing_published_properties(branch, value, where))
    if isinstance(value, dict):
        exempt = NOT_IN_ANSWERS.get(str(schema.get("title")), {})
        listed = dict.fromkeys([*schema.get("properties", {}), *schema.get("required", [])])
        for name in listed:
            if name in exempt and name not in schema.get("required", []):
                continue
            if name not in value:
                missing.append(f"{where}.{name}")
            else:
                member = schema.get("properties", {}).get(name)
                missing.extend(missing_published_properties(member, value[name], f"{where}.{name}"))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            missing.extend(missing_published_properties(schema["items"], item, f"{where}[{index}]"))
    return missing
