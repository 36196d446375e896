"""A provider token from the environment must be visible ASCII: anything else is refused by variable name (no sockets).

A value with a line break would otherwise reach requests, whose error message carries the whole
header value ("Bearer <token>"): the check runs where the token is read, before any request.
"""

from __future__ import annotations

import pytest

from opsguard.errors import ConfigError
from opsguard.providers import check_token, provider_named

# Each bad value is SECRET-marked on both sides of the bad character, so any part of it that
# reached the message would be found.
BAD_VALUES = {
    "line feed": "SECRETleft\nSECRETright",
    "carriage return": "SECRETleft\rSECRETright",
    "tab": "SECRETleft\tSECRETright",
    "NUL": "SECRETleft\x00SECRETright",
    "escape": "SECRETleft\x1bSECRETright",
    "DEL": "SECRETleft\x7fSECRETright",
    "C1 next line": "SECRETleft\x85SECRETright",
    "space inside": "SECRETleft SECRETright",
    "leading space": " SECRETleftSECRETright",
    "trailing newline": "SECRETleftSECRETright\n",
    "trailing carriage return": "SECRETleftSECRETright\r",
    "non-ASCII letter": "SECRETleft\u00e9SECRETright",
    "line separator": "SECRETleft\u2028SECRETright",
    "no-break space": "SECRETleft\u00a0SECRETright",
}
# The environment cannot hold a NUL, so that one is only checked through check_token.
ENVIRONMENT_VALUES = {kind: value for kind, value in BAD_VALUES.items() if "\x00" not in value}


@pytest.mark.parametrize(("provider", "variable"), [("vultr", "VULTR_API_KEY"), ("hostinger", "HOSTINGER_API_TOKEN")])
@pytest.mark.parametrize("value", list(ENVIRONMENT_VALUES.values()), ids=list(ENVIRONMENT_VALUES))
def test_provider_named_malformed_token_raises_config_error_naming_variable_not_value(
    monkeypatch: pytest.MonkeyPatch, provider: str, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        provider_named(provider, for_host="chat")
    message = str(caught.value)
    assert caught.value.exit_code == 78
    assert message.startswith(f"{variable} ")
    assert "chat" in message
    assert "SECRET" not in message and "SECRET" not in repr(caught.value.args)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize(
    "value",
    [
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "hst_abc.DEF-123_~+/==",
        "a!b#c$d%e&f'g(h)i*j,k:l;m<n>o?p@q[r]s^t`u{v|w}x",
    ],
)
def test_check_token_accepts_visible_ascii_tokens(value: str) -> None:
    assert check_token("VULTR_API_KEY", value) == value


@pytest.mark.parametrize(("kind", "value"), list(BAD_VALUES.items()))
def test_check_token_says_what_is_wrong_without_the_value(kind: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_token("HOSTINGER_API_TOKEN", value)
    message = str(caught.value)
    assert "HOSTINGER_API_TOKEN" in message and "not shown" in message
    assert "SECRET" not in message
    expected = {
        "space inside": "space",
        "leading space": "whitespace",
        "trailing newline": "whitespace",
        "trailing carriage return": "whitespace",
        "non-ASCII letter": "non-ASCII",
        "line separator": "non-ASCII",
        "no-break space": "non-ASCII",
    }.get(kind, "control character")
    assert expected in message, message


@pytest.mark.parametrize(
    ("client_module", "variable"), [("vultr", "VULTR_API_KEY"), ("hostinger", "HOSTINGER_API_TOKEN")]
)
def test_client_constructed_directly_refuses_malformed_token(client_module: str, variable: str) -> None:
    import importlib

    module = importlib.import_module(f"opsguard.providers.{client_module}")
    client_class = module.VultrClient if client_module == "vultr" else module.HostingerClient
    with pytest.raises(ConfigError, match=variable) as caught:
        client_class("http://127.0.0.1:1/api", "SECRETleft\nSECRETright")
    assert "SECRET" not in str(caught.value)
