"""How much memory one JSON-RPC message decodes to, for the shapes that amplify most.

Prints, per shape, the frame size, what the decoded message holds afterwards and the peak
while decoding (tracemalloc), at the default limits. Figures in docs/RELIABILITY.md.
Run: ``python fuzz/decoded_size.py``.
"""

from __future__ import annotations

import platform
import tracemalloc

from connscale.core.protocol.jsonrpc import decode_message
from connscale.core.protocol.limits import ServerLimits

HEAD = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":'
SHAPES = {
    "empty lists []": b"[]",
    "empty objects {}": b"{}",
    "objects {a:0}": b'{"a":0}',
    'strings "ab"': b'"ab"',
    "small ints 0": b"0",
    "floats 1.5": b"1.5",
    "30-char strings": b'"' + b"y" * 30 + b'"',
}


def measure(frame: bytes, limits: ServerLimits) -> tuple[int, int, str]:
    tracemalloc.start()
    try:
        message = decode_message(
            frame,
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held, peak, type(message).__name__


def main() -> None:
    limits = ServerLimits()
    print(
        f"CPython {platform.python_version()}, default limits: "
        f"max_frame_bytes={limits.max_frame_bytes}, max_json_items={limits.max_json_items}"
    )
    print(
        f"{'shape':18s} {'values':>8s} {'frame KiB':>10s} {'held MiB':>9s} "
        f"{'peak MiB':>9s}  outcome"
    )
    for name, shape in SHAPES.items():
        per_value = 2 if b":" in shape else 1
        for label, count in (
            ("1 MiB", (limits.max_frame_bytes - len(HEAD) - 8) // (len(shape) + 1)),
            ("cap", (limits.max_json_items - 8) // per_value),
        ):
            frame = HEAD + b"[" + b",".join([shape] * count) + b"]}}}"
            if len(frame) > limits.max_frame_bytes:
                continue
            held, peak, outcome = measure(frame, limits)
            print(
                f"{name:18s} {count * per_value:8d} {len(frame) / 1024:10.1f} "
                f"{held / 2**20:9.2f} {peak / 2**20:9.2f}  {outcome} ({label})"
            )


if __name__ == "__main__":
    main()
