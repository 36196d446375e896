"""Provider clients, built from the environment: base URL and token per provider.

This module imports no HTTP library: the client modules (and requests) are imported inside
``provider_named`` so that `opsguard --help` and `opsguard hosts` stay light.

| provider  | token variable        | URL variable        | default URL                        |
|-----------|-----------------------|---------------------|------------------------------------|
| vultr     | ``VULTR_API_KEY``       | ``VULTR_API_URL``     | https://api.vultr.com/v2           |
| hostinger | ``HOSTINGER_API_TOKEN`` | ``HOSTINGER_API_URL`` | https://developers.hostinger.com   |
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from opsguard.errors import ConfigError
from opsguard.providers.base import ProviderCapabilities

if TYPE_CHECKING:
    from opsguard.inventory import Host
    from opsguard.providers.base import Provider

# name -> (token variable, URL variable, default URL); kept here so nothing heavy is imported.
PROVIDER_ENVIRONMENT: dict[str, tuple[str, str, str]] = {
    "vultr": ("VULTR_API_KEY", "VULTR_API_URL", "https://api.vultr.com/v2"),
    "hostinger": ("HOSTINGER_API_TOKEN", "HOSTINGER_API_URL", "https://developers.hostinger.com"),
}


# name -> what its snapshots and restores are like (see ProviderCapabilities); no client import needed.
CAPABILITIES: dict[str, ProviderCapabilities] = {
    "vultr": ProviderCapabilities(single_snapshot_slot=False, tagged_snapshots=True, backup_schedule=True,
                                  restore_status=False, instance_id="uuid", instance_id_name="Vultr instance id"),
    "hostinger": ProviderCapabilities(single_snapshot_slot=True, tagged_snapshots=False, backup_schedule=False,
                                      restore_status=True, instance_id="integer",
                                      instance_id_name="Hostinger VM id"),
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def provider_names() -> tuple[str, ...]:
    """Return the names of every provider opsguard has a client for."""
    return tuple(CAPABILITIES)


def instance_id_problem(name: str, value: object) -> str | None:
    """Given a provider name and an inventory instance id, return None if it has the provider's form, else the form.

    Canonical 8-4-4-4-12 UUIDs only (uuid.UUID() also accepts braces, "urn:uuid:" and misplaced hyphens).
    """
    kind, called = capabilities(name).instance_id, capabilities(name).instance_id_name
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return f"is not a {called} (a positive integer, unquoted)"
        return None
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        return f"is not a {called} (a UUID string)"
    return None


def instance_id_text(name: str, value: object) -> str:
    """Given a provider name and an instance id, return it as an inventory value (quoted or not)."""
    return str(value) if capabilities(name).instance_id == "integer" else f'"{value}"'


def capabilities(name: str) -> ProviderCapabilities:
    """Given a provider name, return its capabilities; raise ConfigError if the provider is unknown."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r} (known: {', '.join(CAPABILITIES)})") from None


def token_variable(name: str) -> str:
    """Given a provider name, return the environment variable holding its token; raise ConfigError if unknown."""
    try:
        return PROVIDER_ENVIRONMENT[name][0]
    except KeyError:
        known = ", ".join(PROVIDER_ENVIRONMENT)
        raise ConfigError(f"unknown provider {name!r} (known: {known})") from None


def token_problem(value: str) -> str | None:
    """Given a token value, return what makes it unusable as a bearer token, or None if it is fine.

    A token is visible ASCII only (``!`` to ``~``): every provider token is, and anything else is
    a copy-paste or quoting mistake (a stray newline, a Windows line ending, a non-breaking
    space). The answer never includes the value or any part of it.
    """
    if value != value.strip():
        return "has leading or trailing whitespace (a line break or a space)"
    for character in value:
        code = ord(character)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return "contains a control character (a line break, tab or similar)"
        if code > 0x7F:
            return "contains a non-ASCII character"
        if character == " ":
            return "contains a space"
    return None


def check_token(variable: str, value: str, *, for_host: str | None = None) -> str:
    """Given a token variable's name and value, return the value; raise ConfigError naming the
    variable (never showing the value) if it is not visible ASCII.

    SAFETY: checked before any request. requests refuses a header value with a line break and
    puts the whole value ("Bearer <token>") into its error message.
    """
    problem = token_problem(value)
    if problem is None:
        return value
    needed = f" (needed for host {for_host})" if for_host else ""
    raise ConfigError(
        f"{variable}{needed} is not a usable API token: it {problem}; check how it was set "
        "(a token is printable ASCII without spaces; the value is not shown)"
    )


def token_is_set(name: str) -> bool:
    """Given a provider name, return whether its token variable is set and not empty."""
    return bool(os.environ.get(token_variable(name), "").strip())


def provider_named(name: str, *, for_host: str | None = None, **options: Any) -> Provider:
    """Given a provider name (and the host it is for, for messages), return its client built from the environment.

    ``options`` go to the client's constructor (timeout, retry, sleep, ...). Raise ConfigError if
    the provider is unknown, its token variable is missing or empty, or the token is not
    visible ASCII (see check_token).
    """
    variable = token_variable(name)
    token = os.environ.get(variable, "")
    if not token.strip():
        needed = f" (needed for host {for_host})" if for_host else ""
        raise ConfigError(f"{variable} is not set{needed}")
    check_token(variable, token, for_host=for_host)
    _, url_variable, default_url = PROVIDER_ENVIRONMENT[name]
    base_url = os.environ.get(url_variable, "").strip() or default_url
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError(f"{url_variable}={base_url!r} is not an http(s) URL")
    if base_url.startswith("http://") and not is_loopback_url(base_url):
        # SAFETY: the token travels in a header; plain http only to this machine (the simulator).
        raise ConfigError(f"{url_variable}: plain http is allowed only to a loopback address; use https")
    if name == "vultr":
        from opsguard.providers.vultr import VultrClient

        return VultrClient(base_url, token, **options)
    from opsguard.providers.hostinger import HostingerClient

    return HostingerClient(base_url, token, **options)


def is_loopback_url(url: str) -> bool:
    """Given a URL, return whether its host is this machine (localhost or a loopback IP)."""
    import ipaddress
    from urllib.parse import urlsplit

    hostname = urlsplit(url).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def provider_for(host: Host, **options: Any) -> Provider:
    """Given an inventory host, return the client of its provider; raise ConfigError if its token is not set."""
    return provider_named(host.provider, for_host=host.name, **options)
