"""Every server method fed malformed params (hypothesis): a result, or -32602 / -32600 /
-32601 / -32002 with a message; never -32603, never an exception, never a hang. Driven
through the connection core and the real call runner, on examples/everything.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connscale.server.loading import load_app
from support import INIT, INITIALIZED, CorePipe, line

EVERYTHING = load_app(f"{Path(__file__).resolve().parents[2] / 'examples' / 'everything.py'}:app")
DOCUMENTED = {-32600, -32601, -32602, -32002}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
tool_names = st.sampled_from(
    ["test_simple_text", "midpoint", "checksum", "json_schema_2020_12_tool", "test_error_handling"]
) | st.text(max_size=12)
prompt_names = st.sampled_from(
    ["test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource"]
) | st.text(max_size=12)
uris = st.sampled_from(
    ["test://static-text", "test://template/1/data", "test://template//data", "x:/"]
) | st.text(max_size=20)
refs = st.fixed_dictionaries(
    {"type": st.sampled_from(["ref/prompt", "ref/resource", "ref/other"]) | json_values},
    optional={"name": prompt_names | json_values, "uri": uris | json_values},
)
params = st.one_of(
    st.tuples(
        st.just("tools/call"),
        st.fixed_dictionaries({"name": tool_names}, optional={"arguments": json_values}),
    ),
    st.tuples(
        st.just("prompts/get"),
        st.fixed_dictionaries({"name": prompt_names}, optional={"arguments": json_values}),
    ),
    st.tuples(st.just("resources/read"), st.fixed_dictionaries({"uri": uris | json_values})),
    st.tuples(
        st.just("completion/complete"),
        st.fixed_dictionaries(
            {"ref": refs | json_values},
            optional={"argument": json_values, "context": json_values},
        ),
    ),
    st.tuples(
        st.sampled_from(
            [
                "logging/setLevel",
                "resources/subscribe",
                "resources/unsubscribe",
                "tools/list",
                "resources/list",
                "resources/templates/list",
                "prompts/list",
            ]
        ),
        json_values,
    ),
)


async def answers(messages: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    pipe = CorePipe(EVERYTHING)
    connection = pipe.connect()
    pipe.feed(connection, line(INIT) + line(INITIALIZED))
    pipe.take(connection)
    data = b"".join(
        line({"jsonrpc": "2.0", "id": index, "method": method, "params": value})
        for index, (method, value) in enumerate(messages)
    )
    pipe.core.receive(connection, data)
    for _ in range(200):  # async and blocking tools answer from tasks and threads
        if not pipe.runner.in_flight and not pipe.core._backlog:
            break
        pipe.core.run_backlog()
        await asyncio.sleep(0.005)
    replies = pipe.messages(connection)
    assert not pipe.runner.in_flight, "a call never finished"
    return replies


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(params, min_size=1, max_size=5))
def test_malformed_params_get_documented_answers(messages: list[tuple[str, Any]]) -> None:
    replies = asyncio.run(answers(messages))
    assert sorted(reply["id"] for reply in replies) == list(range(len(messages)))
    for reply in replies:
        if "error" in reply:
            error = reply["error"]
            assert error["code"] in DOCUMENTED, reply
            assert isinstance(error["message"], str) and error["message"], reply
        else:
            json.dumps(reply["result"])  # a JSON object, whatever the input
            assert isinstance(reply["result"], dict)
