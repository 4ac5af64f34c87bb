"""Fixtures: each engine, serving TCP or HTTP on loopback from a background thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_harness import RunningServer, start_server


@pytest.fixture(params=["epoll", "asyncio"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tcp_server(engine_name: str) -> Iterator[RunningServer]:
    yield from start_server(engine_name, "tcp")


@pytest.fixture
def http_server(engine_name: str) -> Iterator[RunningServer]:
    yield from start_server(engine_name, "http")
