"""The hand-written overlay on the vendored OpenAPI excerpts: only where the published text is silent or wrong.

Every entry says why it exists and which public source backs it. The excerpts themselves
(tests/contracts/openapi/*.json) are never edited by hand: test_contract_excerpts_are_exactly_the_cut
checks it. Sources named below:

- Vultr description: tests/contracts/openapi/vultr.json (vultr/vultr-csharp blob/v0.0.1.json,
  info.version 2.0, commit 06251bc0f417c6b2e29d3f596bb83eeac9722d0b);
- govultr: vultr/govultr v3.32.0, commit 9ee451b0dcec73936d0ed318b847d98d60f986dc (Vultr's own Go
  client, which decodes the live answers into these structs);
- Hostinger description: tests/contracts/openapi/hostinger.json (hostinger/api openapi.json,
  info.version 1.42.5, commit 3859515f4529b43e178ce4c69e7120d8de7ec721).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Amendment:
    """One change to a vendored excerpt: set ``value`` at the JSON pointer ``pointer``, for the reason ``why``."""

    api: str
    pointer: str  # the last member is created or replaced; every member before it must exist
    value: Any
    why: str


AMENDMENTS: tuple[Amendment, ...] = (
    # -- Vultr: fields the examples and govultr carry but the component schemas do not list -------
    Amendment(
        "vultr",
        "/components/schemas/snapshot/properties/compressed_size",
        {"type": "integer", "description": "The compressed snapshot size in bytes."},
        "Every snapshot example in the description has compressed_size, and so does govultr's Snapshot "
        'struct (snapshot.go, `json:"compressed_size"`); the component schema omits it.',
    ),
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/v6_main_ip",
        {"type": "string", "description": "The main IPv6 address ('' when the instance has none)."},
        "The component schema lists an array v6_networks instead, but every instance example and govultr's "
        "Instance struct (instance.go) carry v6_main_ip, v6_network and v6_network_size; opsguard reads v6_main_ip.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/v6_network",
        {"type": "string", "description": "The IPv6 subnet ('' when the instance has none)."},
        "As v6_main_ip: in every instance example and in govultr's Instance struct, not in the component schema.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/v6_network_size",
        {"type": "integer", "description": "The IPv6 network size in bits (0 when the instance has none)."},
        "As v6_main_ip: in every instance example and in govultr's Instance struct, not in the component schema.",
    ),
    # -- Vultr: value lists the description gives as prose, not as enum --------------------------
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/status/enum",
        ["active", "pending", "suspended", "resizing"],
        "The description lists the values as a bullet list in the property's description text.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/power_status/enum",
        ["running", "stopped"],
        "The description lists the values as a bullet list in the property's description text.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/instance/properties/server_status/enum",
        ["none", "locked", "installingbooting", "ok"],
        "The description lists the values as a bullet list in the property's description text.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/snapshot/properties/status/enum",
        ["pending", "complete", "deleted"],
        "The description lists the values as a bullet list in the property's description text.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/backup/properties/status/enum",
        ["complete", "pending"],
        "The description lists the values as a bullet list in the property's description text.",
    ),
    Amendment(
        "vultr",
        "/components/schemas/backup-schedule/properties/type/enum",
        ["daily", "weekly", "monthly", "daily_alt_even", "daily_alt_odd"],
        "The description lists the values as a table in the property's description text.",
    ),
    # -- Vultr: the error body has no schema at all -----------------------------------------------
    Amendment(
        "vultr",
        "/components/schemas/error",
        {
            "title": "error",
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "minLength": 1},
                "status": {"type": "integer", "description": "The HTTP status again."},
            },
        },
        "The operations describe error answers by status only. info.description ('Response Codes') says "
        "'All 4xx errors will return a JSON response object with an `error` attribute'. The `status` member "
        "and 5xx bodies of the same shape are not in the description; they are seen in public reports of "
        "real answers, e.g. github.com/vultr/ansible-collection-vultr/issues/113: "
        '{"error":"Unable to destroy server: Unable to remove VM: Server is currently locked","status":500}.',
    ),
)

# Error answers the operations do not describe: which schema their body follows.
ERROR_BODIES: dict[str, dict[str, str]] = {
    # Every Vultr error (the description gives none a body; see the "error" amendment above).
    "vultr": {"default": "#/components/schemas/error"},
    # The Hostinger operations describe only 401 and 500. info.description ('Errors') says every error
    # answer carries a message and a correlation_id; 422 has its own published response (used by
    # other operations of the same description) that adds `errors`.
    "hostinger": {
        "422": "#/components/responses/Common.Response.UnprocessableContentResponse",
        "default": "#/components/responses/Common.Response.ErrorResponse",
    },
}

# Properties a published schema lists that a real GET answer does not carry, by component title.
# The simulator need not send them (it may); every other listed property must be in its answers.
NOT_IN_ANSWERS: dict[str, dict[str, str]] = {
    "instance": {
        "default_password": "The description: 'Only available for ten minutes after deployment' (a create answer).",
        "tag": "Deprecated in the description ('Use `tags` instead') and absent from every instance example.",
        "v6_networks": "Absent from every instance example and from govultr's Instance struct (see v6_main_ip).",
    },
}

# Answers the published descriptions do not describe at all. The clients accept each form; the
# simulator serves them as fault modes (faults.no_snapshot) and the contract tests check the forms.
UNDOCUMENTED_ANSWERS = {
    "hostinger GET /api/vps/v1/virtual-machines/{virtualMachineId}/snapshot for a VM without a snapshot": (
        "Only 200 (a SnapshotResource), 401 and 500 are described. opsguard's client treats a 404, an empty "
        "body and {} as 'no snapshot' (opsguard/providers/hostinger.py current_snapshot)."
    ),
}
