"""A misbehaving OpenAI-compatible server on 127.0.0.1: bounded retries with backoff, then one
clear line and exit 2, with every finished stage and LLM call kept for the rerun."""

import json
import os
import subprocess
import sys

import pytest
from fake_server import FakeOpenAI

GOOD = "Biomedical research abstracts. Users type short scientific claims."


def adapt(tmp_path, url, timeout=2.0, retries=2):
    (tmp_path / "d.txt").write_text(GOOD)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"llm_timeout": timeout, "llm_retries": retries, "n_subtopics": 6, "items_per_subtopic": 6, "epochs": 2}))
    cmd = [sys.executable, "-m", "retable.cli", "adapt", str(tmp_path / "d.txt"), "--out", str(tmp_path / "run"),
           "--llm", "openai", "--base-url", url, "--model", "fake", "--config", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "RETABLE_API_KEY": "x"})


def one_line(r) -> str:
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("mode, message, requests", [
    ("429", "failed with HTTP 429 after retries", 3),
    ("500", "failed with HTTP 500 after retries", 3),
    ("garbage", "did not answer with an OpenAI chat completion", 1),
    ("hang", "did not answer within 1 s", 2),
])
def test_faulty_server_gives_one_line_after_bounded_retries(tmp_path, mode, message, requests):
    retries = 1 if mode == "hang" else 2
    with FakeOpenAI(mode, hang_seconds=3) as server:
        r = adapt(tmp_path, server.url, timeout=1.0, retries=retries)
    assert message in one_line(r)
    assert server.requests == requests  # 1 try + `retries` retries, then it stops


def test_work_done_before_the_server_fails_is_kept_and_not_paid_again(tmp_path):
    with FakeOpenAI("ok") as server:
        server.fail_after = 5  # brief and some items succeed, then HTTP 500
        r = adapt(tmp_path, server.url)
        assert "HTTP 500" in one_line(r)
        answered_before = server.answered
        assert (tmp_path / "run" / "brief.json").is_file()
        server.fail_after = None
        r = adapt(tmp_path, server.url)
        assert r.returncode == 0, r.stderr
    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert stages["items"]["usage"]["cached"] == answered_before - 1  # every item call answered before the failure
    assert stages["brief"]["usage"]["calls"] == 1 and "report" in stages
