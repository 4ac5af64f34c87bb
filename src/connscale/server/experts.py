"""The circle of experts: one question fanned out to several experts, answers aggregated.

A consultation takes a pooled ``ExpertQuery``, asks every chosen expert at once with
asyncio, and waits at most ``timeout`` seconds: a slow expert is cancelled and listed in
``timed_out`` instead of holding the answer back, and an expert that raises becomes a
response with ``error`` set. Responses are kept for a while in a ``ResponseCollector`` (a
byte-bounded ``TTLCache``) so that a second tool can fetch them by query id.

Built-in experts are deterministic local functions; users plug in their own async callables
(model API clients, say) with ``load_experts("package.module:callable,...")``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import msgspec

from connscale.clock import Timer, monotonic
from connscale.core.cache import CacheStatistics, TTLCache
from connscale.core.pool import ObjectPool, PoolStatistics
from connscale.errors import BatchTooLargeError, CacheError, ConfigurationError

__all__ = [
    "CircleOfExperts",
    "CircleStatistics",
    "Consultation",
    "Expert",
    "ExpertAnswer",
    "ExpertQuery",
    "ExpertResponse",
    "FunctionExpert",
    "ResponseCollector",
    "builtin_experts",
    "load_experts",
]


@dataclass(frozen=True, slots=True)
class ExpertAnswer:
    """What an expert says: ``text`` and how sure it is, ``confidence`` in [0, 1]."""

    text: str
    confidence: float

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ConfigurationError(f"ExpertAnswer.text must be a str, got {self.text!r}")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 <= c <= 1.0:
            raise ConfigurationError(
                f"ExpertAnswer.confidence must be a number from 0 to 1, got {c!r}"
            )


class Expert(Protocol):
    """Anything with a ``name`` that answers a question asynchronously."""

    name: str

    async def __call__(self, question: str) -> ExpertAnswer: ...


class FunctionExpert:
    """Turns a function (sync or async) into an ``Expert`` with a name."""

    __slots__ = ("_function", "name")

    def __init__(
        self, name: str, function: Callable[[str], Awaitable[ExpertAnswer] | ExpertAnswer]
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"an expert needs a non-empty str name, got {name!r}")
        if not callable(function):
            raise ConfigurationError(f"expert {name!r}: {function!r} is not callable")
        self.name = name
        self._function = function

    async def __call__(self, question: str) -> ExpertAnswer:
        result = self._function(question)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, ExpertAnswer):
            raise TypeError(
                f"expert {self.name!r} returned {type(result).__name__}, expected ExpertAnswer"
            )
        return result

    def __repr__(self) -> str:
        return f"<FunctionExpert {self.name!r} {self._function!r}>"


class ExpertQuery:
    """One consultation in progress; pooled, so its fields are reset after every use."""

    __slots__ = ("deadline", "experts", "query_id", "question")

    def __init__(self) -> None:
        self.query_id = ""
        self.question = ""
        self.experts: tuple[str, ...] = ()
        self.deadline = 0.0  # event-loop time by which every answer must be in

    def clear(self) -> None:
        """Forget the last consultation (the pool's ``reset``)."""
        self.query_id = ""
        self.question = ""
        self.experts = ()
        self.deadline = 0.0


class ExpertResponse(msgspec.Struct, frozen=True, gc=False):
    """One expert's answer to one query. A compact struct: no ``__dict__``, not GC-tracked."""

    query_id: str
    expert: str
    text: str
    confidence: float
    latency_ms: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "query_id": self.query_id,
            "expert": self.expert,
            "text": self.text,
            "confidence": self.confidence,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


def _check_positive(name: str, value: object, *, integer: bool = False) -> Any:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {value!r}")
    assert isinstance(value, int | float)
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be finite and > 0, got {value!r}")
    return value


def responses_size(responses: object) -> int:
    """Estimated bytes of a tuple of responses: the tuple, each struct and its own strings.

    The query id is shared by every response in the tuple and expert names are shared with
    the circle, so each is counted once or not at all.
    """
    if not isinstance(responses, tuple):
        return sys.getsizeof(responses)
    size = sys.getsizeof(responses)
    if responses and isinstance(responses[0], ExpertResponse):
        size += sys.getsizeof(responses[0].query_id)
    for response in responses:
        size += sys.getsizeof(response)
        if isinstance(response, ExpertResponse):
            size += sys.getsizeof(response.text)
            if response.error is not None:
                size += sys.getsizeof(response.error)
    return size


class ResponseCollector:
    """Responses per query id, kept at most ``ttl`` seconds and ``max_bytes`` in all.

    Each ``add`` takes at most ``max_batch`` responses (one consultation's worth); the
    oldest entries are evicted first when the byte budget is reached.
    """

    __slots__ = ("_cache", "max_batch")

    def __init__(
        self,
        *,
        max_bytes: int = 8 << 20,
        ttl: float = 300.0,
        max_batch: int = 64,
        timer: Timer = monotonic,
    ) -> None:
        _check_positive("max_bytes", max_bytes, integer=True)
        _check_positive("ttl", ttl)
        self.max_batch: int = _check_positive("max_batch", max_batch, integer=True)
        self._cache: TTLCache[str, tuple[ExpertResponse, ...]] = TTLCache(
            max_bytes=max_bytes, ttl=ttl, getsizeof=responses_size, timer=timer
        )

    def add(self, responses: Sequence[ExpertResponse]) -> None:
        """Keep ``responses``, appended to any already kept for the same query id.

        Raises BatchTooLargeError for more than ``max_batch`` responses, or when one query's
        responses alone are larger than ``max_bytes``.
        """
        if len(responses) > self.max_batch:
            raise BatchTooLargeError(
                f"{len(responses)} responses in one batch, more than max_batch="
                f"{self.max_batch}; split them or raise max_batch"
            )
        grouped: dict[str, list[ExpertResponse]] = {}
        for response in responses:
            if not isinstance(response, ExpertResponse):
                raise ConfigurationError(f"expected ExpertResponse, got {response!r}")
            grouped.setdefault(response.query_id, []).append(response)
        if not grouped:
            return
        # Check membership first: a lookup of a new query id would count as a cache miss.
        items: list[tuple[str, tuple[ExpertResponse, ...]]] = []
        for query_id, group in grouped.items():
            kept = self.get(query_id) if query_id in self._cache else None
            items.append((query_id, (kept or ()) + tuple(group)))
        self._cache.add_batch(items)

    def get(self, query_id: str) -> tuple[ExpertResponse, ...] | None:
        """The responses kept for ``query_id``, or None when unknown, evicted or expired."""
        if not isinstance(query_id, str):
            return None
        kept: tuple[ExpertResponse, ...] | None = self._cache.get(query_id)
        return kept

    def expire(self) -> int:
        """Drop expired entries now; returns how many."""
        return self._cache.expire()

    def statistics(self) -> CacheStatistics:
        """The underlying cache's counters."""
        return self._cache.statistics()

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._cache


@dataclass(frozen=True, slots=True)
class Consultation:
    """The outcome of one consultation: the aggregated answer and every response."""

    query_id: str
    question: str
    answer: str
    confidence: float
    responses: tuple[ExpertResponse, ...]
    timed_out: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "query_id": self.query_id,
            "question": self.question,
            "answer": self.answer,
            "confidence": self.confidence,
            "responses": [response.to_dict() for response in self.responses],
            "timed_out": list(self.timed_out),
        }


