"""The vendored excerpts of the providers' published OpenAPI descriptions, and how they are cut.

tests/contracts/openapi/<api>.json holds, for each provider, only the operations the simulator
serves (every one opsguard's clients call, plus the few the simulator offers for tests), the
components they reference, the document's ``info`` (its prose holds the error, paging and rate
limit rules) and its security schemes. The ``x-opsguard-excerpt`` member says where it was cut
from: repository, path, commit, ``info.version`` and the date it was taken.

To refresh an excerpt from a newer published description (no network access is needed here:
fetch the provider's repository yourself)::

    python -m tests.contracts.excerpts vultr FULL_SPEC.json --repository vultr/vultr-csharp \\
        --path blob/v0.0.1.json --commit <40 hex> --source-date YYYY-MM-DD [--cross-checked "..."]

then run tests/contracts: the derived schemas and the simulator are checked against the new text.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXCERPTS = Path(__file__).resolve().parent / "openapi"
HEADER = "x-opsguard-excerpt"
HOSTINGER_VMS = "/api/vps/v1/virtual-machines"

# (method, path as the published description spells it) of every operation the simulator serves.
# "used" = an opsguard client calls it; the others exist for tests (delete, restore from a backup).
OPERATIONS: dict[str, dict[tuple[str, str], str]] = {
    "vultr": {
        ("get", "/instances"): "used",
        ("get", "/instances/{instance-id}"): "used",
        ("get", "/instances/{instance-id}/backup-schedule"): "used",
        ("post", "/instances/{instance-id}/restore"): "used",
        ("get", "/snapshots"): "used",
        ("post", "/snapshots"): "used",
        ("get", "/snapshots/{snapshot-id}"): "used",
        ("delete", "/snapshots/{snapshot-id}"): "simulator only",
        ("get", "/backups"): "used",
    },
    "hostinger": {
        ("get", HOSTINGER_VMS): "used",
        ("get", f"{HOSTINGER_VMS}/{{virtualMachineId}}"): "used",
        ("get", f"{HOSTINGER_VMS}/{{virtualMachineId}}/snapshot"): "used",
        ("post", f"{HOSTINGER_VMS}/{{virtualMachineId}}/snapshot"): "used",
        ("delete", f"{HOSTINGER_VMS}/{{virtualMachineId}}/snapshot"): "simulator only",
        ("post", f"{HOSTINGER_VMS}/{{virtualMachineId}}/snapshot/restore"): "used",
        ("get", f"{HOSTINGER_VMS}/{{virtualMachineId}}/actions"): "used",
        ("get", f"{HOSTINGER_VMS}/{{virtualMachineId}}/actions/{{actionId}}"): "used",
        ("get", f"{HOSTINGER_VMS}/{{virtualMachineId}}/backups"): "used",
        ("post", f"{HOSTINGER_VMS}/{{virtualMachineId}}/backups/{{backupId}}/restore"): "simulator only",
    },
}

# Components no kept operation references but the overlay uses (tests/contracts/overlay.py).
EXTRA_COMPONENTS: dict[str, tuple[str, ...]] = {
    "vultr": (),
    "hostinger": ("#/components/responses/Common.Response.UnprocessableContentResponse",),
}

# Bulky or irrelevant to the wire format: request samples in other languages, security lists.
_DROPPED_OPERATION_KEYS = ("x-codeSamples", "security")


def load_excerpt(api: str) -> dict[str, Any]:
    """Given "vultr" or "hostinger", return its vendored excerpt; raise FileNotFoundError if absent."""
    document: dict[str, Any] = json.loads((EXCERPTS / f"{api}.json").read_text(encoding="utf-8"))
    return document


def make_excerpt(spec: dict[str, Any], api: str, header: dict[str, Any]) -> dict[str, Any]:
    """Given a full (or already cut) OpenAPI document, an API name and the provenance header, return the excerpt.

    Raise KeyError naming the operation if the document lacks one the simulator serves.
    """
    wanted = OPERATIONS[api]
    paths: dict[str, dict[str, Any]] = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (method, path) in wanted:
                kept = {key: value for key, value in operation.items() if key not in _DROPPED_OPERATION_KEYS}
                paths.setdefault(path, {})[method] = copy.deepcopy(kept)
    absent = [f"{method.upper()} {path}" for method, path in wanted if method not in paths.get(path, {})]
    if absent:
        raise KeyError(f"the {api} description has no {', '.join(absent)}")
    references = _closure(spec, [paths, *(_resolve(spec, ref) for ref in EXTRA_COMPONENTS[api])], EXTRA_COMPONENTS[api])
    components: dict[str, dict[str, Any]] = {}
    for kind, members in spec.get("components", {}).items():
        for name, member in members.items():
            if f"#/components/{kind}/{name}" in references or kind == "securitySchemes":
                components.setdefault(kind, {})[name] = copy.deepcopy(member)
    excerpt: dict[str, Any] = {HEADER: header, "openapi": spec["openapi"]}
    excerpt["info"] = {key: spec["info"][key] for key in ("title", "version", "description") if key in spec["info"]}
    if "servers" in spec:
        excerpt["servers"] = spec["servers"]
    excerpt["paths"] = paths
    excerpt["components"] = components
    return excerpt


def _closure(spec: dict[str, Any], roots: list[Any], extra: tuple[str, ...]) -> set[str]:
    """Given a document and nodes of it, return every $ref reachable from them (plus ``extra``)."""
    found: set[str] = set(extra)
    pending = list(roots)
    while pending:
        for reference in _references(pending.pop()):
            if reference not in found:
                found.add(reference)
                pending.append(_resolve(spec, reference))
    return found


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _resolve(spec: dict[str, Any], reference: str) -> Any:
    """Given a document and a local reference ("#/components/schemas/x"), return the node it names."""
    if not reference.startswith("#/"):
        raise ValueError(f"only local references are supported, not {reference!r}")
    node: Any = spec
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def main(argv: list[str] | None = None) -> int:
    """Given command-line arguments, write tests/contracts/openapi/<api>.json from a full description; return 0."""
    parser = argparse.ArgumentParser(description="Cut the vendored excerpt of a provider's OpenAPI description.")
    parser.add_argument("api", choices=sorted(OPERATIONS))
    parser.add_argument("spec", type=Path, help="the full published OpenAPI document (JSON)")
    parser.add_argument("--repository", required=True, help="owner/name of the public repository it came from")
    parser.add_argument("--path", required=True, help="its path in that repository")
    parser.add_argument("--commit", required=True, help="the commit it was read at (40 hex digits)")
    parser.add_argument("--source-date", required=True, help="date of the commit that last changed the file")
    parser.add_argument("--cross-checked", action="append", default=[], help="another source compared with it")
    arguments = parser.parse_args(argv)
    spec = json.loads(arguments.spec.read_text(encoding="utf-8"))
    header = {
        "source_repository": arguments.repository,
        "source_path": arguments.path,
        "source_commit": arguments.commit,
        "source_file_last_changed": arguments.source_date,
        "info_version": spec["info"]["version"],
        "taken_on": datetime.now(UTC).strftime("%Y-%m-%d"),
        "operations": {f"{method.upper()} {path}": use for (method, path), use in OPERATIONS[arguments.api].items()},
        "cross_checked": arguments.cross_checked,
    }
    excerpt = make_excerpt(spec, arguments.api, header)
    target = EXCERPTS / f"{arguments.api}.json"
    target.write_text(json.dumps(excerpt, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
