"""provider_for / provider_named: tokens and URLs from the environment, lazily imported clients (no sockets)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsguard.errors import ConfigError
from opsguard.inventory import Host
from opsguard.providers import provider_for, provider_named, token_is_set


def _host(name: str, provider: str) -> Host:
    return Host(
        name=name, address="127.0.0.2", port=22, user="root", provider=provider, instance=None,
        roles=(), remote_lock="/run/lock/opsguard", backups=None,
    )  # fmt: skip


@pytest.mark.parametrize(("provider", "variable"), [("vultr", "VULTR_API_KEY"), ("hostinger", "HOSTINGER_API_TOKEN")])
def test_provider_for_missing_token_raises_config_error_naming_variable_and_host(provider: str, variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        provider_for(_host("chat", provider))
    assert str(caught.value) == f"{variable} is not set (needed for host chat)"
    assert caught.value.exit_code == 78


def test_provider_named_empty_token_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", "   ")
    assert not token_is_set("vultr")
    with pytest.raises(ConfigError, match=r"^VULTR_API_KEY is not set$"):
        provider_named("vultr")


def test_provider_named_unknown_provider_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'linode'"):
        provider_named("linode")


def test_provider_named_builds_client_for_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTINGER_API_TOKEN", "tok-SECRET-factory")
    monkeypatch.setenv("HOSTINGER_API_URL", "http://127.0.0.1:1/hostinger/")
    client = provider_named("hostinger")
    assert client.name == "hostinger"
    assert "127.0.0.1:1/hostinger" in repr(client)
    assert "tok-SECRET-factory" not in repr(client)


def test_provider_named_default_urls_are_the_real_apis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", "k")
    monkeypatch.setenv("HOSTINGER_API_TOKEN", "t")
    assert "https://api.vultr.com/v2" in repr(provider_named("vultr"))
    assert "https://developers.hostinger.com" in repr(provider_named("hostinger"))


def test_provider_named_rejects_non_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULTR_API_KEY", "k")
    monkeypatch.setenv("VULTR_API_URL", "ftp://example.invalid")
    with pytest.raises(ConfigError, match="VULTR_API_URL"):
        provider_named("vultr")


def test_providers_package_imports_no_http_library() -> None:
    code = "import sys, opsguard.providers, opsguard.providers.base; print('requests' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
