import json

import pytest
from pydantic import BaseModel

from retable.llm import LLMClient
from retable.llm.cache import CallCache
from retable.llm.client import parse_reply
from retable.llm.fake import FakeLLM
from retable.errors import InvalidReply


class Answer(BaseModel):
    word: str
    n: int


def test_valid_reply_is_parsed_and_usage_counted(tmp_path):
    llm = FakeLLM()
    llm.enqueue({"word": "hi", "n": 2})
    client = LLMClient(llm, CallCache(tmp_path / "c.sqlite"), temperature=0.5, max_tokens=50, max_retries=1)
    assert client.structured([{"role": "user", "content": "say hi"}], Answer, seed=1) == Answer(word="hi", n=2)
    u = client.usage.current()
    assert (u.calls, u.cached, u.invalid) == (1, 0, 0) and u.prompt_tokens == 2


def test_invalid_replies_are_retried_then_counted(tmp_path):
    llm = FakeLLM()
    llm.enqueue("not json", {"word": "x"}, {"word": "ok", "n": 1})
    client = LLMClient(llm, None, temperature=0.5, max_tokens=50, max_retries=2)
    assert client.structured([{"role": "user", "content": "q"}], Answer, seed=1).word == "ok"
    assert len({h["seed"] for h in llm.history}) == 3  # each retry asks with another seed
    llm.enqueue("[", "{}", "null")
    with pytest.raises(InvalidReply):
        client.structured([{"role": "user", "content": "q2"}], Answer, seed=1)
    assert client.usage.current().invalid == 1


def test_cache_makes_a_rerun_free_and_keys_on_settings(tmp_path):
    llm = FakeLLM(responder=lambda m, s: json.dumps({"word": m[-1]["content"], "n": 1}))
    cache = CallCache(tmp_path / "c.sqlite")
    msgs = [{"role": "user", "content": "abc"}]
    LLMClient(llm, cache, temperature=0.5, max_tokens=50, max_retries=0).structured(msgs, Answer, seed=3)
    again = LLMClient(llm, CallCache(tmp_path / "c.sqlite"), temperature=0.5, max_tokens=50, max_retries=0)
    again.structured(msgs, Answer, seed=3)
    assert len(llm.history) == 1 and again.usage.current().cached == 1
    LLMClient(llm, cache, temperature=0.9, max_tokens=50, max_retries=0).structured(msgs, Answer, seed=3)
    assert len(llm.history) == 2


@pytest.mark.parametrize("text", ["", "{", '{"word": 1, "n": "x"}', '{"word": "a"}', "[1, 2]", "__import__('os')"])
def test_parse_reply_rejects_what_does_not_fit(text):
    with pytest.raises(ValueError):
        parse_reply(text, Answer)
