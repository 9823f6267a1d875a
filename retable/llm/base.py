"""The one interface every backend implements: messages + JSON schema -> reply text + token usage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


class Reply(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int


class LLM(ABC):
    """A chat model. Subclasses implement `generate`; validation, retries and caching live in
    `LLMClient`, so every backend gets them the same way.

    `supports_schema` says whether the backend constrains decoding to the schema itself (grammar or
    response_format); when it does not, the prompt carries the schema and the reply is only validated.
    """

    backend: str = "abstract"
    supports_schema: bool = False
    parallel_safe: bool = False  # may several threads call generate at once (remote servers: yes; llama.cpp in-process: no)
    max_in_flight: int | None = None  # a pool of endpoints sets the sum of their slots; otherwise the client's concurrency

    def __init__(self, model: str):
        self.model = model

    @abstractmethod
    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        """Return the model's reply to `messages`, shaped by `schema` where the backend can."""
