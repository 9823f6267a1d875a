"""SIGKILL `retable adapt` inside every stage (a real subprocess), rerun, and require: it resumes,
no completed LLM call is made again, and the outputs equal those of an uninterrupted run."""

import hashlib
import json
import os
import subprocess
import sys


import pytest
from fake_server import FakeOpenAI

STAGES = ["brief", "items", "queries", "embed_items", "embed_queries", "rounds", "codes", "tune", "judge", "audit", "report"]
OUTPUTS = ["brief.json", "items.jsonl", "queries.jsonl", "item_emb.npy", "query_emb.npy", "pairs.kept.jsonl", "pairs.dropped.jsonl",
           "splits.json", "judge.json", "codes/codes.npy", "adapter/table.safetensors", "adapter/codes.npy", "adapter/quantizer.faiss",
           "adapter/adapter.json"]
CONFIG = {"n_subtopics": 6, "items_per_subtopic": 6, "epochs": 3, "llm_timeout": 10, "llm_retries": 0,
          "concurrency": 1}  # one call in flight: a kill loses exactly that one (with N in flight, up to N)


def _cmd(tmp_path, url):
    (tmp_path / "d.txt").write_text("Biomedical research abstracts. Users type short scientific claims.")
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG))
    return [sys.executable, "-m", "retable.cli", "adapt", str(tmp_path / "d.txt"), "--out", str(tmp_path / "run"),
            "--llm", "openai", "--base-url", url, "--model", "fake", "--config", str(tmp_path / "cfg.json")]


def _run(cmd, fault=None):
    env = {**os.environ, "RETABLE_API_KEY": "x"}
    env.pop("RETABLE_FAULT", None)
    if fault:
        env["RETABLE_FAULT"] = fault
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _hashes(run_dir):
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    with FakeOpenAI() as server:
        p = _run(_cmd(tmp, server.url))
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()
        return _hashes(tmp / "run"), server.answered


def _crash_then_resume(tmp_path, fault=None, kill_at_request=None):
    with FakeOpenAI() as server:
        cmd = _cmd(tmp_path, server.url)
        p = _run(cmd, fault)
        if kill_at_request:
            server.kill_pid, server.kill_at = p.pid, kill_at_request
        code = p.wait(timeout=300)
        assert code == -9, (fault, kill_at_request, code, p.stderr.read().decode()[-2000:])
        server.kill_at = None
        answered_in_crash = server.answered
        p = _run(cmd)
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
        return _hashes(tmp_path / "run"), answered_in_crash, server.answered


@pytest.mark.integration
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("point", ["start", "written"])
def test_kill_at_a_stage_boundary_resumes_to_identical_outputs(tmp_path, reference, stage, point):
    ref_hashes, ref_calls = reference
    hashes, _, calls = _crash_then_resume(tmp_path, fault=f"{stage}:{point}")
    assert calls == ref_calls  # no completed LLM call was made twice
    assert hashes == ref_hashes


@pytest.mark.integration
@pytest.mark.parametrize("request_number", [1, 5, 20])
def test_kill_during_an_llm_call_repeats_only_that_call(tmp_path, reference, request_number):
    ref_hashes, ref_calls = reference
    hashes, answered_in_crash, calls = _crash_then_resume(tmp_path, kill_at_request=request_number)
    assert answered_in_crash == request_number - 1
    assert calls == ref_calls
    assert hashes == ref_hashes


def test_a_corrupted_stage_file_is_detected_and_recomputed(tmp_path):
    with FakeOpenAI() as server:
        cmd = _cmd(tmp_path, server.url)
        assert _run(cmd).wait(timeout=300) == 0
        ref = _hashes(tmp_path / "run")
        calls = server.answered
        items = tmp_path / "run" / "items.jsonl"
        items.write_bytes(items.read_bytes()[:-40])  # truncated
        p = _run(cmd)
        assert p.wait(timeout=300) == 0
        log = p.stderr.read().decode()
        assert server.answered == calls  # recomputed from the LLM cache, not paid again
    assert "items: done" in log and "brief: up to date" in log
    assert _hashes(tmp_path / "run") == ref
