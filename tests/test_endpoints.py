"""A pool of OpenAI-compatible endpoints: requests fan out with each endpoint's own concurrency, a
failing endpoint is rested and its requests move on, the pool's pairs equal one endpoint's, and the
CLI takes several --base-url. Fake servers for the logic; real llama.cpp servers for the last test."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import DESCRIPTION
from fake_server import FakeOpenAI
from pydantic import BaseModel

from retable.llm import LLMClient
from retable.llm.factory import make_llm
from llama_servers import free_port, llama_servers
from retable.llm.openai_compat import OpenAICompatLLM
from retable.llm.pool import EndpointPool
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.errors import EndpointDown, InvalidReply, UserError

GEN = dict(llm="openai", model="fake", n_subtopics=4, items_per_subtopic=4, rounds=1)
MESSAGES = [{"role": "user", "content": "Name one colour."}]


class Colour(BaseModel):
    colour: str


def _colours(*servers: FakeOpenAI) -> None:
    for s in servers:
        s.responder = lambda messages, schema, seed=None: json.dumps({"colour": f"colour {seed}"})


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def _pool(urls: list[str], slots: int = 2, cooldown: float = 30.0) -> EndpointPool:
    return EndpointPool([(OpenAICompatLLM("fake", u, "key", timeout=5.0, max_retries=0), slots) for u in urls], cooldown=cooldown)


def _call(pool: EndpointPool, seed: int):
    return pool.generate(MESSAGES, Colour.model_json_schema(), temperature=0.0, max_tokens=16, seed=seed)


def test_requests_fan_out_within_each_endpoints_concurrency():
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        _colours(a, b, c)
        for s in (a, b, c):
            s.delay = 0.05
        pool = _pool([a.url, b.url, c.url], slots=2)
        assert pool.max_in_flight == 6 and LLMClient(pool, None, temperature=0, max_tokens=16, max_retries=0, concurrency=1).concurrency == 6
        with ThreadPoolExecutor(12) as threads:
            list(threads.map(lambda n: _call(pool, n), range(60)))
        assert min(s.answered for s in (a, b, c)) >= 10  # spread out, not all on the first endpoint
        assert all(1 <= s.max_in_flight <= 2 for s in (a, b, c))  # never more than the endpoint's slots
        assert sum(m["calls"] for m in pool.stats()) == 60 and all(m["failures"] == 0 for m in pool.stats())


def test_a_failing_endpoint_is_rested_and_its_requests_go_elsewhere():
    with FakeOpenAI() as good, FakeOpenAI(mode="500") as broken:
        _colours(good)
        pool = _pool([broken.url, _dead_url(), good.url], slots=1)
        for n in range(9):
            assert json.loads(_call(pool, n).text)
        stats = {m["endpoint"]: m for m in pool.stats()}
        assert stats[good.url]["calls"] == 9
        assert stats[broken.url]["failures"] == 1 and stats[broken.url]["resting"] and "HTTP 500" in stats[broken.url]["last_error"]
        assert broken.requests == 1  # rested after its failure, not asked again within the cooldown
        assert sum(m["failures"] for m in stats.values()) == 2


def test_a_rested_endpoint_comes_back_after_the_cooldown():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        _colours(a, b)
        a.fail_after = 0
        pool = _pool([a.url, b.url], slots=1, cooldown=0.0)
        _call(pool, 0)
        a.fail_after = None
        for n in range(1, 7):
            _call(pool, n)
        assert a.answered > 0 and pool.stats()[0]["failures"] == 1


def test_every_endpoint_down_is_one_clear_error():
    pool = _pool([_dead_url(), _dead_url()])
    with pytest.raises(EndpointDown, match="every LLM endpoint failed"):
        _call(pool, 1)
    with pytest.raises(EndpointDown, match="none of the 2 LLM endpoints answers"):
        _pool([_dead_url(), _dead_url()]).check_reachable()


def test_a_pool_needs_one_model_and_the_openai_backend():
    with pytest.raises(UserError, match="different models"):
        EndpointPool([(OpenAICompatLLM("a", _dead_url()), 1), (OpenAICompatLLM("b", _dead_url()), 1)])
    with pytest.raises(ValueError, match="--llm openai"):
        RunConfig(endpoints=[{"url": "http://x/v1"}])


def test_the_pool_writes_the_same_pairs_as_one_endpoint(tmp_path):
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c, FakeOpenAI() as single:
        one = RunConfig(**GEN, base_url=single.url)
        run_adapt(DESCRIPTION, tmp_path / "one", one, make_llm(one, "key"), log=lambda m: None, generate_only=True)
        many = RunConfig(**GEN, endpoints=[{"url": a.url, "concurrency": 1}, {"url": b.url}, {"url": c.url, "concurrency": 3}])
        llm = make_llm(many, "key")
        assert isinstance(llm, EndpointPool) and llm.max_in_flight == 1 + many.concurrency + 3
        run_adapt(DESCRIPTION, tmp_path / "many", many, llm, log=lambda m: None, generate_only=True)
        assert (tmp_path / "many" / "generated_pairs.jsonl").read_bytes() == (tmp_path / "one" / "generated_pairs.jsonl").read_bytes()
        stats = json.loads((tmp_path / "many" / "endpoints.json").read_text())
        assert [s["calls"] for s in stats] == [a.answered, b.answered, c.answered] and all(s.answered > 0 for s in (a, b, c))
        assert sum(s["calls"] for s in stats) == single.answered


def test_cli_takes_several_base_urls_and_survives_a_dead_one(tmp_path):
    with FakeOpenAI() as server:
        cmd = [sys.executable, "-m", "retable.cli", "generate", "-", "--out", str(tmp_path / "run"), "--llm", "openai", "--model", "fake",
               "--base-url", f"{_dead_url()},{server.url}", "--rounds", "1"]
        r = subprocess.run(cmd, input=DESCRIPTION, capture_output=True, text=True, timeout=300, env={**os.environ, "RETABLE_API_KEY": "x"})
        assert r.returncode == 0, r.stderr[-2000:]
        stats = json.loads((tmp_path / "run" / "endpoints.json").read_text())
        assert stats[0]["calls"] == 0 and stats[0]["failures"] >= 1 and stats[1]["calls"] == server.answered > 0


@pytest.mark.integration
def test_a_pool_of_local_llama_cpp_servers(tmp_path):
    with llama_servers(2, tmp_path, n_threads=1) as urls:
        pool = EndpointPool([(OpenAICompatLLM("smollm2", u, "local"), 1) for u in urls])
        pool.check_reachable()
        client = LLMClient(pool, None, temperature=0.2, max_tokens=48, max_retries=2)

        def ask(n):
            try:
                return client.structured(MESSAGES, Colour, seed=n)
            except InvalidReply:  # a 135M model's JSON string may hold a raw newline; counted, not the pool's concern
                return None

        replies = client.map(ask, range(6), desc="pool")
        assert any(r is not None and r.colour.strip() for r in replies)
        assert [m["calls"] > 0 for m in pool.stats()] == [True, True] and all(m["failures"] == 0 for m in pool.stats())
        assert client.usage.current().completion_tokens > 0
