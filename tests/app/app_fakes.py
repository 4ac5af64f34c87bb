"""A fake ``CallContext`` that records what a running request sends to its client, and
``settle``, which awaits a surface's result the way the engines' call runner does."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any

from connscale.core.protocol.surface import ClientInfo


class FakeCall:
    """Records notifications and server-to-client requests; answers from ``answers``.

    An answer that is an exception is raised instead of returned.
    """

    def __init__(
        self,
        *,
        request_id: int | str = 7,
        progress_token: int | str | None = None,
        capabilities: Mapping[str, Any] | None = None,
        log_level: str | None = None,
        protocol_version: str = "2025-11-25",
        session_id: str | None = None,
        answers: Mapping[str, Any] | None = None,
    ) -> None:
        self._request_id = request_id
        self._progress_token = progress_token
        self._client = ClientInfo(
            protocol_version, "fake-client", "1.0", capabilities, session_id=session_id
        )
        self._log_level = log_level
        self.answers = dict(answers or {})
        self.notifications: list[tuple[str, Any]] = []
        self.requests: list[tuple[str, Any, float | None]] = []

    @property
    def request_id(self) -> int | str:
        return self._request_id

    @property
    def progress_token(self) -> int | str | None:
        return self._progress_token

    @property
    def client(self) -> ClientInfo:
        return self._client

    @property
    def log_level(self) -> str | None:
        return self._log_level

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        self.notifications.append((method, params))

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> Any:
        self.requests.append((method, params, timeout))
        answer = self.answers[method]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def settle(result: Any) -> Any:
    """Await ``result`` if it is awaitable (as the engines' call runner does)."""
    if inspect.isawaitable(result):

        async def wait() -> Any:
            return await result

        return asyncio.run(wait())
    return result
