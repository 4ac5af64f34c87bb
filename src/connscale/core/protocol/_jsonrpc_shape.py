"""The msgspec ``Struct`` a JSON-RPC frame is decoded into.

It lives apart from ``jsonrpc`` because ``jsonrpc`` is compiled with mypyc (see
``connscale._hot_path``), and msgspec cannot read the fields of a ``Struct`` subclass that
mypyc compiled: every frame would fail to decode. This module stays interpreted.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["JsonRpcEnvelope", "envelope_decoder"]


class JsonRpcEnvelope(msgspec.Struct):
    """The members of a JSON-RPC message, each left unset when the frame lacks it."""

    jsonrpc: str | msgspec.UnsetType = msgspec.UNSET
    id: int | str | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    params: dict[str, Any] | list[Any] | msgspec.UnsetType = msgspec.UNSET
    # A client's result/error is decoded only by whoever waits for it: keep it raw.
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


def envelope_decoder() -> msgspec.json.Decoder[JsonRpcEnvelope]:
    """A decoder of one JSON-RPC message's envelope."""
    return msgspec.json.Decoder(JsonRpcEnvelope)
