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
from typing import TYPE_CHECKING, Any

from opsguard.errors import ConfigError

if TYPE_CHECKING:
    from opsguard.inventory import Host
    from opsguard.providers.base import Provider

# name -> (token variable, URL variable, default URL); kept here so nothing heavy is imported.
PROVIDER_ENVIRONMENT: dict[str, tuple[str, str, str]] = {
    "vultr": ("VULTR_API_KEY", "VULTR_API_URL", "https://api.vultr.com/v2"),
    "hostinger": ("HOSTINGER_API_TOKEN", "HOSTINGER_API_URL", "https://developers.hostinger.com"),
}


def token_variable(name: str) -> str:
    """Given a provider name, return the environment variable holding its token; raise ConfigError if unknown."""
    try:
        return PROVIDER_ENVIRONMENT[name][0]
    except KeyError:
        known = ", ".join(PROVIDER_ENVIRONMENT)
        raise ConfigError(f"unknown provider {name!r} (known: {known})") from None


def token_is_set(name: str) -> bool:
    """Given a provider name, return whether its token variable is set and not empty."""
    return bool(os.environ.get(token_variable(name), "").strip())


def provider_named(name: str, *, for_host: str | None = None, **options: Any) -> Provider:
    """Given a provider name (and the host it is for, for messages), return its client built from the environment.

    ``options`` go to the client's constructor (timeout, retry, sleep, ...). Raise ConfigError if
    the provider is unknown or its token variable is missing or empty.
    """
    variable = token_variable(name)
    token = os.environ.get(variable, "").strip()
    if not token:
        needed = f" (needed for host {for_host})" if for_host else ""
        raise ConfigError(f"{variable} is not set{needed}")
    _, url_variable, default_url = PROVIDER_ENVIRONMENT[name]
    base_url = os.environ.get(url_variable, "").strip() or default_url
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError(f"{url_variable}={base_url!r} is not an http(s) URL")
    if base_url.startswith("http://") and not _is_loopback_url(base_url):
        # SAFETY: the token travels in a header; plain http only to this machine (the simulator).
        raise ConfigError(f"{url_variable}: plain http is allowed only to a loopback address; use https")
    if name == "vultr":
        from opsguard.providers.vultr import VultrClient

        return VultrClient(base_url, token, **options)
    from opsguard.providers.hostinger import HostingerClient

    return HostingerClient(base_url, token, **options)


def _is_loopback_url(url: str) -> bool:
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
