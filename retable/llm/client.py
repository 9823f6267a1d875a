"""Structured calls: cache lookup, the backend call, JSON + pydantic validation, bounded retries,
and per-stage token accounting."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from retable.llm.base import LLM, Message, Reply
from retable.llm.cache import CallCache
from retable.errors import BudgetExhausted, InvalidReply
from retable.files import fingerprint
from retable.records import StageUsage

T = TypeVar("T", bound=BaseModel)
J = TypeVar("J")
R = TypeVar("R")


class UsageLog:
    """Counts calls, cache hits, invalid replies, tokens and seconds per pipeline stage."""

    def __init__(self):
        self.stage = "unstaged"
        self.by_stage: dict[str, StageUsage] = defaultdict(StageUsage)

    def current(self) -> StageUsage:
        return self.by_stage[self.stage]

    def add(self, usage: StageUsage) -> None:
        """Add another process's counts (a Ray worker's) to the current stage."""
        stats = self.current()
        for name in StageUsage.model_fields:
            setattr(stats, name, getattr(stats, name) + getattr(usage, name))

    def total(self) -> StageUsage:
        out = UsageLog()
        for u in self.by_stage.values():
            out.add(u)
        return out.current()


def parse_reply(text: str, schema_cls: type[T]) -> T:
    """json.loads + pydantic; never eval. Raises ValueError on anything that does not fit."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    try:
        return schema_cls.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"does not match {schema_cls.__name__}: {exc.errors()[0]['msg']}") from None


class LLMClient:
    def __init__(self, llm: LLM, cache: CallCache | None, *, temperature: float, max_tokens: int, max_retries: int, usage: UsageLog | None = None,
                 budget_tokens: int | None = None, concurrency: int = 1, executor=None):
        self.llm = llm
        self.concurrency = (llm.max_in_flight or concurrency) if llm.parallel_safe else 1
        self.executor = executor  # None: threads here; an executor with `map_calls` (Ray) runs the jobs elsewhere
        self._lock = threading.Lock()
        self.budget_tokens = budget_tokens  # new (uncached) tokens this client may spend
        self.cache = cache
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.usage = usage or UsageLog()

    def __getstate__(self) -> dict:
        """What a worker process gets: the cache as an in-memory snapshot that records new replies, a
        fresh usage log for the same stage, and what is left of the token budget."""
        from retable.llm.cache import CallCache, MemoryCache

        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        if isinstance(self.cache, CallCache):
            state["cache"] = MemoryCache(self.cache.snapshot())
        if self.budget_tokens is not None:
            total = self.usage.total()
            state["budget_tokens"] = max(0, self.budget_tokens - total.prompt_tokens - total.completion_tokens)
        usage = UsageLog()
        usage.stage = self.usage.stage
        state.update(usage=usage, executor=None, concurrency=1)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add_usage(self, usage: StageUsage) -> None:
        with self._lock:
            self.usage.add(usage)

    def _key(self, messages: list[Message], schema: dict, seed: int) -> str:
        return fingerprint([self.llm.backend, self.llm.model, messages, schema, self.temperature, self.max_tokens, seed])

    def _call(self, messages: list[Message], schema: dict, seed: int) -> Reply:
        key = self._key(messages, schema, seed)
        stats = self.usage.current()
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            with self._lock:
                stats.cached += 1
            return cached
        if self.budget_tokens is not None:
            with self._lock:  # calls in flight on other threads are not counted yet: with concurrency the bound is per call
                total = self.usage.total()
            used = total.prompt_tokens + total.completion_tokens
            estimate = sum(len(m["content"]) for m in messages) // 4 + self.max_tokens  # ~4 characters a token, worst-case reply
            if used + estimate > self.budget_tokens:
                raise BudgetExhausted(used, self.budget_tokens)
        start = time.perf_counter()
        reply = self.llm.generate(messages, schema, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed)
        with self._lock:
            stats.seconds += time.perf_counter() - start
            stats.calls += 1
            stats.prompt_tokens += reply.prompt_tokens
            stats.completion_tokens += reply.completion_tokens
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply

    def structured(self, messages: list[Message], schema_cls: type[T], *, seed: int, check: Callable[[T], T] | None = None) -> T:
        """One validated object; each retry uses the next seed. `check` may clean the object or raise
        ValueError to reject it. Raises InvalidReply when every try fails."""
        schema = schema_cls.model_json_schema()
        last = ""
        for attempt in range(self.max_retries + 1):
            reply = self._call(messages, schema, seed * 1009 + attempt)
            try:
                obj = parse_reply(reply.text, schema_cls)
                return check(obj) if check else obj
            except ValueError as exc:
                last = str(exc)
        self.usage.current().invalid += 1
        raise InvalidReply(last)

    def map(self, fn: Callable[[J], R], jobs: Iterable[J], *, desc: str, unit: str = "call") -> list[R]:
        """`fn` over `jobs`, in order, `concurrency` at a time (1 for in-process models), with a progress bar."""
        jobs = list(jobs)
        if self.executor is not None and self.executor.remote and len(jobs) > 1:
            return self.executor.map_calls(self, fn, jobs, desc=desc, unit=unit)
        if self.concurrency <= 1 or len(jobs) <= 1:
            with tqdm(jobs, desc=desc, unit=unit) as bar:  # closed before an error message is printed
                return [fn(j) for j in bar]
        with ThreadPoolExecutor(self.concurrency) as pool, tqdm(total=len(jobs), desc=desc, unit=unit) as bar:
            futures = [pool.submit(fn, j) for j in jobs]
            for f in futures:
                f.add_done_callback(lambda _: bar.update(1))
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