@dataclass(frozen=True, slots=True)
class CircleStatistics:
    """Counters of a CircleOfExperts since it was made, plus its pool and collector."""

    experts: tuple[str, ...]
    consultations: int
    in_flight: int
    answers: int  # responses without an error
    errors: int  # responses with an error
    timeouts: int  # experts cancelled at the deadline
    not_retained: int  # consultations too large for the collector
    abandoned: int  # cancelled experts still running (they ignore cancellation)
    pool: PoolStatistics
    collector: CacheStatistics = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def aggregate(responses: Sequence[ExpertResponse], consulted: int) -> tuple[str, float]:
    """Confidence-weighted vote: the answer with the most summed confidence wins.

    Answers that are equal after folding case and whitespace pool their confidences. The
    result's confidence is the winner's summed confidence divided by ``consulted`` (every
    expert asked, so failed and timed-out experts count as confidence 0): a unanimous,
    fully sure circle gives 1.0, one sure expert out of four gives 0.25. Ties go to the
    answer given first in expert order. No answers give ``("", 0.0)``.
    """
    support: dict[str, float] = {}
    first_text: dict[str, str] = {}
    for response in responses:
        if response.error is not None:
            continue
        key = _normalise(response.text)
        support[key] = support.get(key, 0.0) + response.confidence
        first_text.setdefault(key, response.text)
    if not support or consulted <= 0:
        return "", 0.0
    # max() keeps the first of equal keys, and dicts keep insertion (expert) order.
    winner = max(support, key=support.__getitem__)
    return first_text[winner], min(1.0, support[winner] / consulted)


