"""The embedded model with several sequences decoded together (llm_parallel > 1)."""

import pytest
from pydantic import BaseModel, Field

from retable.llm import LLMClient
from retable.llm.batched import BatchedEngine, _common, _Request
from retable.llm.cache import CallCache
from retable.llm.embedded import EmbeddedLLM


class Animal(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    legs: int = Field(ge=0, le=1000)


def _messages(topic: str) -> list[dict]:
    system = "You answer with one JSON object and nothing else. " * 8  # a long shared prefix, as the pipeline's templates have
    return [{"role": "system", "content": system}, {"role": "user", "content": f'Name one animal that lives in {topic}, as '
                                                                               f'{{"name": ..., "legs": ...}}.'}]


def test_the_shared_prefix_always_leaves_the_last_prompt_token_to_decode():
    assert _common([1, 2, 3, 4], [1, 2, 9]) == 2
    assert _common([1, 2, 3], [1, 2, 3]) == 2  # the same prompt again: its last token still gives the reply's first logits
    assert _common([], [5, 6]) == 0
    assert _common([1, 2, 3, 4, 5], [1, 2]) == 1


def _engine_without_llama(parallel: int, cells: int, prefix: list[int]) -> BatchedEngine:
    """The engine's admission bookkeeping alone: no model, no sampler."""
    engine = BatchedEngine.__new__(BatchedEngine)
    engine.parallel, engine.cells, engine.prefix, engine.pending = parallel, cells, prefix, []
    engine._grammar_sampler = lambda grammar: object()
    engine._chain = lambda request: None
    return engine


def test_requests_are_admitted_while_their_worst_case_fits_the_kv_pool():
    shared = list(range(100))
    engine = _engine_without_llama(parallel=4, cells=900, prefix=shared)
    engine.pending = [_Request(shared + [1000 + i] * 50, "", 0.7, 150, i) for i in range(4)]  # 150 prompt + 150 reply tokens each
    slots = {}
    admitted = engine._admit(slots)
    assert admitted == [(0, 100), (1, 100)]  # 100 prefix cells + 2 x 300 fit in 900; a third would need 1000
    assert [r.seed for r in engine.pending] == [2, 3]  # the rest wait, in arrival order
    del slots[0]
    assert engine._admit(slots) == [(0, 100)]  # a finished sequence makes room for the next


def test_a_request_alone_is_admitted_even_when_the_prefix_crowds_the_pool():
    prefix = list(range(900))
    engine = _engine_without_llama(parallel=2, cells=1000, prefix=prefix)
    engine.pending = [_Request(prefix[:40] + [7] * 200, "", 0.7, 100, 1)]
    assert engine._admit({}) == [(0, 0)]  # not shared: it replaces the prefix and holds only its own cells


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
    engine = llm._engine
    assert engine.prefix  # the system prompt was decoded once and shared
    import llama_cpp

    for seq in range(engine.parallel):  # every prompt's cells moved out of the prompt context, every finished reply's freed
        assert llama_cpp.llama_memory_seq_pos_max(engine.prompt_memory, seq) == -1
        assert llama_cpp.llama_memory_seq_pos_max(engine.memory, seq) == -1
    assert llama_cpp.llama_memory_seq_pos_max(engine.prompt_memory, engine.prefix_seq) == len(engine.prefix) - 1  # the prefix stays
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


@pytest.mark.integration
def test_a_prompt_moved_into_the_reply_pool_continues_as_if_decoded_in_place():
    """At temperature 0 the engine (prompt decoded in the prompt context, its KV cells moved into the reply
    pool) writes what llama-cpp-python writes decoding the same prompt in one context with the same
    attention kernel (flash attention, the engine's default) and the same grammar."""
    from llama_cpp import Llama, LlamaGrammar

    schema = Animal.model_json_schema()
    llm = EmbeddedLLM(parallel=2)
    engine = llm._batched()
    reference = Llama(model_path=llm._load().model_path, n_ctx=2048, flash_attn=True, verbose=False)
    for topic in ("the sea", "a desert", "the arctic"):
        prompt = engine.formatter(messages=_messages(topic)).prompt
        grammar = LlamaGrammar.from_string(engine._grammar(schema), verbose=False)
        expected = reference.create_completion(prompt=prompt, grammar=grammar, temperature=0.0, max_tokens=48)["choices"][0]["text"]
        assert llm.generate(_messages(topic), schema, temperature=0.0, max_tokens=48, seed=3).text == expected
    engine.close()
