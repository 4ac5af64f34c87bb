"""ServerConfig and ServerLimits validation."""

from __future__ import annotations

from typing import Any

import pytest

from connscale.core.protocol.limits import ServerLimits
from connscale.errors import ConfigurationError
from connscale.server.config import ServerConfig


@pytest.mark.parametrize(
    "options",
    [
        {"transport": "udp"},
        {"engine": "kqueue"},
        {"port": 70000},
        {"workers": 0},
        {"http_path": "mcp"},
        {"loop": "x"},
    ],
)
def test_bad_config(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ServerConfig(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"max_frame_bytes": 0},
        {"max_json_depth": -1},
        {"idle_timeout": 0},
        {"write_low_water": 10, "write_high_water": 5},
        {"max_pending_per_session": True},
    ],
)
def test_bad_limits(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ServerLimits(**options)


def test_connection_limit() -> None:
    assert ServerLimits().connection_limit(20_000) == 19_936
    assert ServerLimits(max_connections=100).connection_limit(20_000) == 100


def test_uvloop_choice() -> None:
    assert not ServerConfig(loop="asyncio", engine="asyncio").use_uvloop()
    assert not ServerConfig(engine="epoll").use_uvloop()
    pytest.importorskip("uvloop")
    assert ServerConfig(engine="asyncio").use_uvloop()


def test_bearer_token_stays_out_of_repr() -> None:
    token = b"s3cret-token-" + b"x" * 20
    config = ServerConfig(transport="http", bearer_token=token)
    assert config.bearer_token == token
    text = repr(config) + str(config)
    assert token.decode() not in text and "s3cret" not in text
    assert "bearer_token" not in text


@pytest.mark.parametrize(
    "options",
    [
        {"bearer_token": b"0123456789abcdef"},  # needs transport http
        {"transport": "http", "bearer_token": b""},
        {"transport": "http", "bearer_token": "0123456789abcdef"},  # str, not bytes
    ],
)
def test_bad_bearer_token(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ServerConfig(**options)
