"""The LLM backends: LangChain (with LangChain's own fake chat model), the embedded model, and the
OpenAI-compatible backend against a real llama-cpp-python server on 127.0.0.1."""

import json

import pytest
from pydantic import BaseModel, Field

from retable.llm import LLMClient
from retable.llm.embedded import EmbeddedLLM, embedded_model_path
from retable.llm.langchain_chat import LangChainLLM
from llama_servers import llama_servers
from retable.llm.openai_compat import OpenAICompatLLM
from retable.errors import UserError


class Colours(BaseModel):
    colours: list[str] = Field(min_length=1, max_length=3)


MESSAGES = [{"role": "system", "content": "Reply with JSON only."}, {"role": "user", "content": 'Name three colours as {"colours": [...]}.'}]


def test_langchain_backend_wraps_any_chat_model():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    chat = FakeListChatModel(responses=["no json here", '{"colours": ["red", "blue"]}'])
    client = LLMClient(LangChainLLM(chat), None, temperature=0.0, max_tokens=64, max_retries=1)
    assert client.structured(MESSAGES, Colours, seed=0).colours == ["red", "blue"]
    assert client.usage.current().calls == 2  # the first reply was invalid and retried


def test_unknown_embedded_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown embedded model"):
        embedded_model_path("gpt-17")


def _parts(tmp_path, monkeypatch, chunks: list[bytes]) -> None:
    """Fake PyPI packages part1..partN holding data/part0N.bin, registered as the model 'split-model'."""
    from retable.llm import embedded

    for i, chunk in enumerate(chunks, 1):
        pkg = tmp_path / "site" / f"fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "split-model", [(f"fake_part{i}", f"data/part0{i}.bin") for i in range(1, len(chunks) + 1)])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_model_in_parts_is_assembled_once_into_the_cache(tmp_path, monkeypatch):
    _parts(tmp_path, monkeypatch, [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7])
    path = embedded_model_path("split-model")
    assert path == tmp_path / "cache" / "retable" / "models" / "split-model.gguf"
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50 + b"c" * 7
    stamp = path.stat().st_mtime_ns
    assert embedded_model_path("split-model") == path and path.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_a_missing_part_or_a_non_gguf_model_is_a_user_error(tmp_path, monkeypatch):
    _parts(tmp_path, monkeypatch, [b"JUNK" + b"a" * 10, b"b"])
    with pytest.raises(UserError, match="not a GGUF file"):
        embedded_model_path("split-model")
    from retable.llm import embedded

    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "split-model", [("no_such_package_xyz", "data/part01.bin")])
    with pytest.raises(UserError, match="needs the PyPI package no-such-package-xyz"):
        embedded_model_path("split-model")


@pytest.mark.integration
def test_embedded_model_returns_schema_valid_json():
    client = LLMClient(EmbeddedLLM(), None, temperature=0.2, max_tokens=64, max_retries=2)
    reply = client.structured(MESSAGES, Colours, seed=1)
    assert 1 <= len(reply.colours) <= 3
    assert client.usage.current().completion_tokens > 0


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    with llama_servers(1, tmp_path_factory.mktemp("server"), n_threads=2) as urls:
        yield urls[0]


@pytest.mark.integration
def test_openai_backend_against_a_local_llama_cpp_server(llama_server):
    llm = OpenAICompatLLM(model="smollm2", base_url=llama_server, api_key="local")
    llm.check_reachable()
    client = LLMClient(llm, None, temperature=0.2, max_tokens=64, max_retries=2)
    reply = client.structured(MESSAGES, Colours, seed=1)
    assert 1 <= len(reply.colours) <= 3
    usage = client.usage.current()
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert llm._mode in {"json_schema", "json_object"}
    json.dumps(reply.model_dump())
