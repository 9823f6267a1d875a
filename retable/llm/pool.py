"""Several OpenAI-compatible endpoints serving the same model (vLLM or llama.cpp replicas) as one
backend: each endpoint has its own number of requests in flight; a request goes to the least-loaded
healthy endpoint, and one that fails (EndpointDown) is rested for `cooldown` seconds while the
request moves to the next endpoint. The cache key names the model, not the endpoint, so replies
cached from one replica serve a rerun on another."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from retable.llm.base import LLM, Message, Reply
from retable.errors import EndpointDown, UserError


@dataclass
class Member:
    llm: LLM
    slots: int
    where: str
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    down_until: float = 0.0
    errors: list[str] = field(default_factory=list)


class EndpointPool(LLM):
    parallel_safe = True
    supports_schema = True

    def __init__(self, members: list[tuple[LLM, int]], cooldown: float = 30.0):
        if not members:
            raise UserError("no LLM endpoint given — pass --base-url URL (several, comma-separated, for a pool)")
        models = {llm.model for llm, _ in members}
        if len(models) > 1:
            raise UserError(f"the endpoints serve different models {sorted(models)} — a pool needs one model (set --model)")
        super().__init__(members[0][0].model)
        self.backend = members[0][0].backend  # same cache keys as one endpoint of that backend
        self.members = [Member(llm, slots, getattr(llm, "base_url", None) or f"endpoint {i}") for i, (llm, slots) in enumerate(members)]
        self.max_in_flight = sum(slots for _, slots in members)
        self.cooldown = cooldown
        self._cond = threading.Condition()

    def __getstate__(self) -> dict:  # each Ray worker gets its own counters
        return {k: v for k, v in self.__dict__.items() if k != "_cond"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cond = threading.Condition()
        for m in self.members:
            m.in_flight = 0

    def check_reachable(self) -> None:
        """Fails only when no endpoint answers; the ones that do not are rested first."""
        reachable = 0
        for m in self.members:
            try:
                getattr(m.llm, "check_reachable", lambda: None)()
                reachable += 1
            except EndpointDown as exc:
                m.failures, m.down_until = m.failures + 1, time.monotonic() + self.cooldown
                m.errors.append(str(exc))
        if not reachable:
            raise EndpointDown(f"none of the {len(self.members)} LLM endpoints answers — {self.members[0].errors[-1]}")

    def _acquire(self, tried: set[int], first: int) -> int | None:
        """The index of the healthy, untried member with the lowest load (ties: from `first` on),
        waiting while all of those are busy; None when no untried healthy member is left."""
        n = len(self.members)
        with self._cond:
            while True:
                now = time.monotonic()
                healthy = [i for i in range(n) if i not in tried and self.members[i].down_until <= now]
                if not healthy:
                    return None
                free = [i for i in healthy if self.members[i].in_flight < self.members[i].slots]
                if free:
                    best = min(free, key=lambda i: (self.members[i].in_flight / self.members[i].slots, (i - first) % n))
                    self.members[best].in_flight += 1
                    return best
                self._cond.wait(timeout=1.0)

    def _release(self, i: int, error: str | None, answered: bool = True) -> None:
        with self._cond:
            m = self.members[i]
            m.in_flight -= 1
            if error is None:
                m.calls += answered
            else:
                m.failures += 1
                m.down_until = time.monotonic() + self.cooldown
                m.errors = (m.errors + [error])[-3:]
            self._cond.notify_all()

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        tried: set[int] = set()
        last = ""
        while True:
            i = self._acquire(tried, first=seed % len(self.members))
            if i is None:
                last = last or next((m.errors[-1] for m in self.members if m.errors), "none")
                raise EndpointDown(f"every LLM endpoint failed or is resting ({len(self.members)} in the pool; last error: {last}) — check the "
                                   "servers and rerun; finished calls are cached")
            try:
                reply = self.members[i].llm.generate(messages, schema, temperature=temperature, max_tokens=max_tokens, seed=seed)
            except EndpointDown as exc:
                self._release(i, str(exc))
                tried.add(i)
                last = str(exc)
                continue
            except BaseException:  # not the endpoint's fault (a refused key, an interrupt): no failover
                self._release(i, None, answered=False)
                raise
            self._release(i, None)
            return reply

    def stats(self) -> list[dict]:
        """Per endpoint: where, slots, answered calls, failures, and whether it is resting now."""
        now = time.monotonic()
        return [{"endpoint": m.where, "slots": m.slots, "calls": m.calls, "failures": m.failures, "resting": m.down_until > now,
                 "last_error": m.errors[-1] if m.errors else None} for m in self.members]
