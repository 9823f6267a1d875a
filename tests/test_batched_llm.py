"""The embedded model with several sequences decoded together (llm_parallel > 1)."""

import pytest
from pydantic import BaseModel, Field

from retable.llm import LLMClient
from retable.llm.batched import _common
from retable.llm.cache import CallCache
from retable.llm.embedded import EmbeddedLLM


class Animal(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    legs: int = Field(ge=0, le=1000)


def _messages(topic: str) -> list[dict]:
    system = "You answer with one JSON object and nothing else. " * 8  # a long shared prefix, as the pipeline's templates have
    return [{"role": "system", "content": system}, {"role": "user", "content": f'Name one animal that lives in {topic}, as {{"name": ..., "legs": ...}}.'}]


def test_the_shared_prefix_always_leaves_the_last_prompt_token_to_decode():
    assert _common([1, 2, 3, 4], [1, 2, 9]) == 2
    assert _common([1, 2, 3], [1, 2, 3]) == 2  # the same prompt again: its last token still gives the reply's first logits
    assert _common([], [5, 6]) == 0
    assert _common([1, 2, 3, 4, 5], [1, 2]) == 1


@pytest.mark.integration
def test_batched_calls_return_schema_valid_json_and_a_rerun_is_served_from_the_cache(tmp_path):
    topics = ["the sea", "a desert", "a forest", "the arctic", "a city", "a river", "the mountains"]
    llm = EmbeddedLLM(parallel=3)
    assert llm.parallel_safe and llm.max_in_flight == 3
    cache = CallCache(tmp_path / "cache.sqlite")
    client = LLMClient(llm, cache, temperature=0.7, max_tokens=48, max_retries=2)
    assert client.concurrency == 3
    first = client.map(lambda t: client.structured(_messages(t), Animal, seed=len(t)), topics, desc="animals")
    assert len(first) == len(topics) and all(isinstance(a, Animal) for a in first)
    assert llm._engine.prefix  # the system prompt was decoded once and shared
    calls = client.usage.current().calls
    assert calls >= len(topics) and client.usage.current().completion_tokens > 0
    again = client.map(lambda t: client.structured(_messages(t), Animal, seed=len(t)), topics, desc="animals")
    assert again == first and client.usage.current().calls == calls  # same keys as the sequential path: nothing is asked twice
    llm._engine.close()
    cache.close()


@pytest.mark.integration
def test_max_tokens_cuts_a_reply_and_the_engine_keeps_serving():
    llm = EmbeddedLLM(parallel=2)
    short = llm.generate(_messages("the sea"), Animal.model_json_schema(), temperature=0.7, max_tokens=3, seed=1)
    assert short.completion_tokens == 3  # cut by max_tokens, not finished
    full = llm.generate(_messages("a forest"), Animal.model_json_schema(), temperature=0.0, max_tokens=64, seed=1)
    assert Animal.model_validate_json(full.text).name
    llm._engine.close()