def _describe(exc: BaseException, limit: int = 200) -> str:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return message if len(message) <= limit else message[: limit - 3] + "..."


class CircleOfExperts:
    """Asks several experts the same question at once and aggregates their answers.

    Each expert gets at most ``timeout`` seconds; the answer is aggregated by a
    confidence-weighted vote (see ``aggregate``). ``experts=None`` uses the built-ins.
    """

    def __init__(
        self,
        experts: Sequence[Expert] | None = None,
        *,
        timeout: float = 2.0,
        collector: ResponseCollector | None = None,
        max_question_chars: int = 16_384,
        max_answer_chars: int = 4_096,
    ) -> None:
        self._timeout: float = _check_positive("timeout", timeout)
        self._max_question_chars: int = _check_positive(
            "max_question_chars", max_question_chars, integer=True
        )
        self._max_answer_chars: int = _check_positive(
            "max_answer_chars", max_answer_chars, integer=True
        )
        self._collector = collector if collector is not None else ResponseCollector()
        chosen = list(builtin_experts() if experts is None else experts)
        if not chosen:
            raise ConfigurationError("a circle needs at least one expert")
        self._experts: dict[str, Expert] = {}
        for expert in chosen:
            name = getattr(expert, "name", None)
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"expert {expert!r} has no non-empty str 'name'")
            if not callable(expert):
                raise ConfigurationError(f"expert {name!r} is not callable")
            if name in self._experts:
                raise ConfigurationError(f"two experts are named {name!r}; names must differ")
            self._experts[name] = expert
        if len(self._experts) > self._collector.max_batch:
            raise ConfigurationError(
                f"{len(self._experts)} experts but the collector takes at most "
                f"max_batch={self._collector.max_batch} responses per consultation"
            )
        self._pool: ObjectPool[ExpertQuery] = ObjectPool(
            ExpertQuery, reset=ExpertQuery.clear, max_size=256
        )
        # Cancelled experts that have not finished yet: a strong reference keeps their
        # tasks from being garbage-collected mid-flight (asyncio holds only weak ones).
        self._abandoned: set[asyncio.Task[ExpertResponse]] = set()
        self._consultations = 0
        self._in_flight = 0
        self._answers = 0
        self._errors = 0
        self._timeouts = 0
        self._not_retained = 0

    @property
    def experts(self) -> tuple[str, ...]:
        """The experts' names, in consultation order."""
        return tuple(self._experts)

    @property
    def timeout(self) -> float:
        """Seconds each consultation waits for its experts."""
        return self._timeout

    @property
    def collector(self) -> ResponseCollector:
        """Where responses are kept for ``collected()``."""
        return self._collector

    async def consult(self, question: str, *, experts: Sequence[str] | None = None) -> Consultation:
        """Ask ``experts`` (names; None = all) about ``question``, waiting at most ``timeout``.

        The answer is the one with the most summed confidence; its confidence is that sum
        over the number of experts asked (see ``aggregate``). Bad input: ConfigurationError.
        """
        question = self._check_question(question)
        chosen = self._choose(experts)
        loop = asyncio.get_running_loop()
        query = self._pool.acquire()
        self._in_flight += 1
        tasks: dict[asyncio.Task[ExpertResponse], str] = {}
        try:
            # 128 random bits: a query id cannot be guessed to read others' responses.
            query.query_id = secrets.token_urlsafe(16)
            query.question = question
            query.experts = tuple(expert.name for expert in chosen)
            started = loop.time()
            query.deadline = started + self._timeout
            for expert in chosen:
                task = asyncio.create_task(self._ask(query, expert), name=expert.name)
                tasks[task] = expert.name
            done, pending = await asyncio.wait(tasks, timeout=query.deadline - loop.time())
            for task in pending:
                self._abandon(task)
            by_name = {tasks[task]: self._result(task, query, started) for task in done}
            responses = tuple(by_name[name] for name in query.experts if name in by_name)
            timed_out = tuple(name for name in query.experts if name not in by_name)
            answer, confidence = aggregate(responses, len(query.experts))
            consultation = Consultation(
                query_id=query.query_id,
                question=question,
                answer=answer,
                confidence=confidence,
                responses=responses,
                timed_out=timed_out,
            )
            self._record(consultation)
            return consultation
        finally:
            for task in tasks:
                if not task.done():  # consult() itself was cancelled: so are its experts
                    self._abandon(task)
            self._in_flight -= 1
            self._pool.release(query)

    async def _ask(self, query: ExpertQuery, expert: Expert) -> ExpertResponse:
        query_id, question = query.query_id, query.question  # the query is reset later
        started = time.perf_counter()
        try:
            answer = await expert(question)
            if not isinstance(answer, ExpertAnswer):
                raise TypeError(f"returned {type(answer).__name__}, expected ExpertAnswer")
        except Exception as exc:  # an expert's failure is its response, never the circle's
            return ExpertResponse(
                query_id=query_id,
                expert=expert.name,
                text="",
                confidence=0.0,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                error=_describe(exc),
            )
        return ExpertResponse(
            query_id=query_id,
            expert=expert.name,
            text=answer.text[: self._max_answer_chars],
            confidence=float(answer.confidence),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _result(
        self, task: asyncio.Task[ExpertResponse], query: ExpertQuery, started: float
    ) -> ExpertResponse:
        if not task.cancelled():
            return task.result()
        # The expert cancelled itself (we cancel only after the wait): an error, not a crash.
        return ExpertResponse(
            query_id=query.query_id,
            expert=task.get_name(),
            text="",
            confidence=0.0,
            latency_ms=(asyncio.get_running_loop().time() - started) * 1000.0,
            error="CancelledError: the expert was cancelled before it answered",
        )

    def _abandon(self, task: asyncio.Task[ExpertResponse]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[ExpertResponse]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieve it, so asyncio does not log "never retrieved"

    def _record(self, consultation: Consultation) -> None:
        self._consultations += 1
        self._timeouts += len(consultation.timed_out)
        for response in consultation.responses:
            if response.error is None:
                self._answers += 1
            else:
                self._errors += 1
        try:
            self._collector.add(consultation.responses)
        except CacheError:
            # Too big to keep: the caller still gets the answer, only collected() misses it.
            self._not_retained += 1

    def _check_question(self, question: object) -> str:
        if not isinstance(question, str):
            raise ConfigurationError(f"question must be a str, got {type(question).__name__}")
        if not question.strip():
            raise ConfigurationError("question is empty")
        if len(question) > self._max_question_chars:
            raise ConfigurationError(
                f"question has {len(question)} characters, more than "
                f"max_question_chars={self._max_question_chars}"
            )
        return question

    def _choose(self, names: Sequence[str] | None) -> list[Expert]:
        if names is None:
            return list(self._experts.values())
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigurationError(f"experts must be a list of names, got {names!r}")
        unknown = [name for name in names if name not in self._experts]
        if unknown:
            raise ConfigurationError(
                f"unknown expert(s) {unknown!r}; known: {', '.join(self._experts)}"
            )
        if not names:
            raise ConfigurationError("experts is empty: name at least one, or pass None")
        return [self._experts[name] for name in dict.fromkeys(names)]

    def collected(self, query_id: str) -> tuple[ExpertResponse, ...] | None:
        """The responses kept for ``query_id``, or None once evicted, expired or unknown."""
        return self._collector.get(query_id)

    def statistics(self) -> CircleStatistics:
        """A frozen snapshot of the counters, the query pool's and the collector's."""
        return CircleStatistics(
            experts=self.experts,
            consultations=self._consultations,
            in_flight=self._in_flight,
            answers=self._answers,
            errors=self._errors,
            timeouts=self._timeouts,
            not_retained=self._not_retained,
            abandoned=len(self._abandoned),
            pool=self._pool.statistics(),
            collector=self._collector.statistics(),
        )


# --- built-in experts: pure functions, the same question always gets the same answer ------

_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
# Common English words that say nothing about a topic.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their them then there these they
    this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Words that make a claim absolute, in the order the skeptic reports them.
_ABSOLUTE_TEXT = "always never every everyone nobody none guaranteed proven impossible certainly"
_ABSOLUTES = (*_ABSOLUTE_TEXT.split(), "definitely", "best", "worst")
_QUESTION_KINDS = (
    (("how",), "a how-to question: the answer should be steps", 0.8),
    (("why",), "a question about causes: the answer should give reasons", 0.8),
    (
        ("what", "which", "who", "whom", "where", "when"),
        "a factual question: the answer should be specific",
        0.7,
    ),
    (
        ("is", "are", "can", "could", "does", "do", "did", "should", "will", "would", "was"),
        "a yes/no question: the answer should start with yes or no",
        0.75,
    ),
)


def _words(question: str) -> list[str]:
    return _WORD.findall(question.casefold())


def keyword_analyst(question: str) -> ExpertAnswer:
    """Names the question's main topics: its most frequent words that are not stopwords."""
    keywords = [word for word in _words(question) if word not in _STOPWORDS and len(word) > 2]
    if not keywords:
        return ExpertAnswer("No clear topic: the question has no keywords.", 0.2)
    counts = Counter(keywords)  # most_common keeps first-seen order among equal counts
    top = [word for word, _ in counts.most_common(3)]
    # More distinct keywords make the topic clearer, up to a point.
    return ExpertAnswer(f"Key topics: {', '.join(top)}.", min(0.9, 0.3 + 0.15 * len(counts)))


def complexity_estimator(question: str) -> ExpertAnswer:
    """Rates how hard the question is to answer from its length and number of clauses."""
    words = len(_words(question))
    clauses = 1 + len(re.findall(r"[,;:]|\b(?:and|or|but|if|because)\b", question.casefold()))
    score = words + 4 * (clauses - 1)
    if score <= 10:
        level, confidence = "simple", 0.8
    elif score <= 30:
        level, confidence = "moderate", 0.6
    else:
        level, confidence = "complex", 0.8
    return ExpertAnswer(
        f"Complexity: {level} ({words} words, {clauses} clause{'s' if clauses != 1 else ''}).",
        confidence,
    )


def question_classifier(question: str) -> ExpertAnswer:
    """Says what kind of answer the question asks for, from its first word."""
    words = _words(question)
    first = words[0] if words else ""
    for starters, description, confidence in _QUESTION_KINDS:
        if first in starters:
            return ExpertAnswer(f"This is {description}.", confidence)
    return ExpertAnswer("This is an open request: the answer may take any form.", 0.3)


def skeptic(question: str) -> ExpertAnswer:
    """Flags absolute claims (always, never, guaranteed, ...) that deserve a counterexample."""
    words = set(_words(question))
    found = [word for word in _ABSOLUTES if word in words]
    if not found:
        return ExpertAnswer("No absolute claims found; still ask for evidence.", 0.3)
    quoted = ", ".join(f"'{word}'" for word in found)
    return ExpertAnswer(
        f"Be careful: {quoted} {'is a strong claim' if len(found) == 1 else 'are strong claims'}"
        "; look for a counterexample.",
        min(0.95, 0.5 + 0.15 * len(found)),
    )


_BUILTINS: tuple[tuple[str, Callable[[str], ExpertAnswer]], ...] = (
    ("keyword_analyst", keyword_analyst),
    ("complexity_estimator", complexity_estimator),
    ("question_classifier", question_classifier),
    ("skeptic", skeptic),
)


def builtin_experts() -> list[Expert]:
    """The four deterministic local experts, freshly wrapped."""
    return [FunctionExpert(name, function) for name, function in _BUILTINS]


# --- plug-ins ------------------------------------------------------------------------------

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_SPEC_ITEM = re.compile(
    rf"(?:(?P<name>[A-Za-z0-9_.-]+)=)?(?P<module>{_DOTTED}):(?P<attr>{_DOTTED})"
)


def _load_one(item: str) -> Expert:
    match = _SPEC_ITEM.fullmatch(item)
    if match is None:
        raise ConfigurationError(
            f"bad expert spec {item!r}: expected 'package.module:callable' "
            "(optionally 'name=package.module:callable')"
        )
    module_name, attr_path = match["module"], match["attr"]
    # Importing runs the module's code, as any plug-in system does; nothing is eval'd.
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"expert spec {item!r}: cannot import {module_name!r} ({exc})"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"expert spec {item!r}: importing {module_name!r} failed: {_describe(exc)}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"expert spec {item!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(target):
        raise ConfigurationError(
            f"expert spec {item!r}: {attr_path!r} is a {type(target).__name__}, not callable"
        )
    if inspect.isclass(target):
        raise ConfigurationError(
            f"expert spec {item!r}: {attr_path!r} is a class; point the spec at an instance "
            "or a function"
        )
    own_name = getattr(target, "name", None)
    if not (isinstance(own_name, str) and own_name):
        own_name = None
    name = match["name"] or own_name or getattr(target, "__name__", None)
    if not isinstance(name, str) or not name:
        name = attr_path.rsplit(".", 1)[-1]
    if own_name is not None and name == own_name and not inspect.isroutine(target):
        return target  # type: ignore[return-value]  # an Expert: .name and async __call__
    # Functions (sync or async) and renamed or nameless callables get wrapped with a name.
    return FunctionExpert(name, target)


def load_experts(spec: str) -> list[Expert]:
    """Experts from ``"pkg.mod:callable[,other.mod:obj.attr]"``; ``name=`` renames one.

    A callable takes the question and returns an ``ExpertAnswer`` (or an awaitable of one).
    Raises ConfigurationError for a malformed spec, a missing module or attribute, or
    something that is not callable.
    """
    if not isinstance(spec, str):
        raise ConfigurationError(f"expert spec must be a str, got {type(spec).__name__}")
    items = [item.strip() for item in spec.split(",")]
    if not any(items):
        raise ConfigurationError("expert spec is empty: expected 'package.module:callable'")
    if not all(items):
        raise ConfigurationError(f"expert spec {spec!r} has an empty item (a stray comma?)")
    experts = [_load_one(item) for item in items]
    names = [expert.name for expert in experts]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(
            f"expert spec {spec!r} names {duplicates!r} twice; rename with 'name=module:callable'"
        )
    return experts
