"""The circle of experts: concurrent fan-out, timeouts, errors, aggregation, bounds, plug-ins."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.clock import FakeClock
from connscale.core.cache import ENTRY_OVERHEAD_BYTES
from connscale.errors import BatchTooLargeError, ConfigurationError
from connscale.server import experts as experts_module
from connscale.server.experts import (
    CircleOfExperts,
    Consultation,
    ExpertAnswer,
    ExpertQuery,
    ExpertResponse,
    FunctionExpert,
    ResponseCollector,
    aggregate,
    builtin_experts,
    complexity_estimator,
    keyword_analyst,
    load_experts,
    question_classifier,
    responses_size,
    skeptic,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def constant(name: str, text: str, confidence: float, delay: float = 0.0) -> FunctionExpert:
    async def answer(question: str) -> ExpertAnswer:
        if delay:
            await asyncio.sleep(delay)
        return ExpertAnswer(text, confidence)

    return FunctionExpert(name, answer)


def failing(name: str, exc: BaseException) -> FunctionExpert:
    async def answer(question: str) -> ExpertAnswer:
        raise exc

    return FunctionExpert(name, answer)


def response(query_id: str, expert: str, text: str, confidence: float = 0.5) -> ExpertResponse:
    return ExpertResponse(query_id, expert, text, confidence, 1.0)


# --- fan-out and timeouts ------------------------------------------------------------------


def test_fan_out_runs_every_expert_at_once() -> None:
    # Each expert waits until all of them have started: asked one by one, none would answer.
    count = 4
    started = 0
    everyone_started = asyncio.Event()

    async def rendezvous(question: str) -> ExpertAnswer:
        nonlocal started
        started += 1
        if started == count:
            everyone_started.set()
        await everyone_started.wait()
        return ExpertAnswer("together", 0.5)

    circle = CircleOfExperts(
        [FunctionExpert(f"e{i}", rendezvous) for i in range(count)], timeout=5.0
    )
    result = run(circle.consult("are we all here?"))
    assert result.timed_out == ()
    assert [r.expert for r in result.responses] == ["e0", "e1", "e2", "e3"]
    assert all(r.error is None for r in result.responses)


def test_total_time_is_about_the_slowest_expert_not_the_sum() -> None:
    delays = [0.1, 0.1, 0.1, 0.1, 0.1]
    circle = CircleOfExperts(
        [constant(f"e{i}", "ok", 0.5, delay) for i, delay in enumerate(delays)], timeout=5.0
    )
    started = time.perf_counter()
    result = run(circle.consult("slow?"))
    elapsed = time.perf_counter() - started
    assert len(result.responses) == 5
    assert elapsed < sum(delays) * 0.8, f"took {elapsed:.3f}s: experts ran one after another"
    assert all(r.latency_ms >= 90 for r in result.responses)


def test_timeout_drops_the_slow_expert_and_cancels_it() -> None:
    cancelled = asyncio.Event()

    async def slow(question: str) -> ExpertAnswer:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ExpertAnswer("too late", 1.0)

    circle = CircleOfExperts(
        [constant("fast", "quick answer", 0.8), FunctionExpert("slow", slow)], timeout=0.05
    )

    async def scenario() -> tuple[Consultation, float, bool]:
        started = time.perf_counter()
        result = await circle.consult("hurry?")
        elapsed = time.perf_counter() - started
        await asyncio.wait_for(cancelled.wait(), 1.0)
        return result, elapsed, cancelled.is_set()

    result, elapsed, was_cancelled = run(scenario())
    assert result.timed_out == ("slow",)
    assert [r.expert for r in result.responses] == ["fast"]
    assert result.answer == "quick answer"
    assert result.confidence == pytest.approx(0.8 / 2)  # the slow expert counts as 0
    assert elapsed < 2.0
    assert was_cancelled
    stats = circle.statistics()
    assert stats.timeouts == 1
    assert stats.answers == 1
    assert stats.in_flight == 0


def test_an_expert_that_ignores_cancellation_does_not_hold_the_answer() -> None:
    finished_late = asyncio.Event()

    async def stubborn(question: str) -> ExpertAnswer:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # refuses to stop at once
        finished_late.set()
        return ExpertAnswer("late anyway", 1.0)

    circle = CircleOfExperts(
        [constant("fast", "ok", 0.5), FunctionExpert("stubborn", stubborn)], timeout=0.05
    )

    async def scenario_first() -> tuple[Consultation, bool]:
        result = await circle.consult("now?")
        return result, finished_late.is_set()

    async def scenario_with_abandoned() -> tuple[Consultation, bool, int, int]:
        result, finished_before_answer = await scenario_first()
        abandoned_at_answer = circle.statistics().abandoned
        await asyncio.wait_for(finished_late.wait(), 1.0)
        await asyncio.sleep(0)  # let the done callback run
        return result, finished_before_answer, abandoned_at_answer, circle.statistics().abandoned

    result, finished_before_answer, abandoned_at_answer, abandoned_after = run(
        scenario_with_abandoned()
    )
    assert (abandoned_at_answer, abandoned_after) == (1, 0)
    assert result.timed_out == ("stubborn",)
    assert not finished_before_answer
    collected = circle.collected(result.query_id)
    assert collected is not None
    assert [r.expert for r in collected] == ["fast"]


def test_cancelling_a_consultation_cancels_its_experts() -> None:
    cancelled = asyncio.Event()

    async def slow(question: str) -> ExpertAnswer:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ExpertAnswer("never", 1.0)

    circle = CircleOfExperts([FunctionExpert("slow", slow)], timeout=30.0)

    async def scenario() -> None:
        consultation = asyncio.create_task(circle.consult("anyone?"))
        await asyncio.sleep(0.01)
        consultation.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consultation
        await asyncio.wait_for(cancelled.wait(), 1.0)

    run(scenario())
    stats = circle.statistics()
    assert stats.in_flight == 0
    assert stats.pool.in_use == 0


# --- failing experts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expert", "expected_error"),
    [
        (failing("boom", RuntimeError("model is down")), "RuntimeError: model is down"),
        (failing("selfcancel", asyncio.CancelledError()), "CancelledError"),
        (FunctionExpert("wrongtype", lambda q: "bare"), "expected ExpertAnswer"),  # type: ignore
        (FunctionExpert("badconf", lambda q: ExpertAnswer("x", 1.5)), "ConfigurationError"),
    ],
)
def test_a_failing_expert_becomes_an_error_response(
    expert: FunctionExpert, expected_error: str
) -> None:
    circle = CircleOfExperts([constant("good", "fine", 0.9), expert], timeout=1.0)
    result = run(circle.consult("does it crash?"))
    assert result.timed_out == ()
    by_name = {r.expert: r for r in result.responses}
    failed = by_name[expert.name]
    assert failed.error is not None
    assert expected_error in failed.error
    assert failed.confidence == 0.0
    assert failed.text == ""
    assert by_name["good"].error is None
    assert result.answer == "fine"
    assert result.confidence == pytest.approx(0.9 / 2)
    assert circle.statistics().errors == 1


def test_long_error_messages_and_answers_are_truncated() -> None:
    circle = CircleOfExperts(
        [failing("loud", ValueError("x" * 10_000)), constant("verbose", "y" * 10_000, 0.5)],
        max_answer_chars=100,
    )
    result = run(circle.consult("how long?"))
    by_name = {r.expert: r for r in result.responses}
    assert by_name["loud"].error is not None
    assert len(by_name["loud"].error) <= 200
    assert by_name["verbose"].text == "y" * 100


def test_no_answers_give_an_empty_answer_with_zero_confidence() -> None:
    circle = CircleOfExperts([failing("a", RuntimeError()), failing("b", KeyError("k"))])
    result = run(circle.consult("anyone?"))
    assert result.answer == ""
    assert result.confidence == 0.0
    assert len(result.responses) == 2


# --- aggregation ---------------------------------------------------------------------------------


def test_aggregate_pools_confidence_of_equal_answers() -> None:
    responses = [
        response("q", "a", "Yes", 0.6),
        response("q", "b", "No", 0.8),
        response("q", "c", "  yes ", 0.3),  # equal to "Yes" after folding case and spaces
    ]
    answer, confidence = aggregate(responses, consulted=4)
    assert answer == "Yes"  # 0.6 + 0.3 = 0.9 beats 0.8
    assert confidence == pytest.approx(0.9 / 4)


def test_aggregate_ties_go_to_the_first_expert_and_errors_are_ignored() -> None:
    broken = ExpertResponse("q", "x", "ignored", 1.0, 1.0, error="RuntimeError")
    responses = [broken, response("q", "a", "left", 0.5), response("q", "b", "right", 0.5)]
    answer, confidence = aggregate(responses, consulted=3)
    assert answer == "left"
    assert confidence == pytest.approx(0.5 / 3)
    assert aggregate([], consulted=3) == ("", 0.0)
    assert aggregate([broken], consulted=1) == ("", 0.0)


def test_a_unanimous_sure_circle_is_fully_confident() -> None:
    circle = CircleOfExperts([constant(f"e{i}", "42", 1.0) for i in range(3)])
    result = run(circle.consult("what is the answer?"))
    assert result.answer == "42"
    assert result.confidence == pytest.approx(1.0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "A ", "b", "c"]), st.floats(0.0, 1.0)),
        max_size=8,
    ),
    st.integers(0, 4),
)
def test_aggregate_confidence_is_a_share_of_the_circle(
    answers: list[tuple[str, float]], extra_consulted: int
) -> None:
    responses = [response("q", f"e{i}", text, c) for i, (text, c) in enumerate(answers)]
    consulted = len(responses) + extra_consulted
    answer, confidence = aggregate(responses, consulted)
    assert 0.0 <= confidence <= 1.0
    if not responses or consulted == 0:
        assert (answer, confidence) == ("", 0.0)
        return
    assert answer in {text for text, _ in answers}
    support = sum(c for text, c in answers if text.strip().casefold() == answer.strip().casefold())
    assert confidence == pytest.approx(min(1.0, support / consulted))
    best = max(
        sum(c for t, c in answers if t.strip().casefold() == key)
        for key in {t.strip().casefold() for t, _ in answers}
    )
    assert support == pytest.approx(best)


# --- the response collector ----------------------------------------------------------------------


def test_collector_keeps_responses_per_query_until_the_ttl() -> None:
    clock = FakeClock()
    collector = ResponseCollector(ttl=10.0, timer=clock)
    collector.add([response("q1", "a", "one"), response("q2", "a", "two")])
    collector.add([response("q1", "b", "uno")])
    kept = collector.get("q1")
    assert kept is not None
    assert [r.text for r in kept] == ["one", "uno"]
    clock.advance(9.0)
    assert collector.get("q2") is not None
    clock.advance(2.0)
    assert collector.get("q1") is None
    assert collector.get("q2") is None
    assert collector.get("never-seen") is None
    assert collector.get(123) is None  # type: ignore[arg-type]


def test_collector_evicts_oldest_queries_to_stay_under_max_bytes() -> None:
    def entry(i: int) -> list[ExpertResponse]:
        return [response(f"q{i}", "a", "z" * 1000)]

    # What the cache charges one entry: key, value (as the collector measures it), overhead.
    entry_bytes = sys.getsizeof("q0") + responses_size(tuple(entry(0))) + ENTRY_OVERHEAD_BYTES
    max_bytes = entry_bytes * 3 + entry_bytes // 2
    collector = ResponseCollector(max_bytes=max_bytes, timer=FakeClock())
    for i in range(6):
        collector.add(entry(i))
        stats = collector.statistics()
        assert stats.bytes is not None
        assert stats.bytes <= max_bytes
    assert len(collector) == 3
    assert [collector.get(f"q{i}") is None for i in range(6)] == [True] * 3 + [False] * 3
    assert collector.statistics().evicted_max_bytes == 3


def test_collector_size_estimate_counts_texts_and_errors() -> None:
    small = (response("q", "a", "x"),)
    large = (response("q", "a", "x" * 5000),)
    failed = (ExpertResponse("q", "a", "", 0.0, 1.0, error="E" * 5000),)
    assert responses_size(large) - responses_size(small) >= 4999
    assert responses_size(failed) - responses_size(small) >= 4999
    assert responses_size(small * 2) > responses_size(small)


def test_collector_takes_at_most_max_batch_responses_at_once() -> None:
    collector = ResponseCollector(max_batch=3, timer=FakeClock())
    collector.add([response("q", str(i), "t") for i in range(3)])
    with pytest.raises(BatchTooLargeError, match="max_batch"):
        collector.add([response("q", str(i), "t") for i in range(4)])
    kept = collector.get("q")
    assert kept is not None
    assert len(kept) == 3
    collector.add([])
    with pytest.raises(ConfigurationError):
        collector.add(["not a response"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "settings_",
    [{"max_bytes": 0}, {"max_bytes": -1}, {"ttl": 0}, {"ttl": float("nan")}, {"max_batch": 0}],
)
def test_collector_rejects_bad_settings(settings_: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ResponseCollector(**settings_)


def test_a_circle_never_has_more_experts_than_a_batch_holds() -> None:
    with pytest.raises(ConfigurationError, match="max_batch"):
        CircleOfExperts(
            [constant(f"e{i}", "x", 0.5) for i in range(3)],
            collector=ResponseCollector(max_batch=2),
        )


def test_responses_too_large_to_keep_still_answer() -> None:
    collector = ResponseCollector(max_bytes=500, timer=FakeClock())
    circle = CircleOfExperts([constant("big", "w" * 2000, 0.7)], collector=collector)
    result = run(circle.consult("big?"))
    assert result.answer == "w" * 2000
    assert circle.collected(result.query_id) is None
    assert circle.statistics().not_retained == 1


def test_collected_returns_a_consultations_responses_until_they_expire() -> None:
    clock = FakeClock()
    circle = CircleOfExperts(collector=ResponseCollector(ttl=60.0, timer=clock))
    result = run(circle.consult("Why is the sky always blue?"))
    assert circle.collected(result.query_id) == result.responses
    clock.advance(61.0)
    assert circle.collected(result.query_id) is None


# --- pooling, ids, statistics --------------------------------------------------------------------


def test_queries_come_from_a_pool_and_are_reused() -> None:
    circle = CircleOfExperts()

    async def many() -> list[Consultation]:
        return [await circle.consult(f"question number {i}?") for i in range(6)]

    results = run(many())
    pool = circle.statistics().pool
    assert pool.created == 1
    assert pool.reused == 5
    assert pool.in_use == 0
    assert len({r.query_id for r in results}) == 6


def test_concurrent_consultations_take_separate_queries() -> None:
    circle = CircleOfExperts([constant("e", "x", 0.5, delay=0.02)])

    async def together() -> list[Consultation]:
        return list(await asyncio.gather(*(circle.consult(f"q{i}?") for i in range(4))))

    results = run(together())
    assert [r.question for r in results] == ["q0?", "q1?", "q2?", "q3?"]
    assert all(r.responses[0].query_id == r.query_id for r in results)
    stats = circle.statistics()
    assert stats.pool.peak_in_use == 4
    assert stats.pool.in_use == 0
    assert stats.consultations == 4


def test_a_released_query_is_reset() -> None:
    query = ExpertQuery()
    query.query_id, query.question, query.experts, query.deadline = "id", "q", ("a",), 5.0
    query.clear()
    cleared: tuple[object, ...] = (query.query_id, query.question, query.experts, query.deadline)
    assert cleared == ("", "", (), 0.0)


def test_query_ids_are_unguessable() -> None:
    circle = CircleOfExperts([constant("e", "x", 0.5)])

    async def many() -> list[str]:
        return [(await circle.consult("id?")).query_id for _ in range(50)]

    ids = run(many())
    assert len(set(ids)) == 50
    assert all(len(query_id) >= 22 for query_id in ids)  # 16 random bytes, base64url


def test_statistics_count_answers_errors_and_timeouts() -> None:
    circle = CircleOfExperts(
        [
            constant("ok", "x", 0.5),
            failing("bad", RuntimeError()),
            constant("slow", "y", 0.5, delay=30),
        ],
        timeout=0.05,
    )

    async def twice() -> None:
        await circle.consult("one?")
        await circle.consult("two?", experts=["ok", "bad"])

    run(twice())
    stats = circle.statistics()
    assert (stats.consultations, stats.answers, stats.errors, stats.timeouts) == (2, 2, 2, 1)
    assert stats.experts == ("ok", "bad", "slow")
    assert json.dumps(stats.to_dict())


def test_consultation_to_dict_is_json() -> None:
    result = run(CircleOfExperts().consult("How do I keep memory flat?"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["query_id"] == result.query_id
    assert data["answer"] == result.answer
    assert [r["expert"] for r in data["responses"]] == [r.expert for r in result.responses]
    assert {r["expert"] for r in data["responses"]} == {e.name for e in builtin_experts()}


# --- choosing experts and bad input --------------------------------------------------------------


def test_consult_asks_only_the_named_experts_once_each() -> None:
    circle = CircleOfExperts()
    result = run(circle.consult("Is this always true?", experts=["skeptic", "skeptic"]))
    assert [r.expert for r in result.responses] == ["skeptic"]
    assert "'always'" in result.answer


@pytest.mark.parametrize(
    ("question", "chosen"),
    [
        ("", None),
        ("   ", None),
        (None, None),
        (b"bytes", None),
        ("x" * 20_000, None),
        ("fine?", []),
        ("fine?", ["nobody"]),
        ("fine?", "skeptic"),
    ],
)
def test_consult_rejects_bad_input(question: Any, chosen: Any) -> None:
    circle = CircleOfExperts()
    with pytest.raises(ConfigurationError):
        run(circle.consult(question, experts=chosen))
    assert circle.statistics().pool.in_use == 0


def test_a_circle_rejects_bad_experts_and_settings() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        CircleOfExperts([])
    with pytest.raises(ConfigurationError, match="two experts"):
        CircleOfExperts([constant("a", "x", 0.5), constant("a", "y", 0.5)])
    with pytest.raises(ConfigurationError, match="name"):
        CircleOfExperts([object()])  # type: ignore[list-item]
    for timeout in (0, -1.0, float("inf"), "2"):
        with pytest.raises(ConfigurationError, match="timeout"):
            CircleOfExperts(timeout=timeout)  # type: ignore[arg-type]


def test_expert_answer_validates_itself() -> None:
    for confidence in (-0.1, 1.01, float("nan"), True, "0.5"):
        with pytest.raises(ConfigurationError):
            ExpertAnswer("x", confidence)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        ExpertAnswer(None, 0.5)  # type: ignore[arg-type]
    assert ExpertAnswer("x", 1).confidence == 1


# --- built-in experts ----------------------------------------------------------------------------

BUILTINS: list[Callable[[str], ExpertAnswer]] = [
    keyword_analyst,
    complexity_estimator,
    question_classifier,
    skeptic,
]


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_builtins_are_deterministic_and_well_formed(question: str) -> None:
    for expert in BUILTINS:
        first = expert(question)
        assert first == expert(question)
        assert isinstance(first.text, str)
        assert first.text
        assert 0.0 <= first.confidence <= 1.0


def test_builtin_experts_answer_to_the_point() -> None:
    assert keyword_analyst("Pool buffers; pool sessions; cache sessions").text == (
        "Key topics: pool, sessions, buffers."
    )
    assert "how-to" in question_classifier("How do I scale to 100K connections?").text
    assert "yes/no" in question_classifier("Is epoll faster?").text
    assert "open request" in question_classifier("Tell me about epoll.").text
    assert "'always', 'never'" in skeptic("Is it always or never fast?").text
    assert skeptic("Is it fast?").confidence < skeptic("Is it always fast?").confidence
    assert "simple" in complexity_estimator("Is epoll fast?").text
    long_question = ", and ".join(["why does memory grow"] * 10)
    assert "complex" in complexity_estimator(long_question).text


def test_builtin_experts_are_named_and_consistent_across_circles() -> None:
    names = [expert.name for expert in builtin_experts()]
    assert names == ["keyword_analyst", "complexity_estimator", "question_classifier", "skeptic"]
    question = "Why does every connection cost 4 KB in the kernel?"
    first = run(CircleOfExperts().consult(question))
    second = run(CircleOfExperts().consult(question))
    assert (first.answer, first.confidence) == (second.answer, second.confidence)
    assert [(r.text, r.confidence) for r in first.responses] == [
        (r.text, r.confidence) for r in second.responses
    ]
    assert first.query_id != second.query_id


# --- plug-ins ------------------------------------------------------------------------------------

PLUGIN_SOURCE = textwrap.dedent(
    """
    import asyncio
    from connscale.server.experts import ExpertAnswer

    async def oracle(question):
        await asyncio.sleep(0)
        return ExpertAnswer("oracle says " + question, 0.9)

    def echo(question):
        return ExpertAnswer(question, 0.4)

    class Named:
        name = "named_one"
        async def __call__(self, question):
            return ExpertAnswer("named", 0.5)

    named = Named()
    NOT_CALLABLE = 42
    """
)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "connscale_test_plugin_experts"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    (tmp_path / "connscale_test_broken_plugin.py").write_text(
        "raise RuntimeError('broken at import')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop("connscale_test_broken_plugin", None)


def test_load_experts_plugs_in_functions_and_objects(plugin_module: str) -> None:
    loaded = load_experts(
        f" {plugin_module}:oracle, {plugin_module}:echo,{plugin_module}:named,"
        f"renamed={plugin_module}:named.__call__, connscale.server.experts:skeptic"
    )
    assert [e.name for e in loaded] == ["oracle", "echo", "named_one", "renamed", "skeptic"]
    circle = CircleOfExperts(loaded, timeout=1.0)
    result = run(circle.consult("hello"))
    by_name = {r.expert: r for r in result.responses}
    assert by_name["oracle"].text == "oracle says hello"
    assert by_name["echo"].text == "hello"
    assert by_name["named_one"].text == "named"
    assert by_name["renamed"].text == "named"
    assert all(r.error is None for r in result.responses)
    # Two experts say "named" (0.5 + 0.5), which outweighs the oracle's 0.9.
    assert result.answer == "named"
    assert result.confidence == pytest.approx(1.0 / 5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        (" , ", "empty"),
        ("{plugin}:oracle,,{plugin}:echo", "empty item"),
        ("no_colon_here", "expected 'package.module:callable'"),
        ("1bad.module:thing", "expected"),
        ("os:system; rm -rf /", "expected"),
        ("__import__('os'):system", "expected"),
        ("connscale_no_such_module_anywhere:thing", "cannot import"),
        ("connscale_test_broken_plugin:thing", "broken at import"),
        ("{plugin}:missing", "no attribute"),
        ("{plugin}:NOT_CALLABLE", "not callable"),
        ("{plugin}:Named", "is a class"),
        ("{plugin}:echo,{plugin}:echo", "twice"),
    ],
)
def test_load_experts_rejects_bad_specs(plugin_module: str, spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_experts(spec.format(plugin=plugin_module))


def test_load_experts_rejects_a_non_string() -> None:
    with pytest.raises(ConfigurationError):
        load_experts(None)  # type: ignore[arg-type]


def _is_malformed(spec: str) -> bool:
    items = [item.strip() for item in spec.split(",")]
    return not all(experts_module._SPEC_ITEM.fullmatch(item) for item in items)


@settings(max_examples=300)
@given(st.text(max_size=60).filter(_is_malformed))
def test_load_experts_turns_garbage_into_configuration_errors(spec: str) -> None:
    # Only specs that fail the grammar: a well-formed one would import a real module.
    with pytest.raises(ConfigurationError):
        load_experts(spec)


def test_function_expert_accepts_sync_and_async_functions() -> None:
    async def later(question: str) -> ExpertAnswer:
        return ExpertAnswer(question.upper(), 0.5)

    def now(question: str) -> ExpertAnswer:
        return ExpertAnswer(question.lower(), 0.5)

    async def both() -> tuple[ExpertAnswer, ExpertAnswer]:
        return await FunctionExpert("later", later)("Hi"), await FunctionExpert("now", now)("Hi")

    assert run(both()) == (ExpertAnswer("HI", 0.5), ExpertAnswer("hi", 0.5))
    with pytest.raises(ConfigurationError):
        FunctionExpert("", now)
    with pytest.raises(ConfigurationError):
        FunctionExpert("x", 42)  # type: ignore[arg-type]


def test_experts_protocol_accepts_awaitable_returning_callables() -> None:
    calls: list[str] = []

    def deferred(question: str) -> Awaitable[ExpertAnswer]:
        calls.append(question)

        async def inner() -> ExpertAnswer:
            return ExpertAnswer("deferred", 0.6)

        return inner()

    result = run(CircleOfExperts([FunctionExpert("d", deferred)]).consult("q?"))
    assert result.answer == "deferred"
    assert calls == ["q?"]
