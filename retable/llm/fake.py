"""A scripted fake LLM for tests: queue replies with `enqueue`, or give a responder function;
every call is recorded in `history`."""

from __future__ import annotations

import json
from collections import deque
from typing import Callable

from retable.llm.base import LLM, Message, Reply

Responder = Callable[[list[Message], dict], str]


class FakeLLM(LLM):
    backend = "fake"
    supports_schema = True

    def __init__(self, responder: Responder | None = None, model: str = "scripted", pass_seed: bool = False):
        super().__init__(model)
        self.pass_seed = pass_seed  # responder(messages, schema, seed=...): replies depend on the request alone
        self.queue: deque[str] = deque()
        self.responder = responder
        self.history: list[dict] = []

    def enqueue(self, *replies: str | dict) -> None:
        for r in replies:
            self.queue.append(r if isinstance(r, str) else json.dumps(r))

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        self.history.append({"messages": messages, "schema": schema, "seed": seed})
        if self.queue:
            text = self.queue.popleft()
        elif self.responder is not None:
            text = self.responder(messages, schema, seed=seed) if self.pass_seed else self.responder(messages, schema)
        else:
            raise AssertionError("FakeLLM has no queued reply and no responder")
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Reply(text, prompt_tokens, len(text.split()))
