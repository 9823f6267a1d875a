"""--executor ray: the same kept pairs as the local executor on the fake LLM (same inputs and seed), the
LLM cache written by the driver, errors crossing from Ray's workers intact, and Ray's search equal to
the local one. Ray runs locally on 2 CPUs."""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DESCRIPTION
from fake_server import FakeOpenAI
from needs import missing
from fakes import Responder

from retable.llm.fake import FakeLLM
from llama_servers import free_port
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.errors import BudgetExhausted
from retable.files import read_npy, read_records
from retable.records import Pair
from retable.retrieval.dense import top_k_rows

try:
    import ray
except ImportError as exc:  # a dev dependency: missing only where the dev extras were not installed
    missing(f"ray does not import ({exc}); pip install '.[dev]'", module=True)

GEN = dict(n_subtopics=4, items_per_subtopic=8, rounds=2, min_pairs_per_subtopic=12, query_formats=["keyword", "question", "claim"])


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine's 2 CPUs; workers import the tests' fakes through PYTHONPATH."""
    tests_dir = str(Path(__file__).parent)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([tests_dir] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _generate(run_dir: Path, executor: str, **extra) -> Path:
    llm = FakeLLM(Responder(), pass_seed=True)  # replies depend on the request alone, as a seeded server's do
    return run_adapt(DESCRIPTION, run_dir, RunConfig(**GEN, executor=executor, **extra), llm, log=lambda m: None, generate_only=True)


def _calls(run_dir: Path) -> dict[str, int]:
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    return {name: s["usage"]["calls"] for name, s in stages.items()}


@pytest.mark.integration
def test_ray_executor_keeps_the_same_pairs_as_the_local_one(tmp_path, local_ray):
    local = _generate(tmp_path / "local", "local")
    on_ray = _generate(tmp_path / "ray", "ray")
    kept = read_records(tmp_path / "local" / "pairs.kept.jsonl", Pair)
    assert len(kept) >= 20
    assert filecmp.cmp(local, on_ray, shallow=False)
    for name in ("items.jsonl", "queries.jsonl", "pairs.kept.jsonl", "pairs.dropped.jsonl", "rounds.json", "round_items.jsonl"):
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "ray" / name, shallow=False), name
    rounds = json.loads((tmp_path / "ray" / "rounds.json").read_text())
    assert len(rounds) == 2 and rounds[1]["new_items"] + rounds[1]["new_queries"] > 0  # the agent's second round ran on Ray too
    np.testing.assert_allclose(read_npy(tmp_path / "local" / "item_emb.npy"), read_npy(tmp_path / "ray" / "item_emb.npy"), atol=1e-5)
    calls = _calls(tmp_path / "ray")
    assert calls == _calls(tmp_path / "local") and calls["queries"] > 0
    # every reply a worker paid for reached the run's cache: a rerun of the stages calls nothing
    for name in ("items.jsonl", "queries.jsonl", "pairs.kept.jsonl"):
        (tmp_path / "ray" / name).unlink()
    _generate(tmp_path / "ray", "ray")
    stages = json.loads((tmp_path / "ray" / "manifest.json").read_text())["stages"]
    for name in ("items", "queries"):
        assert stages[name]["usage"]["calls"] == 0 and stages[name]["usage"]["cached"] == calls[name], name
    assert filecmp.cmp(local, on_ray, shallow=False)


@pytest.mark.integration
def test_a_budget_stop_on_a_ray_worker_reaches_the_driver_and_keeps_the_replies(tmp_path, local_ray):
    with pytest.raises(BudgetExhausted):
        _generate(tmp_path, "ray", budget_tokens=2500)
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert "items" not in stages  # stopped inside the items stage
    from retable.llm.cache import CallCache

    replies = CallCache(tmp_path / "llm_cache.sqlite").snapshot()
    assert len(replies) >= 2  # the brief and the item calls that finished
    assert sum(r.prompt_tokens + r.completion_tokens for r in replies.values()) <= 2500  # however many workers ran at once


@pytest.mark.integration
def test_ray_search_equals_the_local_search(local_ray):
    from retable.executor.ray_data import RayExecutor

    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(2500, 32)).astype(np.float32)
    rows = RayExecutor().search(items, queries, 10, ann_threshold=250_000)
    assert rows.shape == (2500, 10)
    np.testing.assert_array_equal(rows, top_k_rows(items, queries, 10, ann_threshold=250_000))


def _cli(tmp_path, *args, env=None):
    cmd = [sys.executable, "-m", "retable.cli", "generate", "-", "--out", str(tmp_path / "run"), "--llm", "openai", "--model", "fake", *args]
    return subprocess.run(cmd, input=DESCRIPTION, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RETABLE_API_KEY": "x", **(env or {})})


def test_an_unreachable_ray_cluster_is_one_line_and_exit_2(tmp_path):
    with FakeOpenAI() as server:
        r = _cli(tmp_path, "--base-url", server.url, "--executor", "ray", env={"RAY_ADDRESS": f"127.0.0.1:{free_port()}"})
        assert server.answered == 0  # nothing was paid for
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "no Ray cluster answers at RAY_ADDRESS" in lines[0], r.stderr


def test_an_unknown_executor_is_one_line_and_exit_2(tmp_path):
    with FakeOpenAI() as server:
        r = _cli(tmp_path, "--base-url", server.url, "--executor", "spark")
    assert r.returncode == 2 and r.stderr.startswith("error: Invalid value for '--executor'") and "Traceback" not in r.stderr, r.stderr


@pytest.mark.integration
def test_ray_search_above_the_threshold_uses_the_drivers_ivf_pq_index(local_ray):
    from retable.executor.ray_data import RayExecutor

    rng = np.random.default_rng(1)
    items = rng.normal(size=(12_000, 32)).astype(np.float32)
    queries = rng.normal(size=(1500, 32)).astype(np.float32)
    rows = RayExecutor().search(items, queries, 10, ann_threshold=10_000)
    np.testing.assert_array_equal(rows, top_k_rows(items, queries, 10, ann_threshold=10_000))  # the same IVF-PQ index, trained once
