"""The agent's later rounds, `retable generate`'s pairs file, and --budget-tokens, on the fake LLM
(and, for the CLI, the fake OpenAI-compatible server)."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import DESCRIPTION
from fake_server import FakeOpenAI
from fakes import Responder

from retable.llm.fake import FakeLLM
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.errors import BudgetExhausted
from retable.files import read_records
from retable.records import DroppedPair, Pair
from retable.runfiles import RunFolder

SMALL = dict(n_subtopics=6, items_per_subtopic=3, epochs=2)  # 18 items


def _prompts(llm: FakeLLM, title: str) -> list[str]:
    return [h["messages"][-1]["content"] for h in llm.history if h["schema"].get("title") == title]


def test_thin_subtopics_get_another_round_with_a_narrower_focus(tmp_path):
    llm = FakeLLM(Responder())
    cfg = RunConfig(**SMALL, rounds=3, min_pairs_per_subtopic=8)  # 3 items x 2 formats can never reach 8 in one round
    path = run_adapt(DESCRIPTION, tmp_path, cfg, llm, log=lambda m: None, generate_only=True)
    rounds = json.loads((tmp_path / "rounds.json").read_text())
    assert [r["round"] for r in rounds][:2] == [0, 1] and "subtopics under 8 kept pairs" in rounds[1]["reason"]
    new = [it for it in RunFolder(tmp_path).items() if it.id.startswith("syn-r1-")]
    assert new and rounds[1]["new_items"] == len(new) and {it.subtopic for it in new} <= set(rounds[1]["subtopics"])
    assert any("narrower" in p for p in _prompts(llm, "ItemsReply"))
    assert rounds[-1]["kept_after"] >= rounds[0]["kept_after"]
    run = RunFolder(tmp_path)
    assert len(run.items()) == len(run.item_emb()) and len(run.queries()) == len(run.query_emb())
    kept = read_records(tmp_path / "pairs.kept.jsonl", Pair)
    assert len(path.read_text().splitlines()) == len(kept) == rounds[-1]["kept_after"]


class CopiesTheExample(Responder):
    """Writes every 'question' query as the prompt's own example, so that format fails the filter."""

    def __call__(self, messages, schema, seed=None):
        reply = super().__call__(messages, schema, seed)
        if schema.get("title") == "QueriesReply" and "question" in schema["required"]:
            data = json.loads(reply)
            data["question"] = "how do I cook garlic shrimp fast?"
            reply = json.dumps(data)
        return reply


def test_a_weak_format_gets_another_round_with_counter_examples(tmp_path):
    llm = FakeLLM(CopiesTheExample())
    run_adapt(DESCRIPTION, tmp_path, RunConfig(**SMALL, rounds=2, min_pairs_per_subtopic=0), llm, log=lambda m: None, generate_only=True)
    rounds = json.loads((tmp_path / "rounds.json").read_text())
    assert rounds[1]["formats"] == ["question"] and rounds[0]["pass_rate_by_format"]["question"] == 0.0
    later = [p for p in _prompts(llm, "QueriesReply") if "failed before" in p]
    assert later and "how do I cook garlic shrimp fast?" in later[0] and "copies the instructions or the example" in later[0]
    assert all(q.id.endswith("::question::r1") for q in RunFolder(tmp_path).queries() if q.id.endswith("::r1"))


def test_generated_pairs_train_sentence_transformers_and_a_rerun_calls_nothing(tmp_path, encoder):
    from retable.baselines.finetune import finetune_encoder

    cfg = RunConfig(**SMALL, rounds=2)
    path = run_adapt(DESCRIPTION, tmp_path, cfg, FakeLLM(Responder()), log=lambda m: None, generate_only=True)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows and list(rows[0])[:2] == ["query", "positive"] and {"format", "item_id", "query_id"} <= set(rows[0])
    pairs = [(r["query"], r["positive"]) for r in rows[:8]]

    def margin(m) -> float:
        """Mean of each query's similarity to its own positive minus to the other positives."""
        sim = m.encode([q for q, _ in pairs], normalize_embeddings=True) @ m.encode([p for _, p in pairs], normalize_embeddings=True).T
        return float(np.mean(np.diag(sim) - (sim.sum(axis=1) - np.diag(sim)) / (len(pairs) - 1)))

    from sentence_transformers import SentenceTransformer

    before = margin(SentenceTransformer(str(encoder.path), device="cpu", local_files_only=True))
    model, _ = finetune_encoder(str(encoder.path), pairs, epochs=2, batch_size=4, seed=0, lr=1e-4)
    assert model.encode(["a claim"]).shape == (1, 384) and margin(model) > before + 0.01  # training pulled the pairs together
    again = FakeLLM(Responder())
    run_adapt(DESCRIPTION, tmp_path, cfg, again, log=lambda m: None, generate_only=True)
    assert again.history == []


def test_budget_stops_before_it_is_exceeded_and_a_larger_one_goes_on(tmp_path):
    llm = FakeLLM(Responder())
    cfg = RunConfig(**SMALL, rounds=1, budget_tokens=2500)
    try:
        run_adapt(DESCRIPTION, tmp_path, cfg, llm, log=lambda m: None, generate_only=True)
        raise AssertionError("the budget did not stop the run")
    except BudgetExhausted as exc:
        assert exc.used <= 2500
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert "brief" in stages and "rounds" not in stages
    spent = sum(h["seed"] is not None for h in llm.history)
    more = FakeLLM(Responder())
    run_adapt(DESCRIPTION, tmp_path, cfg.model_copy(update={"budget_tokens": None}), more, log=lambda m: None, generate_only=True)
    fresh = FakeLLM(Responder())
    run_adapt(DESCRIPTION, tmp_path / "fresh", cfg.model_copy(update={"budget_tokens": None}), fresh, log=lambda m: None, generate_only=True)
    assert len(more.history) == len(fresh.history) - spent  # nothing paid for twice


def test_cli_budget_stop_is_one_line_and_exit_3(tmp_path):
    (tmp_path / "d.txt").write_text(DESCRIPTION)
    cmd = [sys.executable, "-m", "retable.cli", "generate", str(tmp_path / "d.txt"), "--out", str(tmp_path / "run"), "--llm", "openai",
           "--model", "fake", "--budget-tokens", "1500"]
    with FakeOpenAI("ok") as server:
        r = subprocess.run([*cmd, "--base-url", server.url], capture_output=True, text=True, timeout=300, env={**os.environ, "RETABLE_API_KEY": "x"})
    lines = [line for line in r.stderr.splitlines() if line.startswith("stopped: ")]
    assert r.returncode == 3 and len(lines) == 1 and "token budget 1,500 reached" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_price_table_gives_a_cost_per_stage(tmp_path):
    cfg = RunConfig(**SMALL, rounds=1, price_per_million_tokens={"prompt": 1.0, "completion": 2.0})
    run_adapt(DESCRIPTION, tmp_path, cfg, FakeLLM(Responder()), log=lambda m: None)
    audit = json.loads((tmp_path / "audit.json").read_text())
    q = audit["cost_by_stage"]["queries"]
    assert audit["usd_by_stage"]["queries"] == (q["prompt_tokens"] + 2 * q["completion_tokens"]) / 1e6 > 0
    assert "LLM cost at the configured prices: $" in (tmp_path / "report.md").read_text()


def test_concurrent_requests_give_the_same_pairs_as_one_at_a_time(tmp_path):
    """Against the fake OpenAI server (replies depend on the request's seed only)."""
    outs = {}
    for n in (1, 4):
        (tmp_path / "d.txt").write_text(DESCRIPTION)
        (tmp_path / f"c{n}.json").write_text(json.dumps({**SMALL, "rounds": 2, "concurrency": n}))
        cmd = [sys.executable, "-m", "retable.cli", "generate", str(tmp_path / "d.txt"), "--out", str(tmp_path / f"run{n}"), "--llm", "openai",
               "--model", "fake", "--config", str(tmp_path / f"c{n}.json")]
        with FakeOpenAI("ok") as server:
            r = subprocess.run([*cmd, "--base-url", server.url], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "RETABLE_API_KEY": "x"})
        assert r.returncode == 0, r.stderr
        outs[n] = (tmp_path / f"run{n}" / "generated_pairs.jsonl").read_text()
    assert outs[1] == outs[4] and outs[1]


def test_an_edited_brief_is_kept_and_only_later_stages_rerun(tmp_path):
    cfg = RunConfig(**SMALL, rounds=1)
    run_adapt(DESCRIPTION, tmp_path, cfg, FakeLLM(Responder()), log=lambda m: None, generate_only=True)
    brief = json.loads((tmp_path / "brief.json").read_text())
    brief["subtopics"] = ["gut bacteria", "sleep and memory"]
    (tmp_path / "brief.json").write_text(json.dumps(brief))
    logs, llm = [], FakeLLM(Responder())
    run_adapt(DESCRIPTION, tmp_path, cfg, llm, log=logs.append, generate_only=True)
    assert json.loads((tmp_path / "brief.json").read_text())["subtopics"] == ["gut bacteria", "sleep and memory"]
    assert "brief: edited by hand, kept (later stages rerun)" in logs and not any(line.startswith("brief: done") for line in logs)
    assert any(line.startswith("items: done") for line in logs)
    assert {it.subtopic for it in RunFolder(tmp_path).items()} == {"gut bacteria", "sleep and memory"}
    assert all(h["schema"].get("title") != "BriefReply" for h in llm.history)
    (tmp_path / "brief.json").write_text("{broken")
    import pytest

    from retable.errors import UserError
    with pytest.raises(UserError, match="no longer a valid brief"):
        run_adapt(DESCRIPTION, tmp_path, cfg, FakeLLM(Responder()), log=lambda m: None, generate_only=True)


class OneSubtopicStrays(Responder):
    """Writes recipes for the 'heart disease' subtopic of a biomedical brief."""

    def __call__(self, messages, schema, seed=None):
        reply = super().__call__(messages, schema, seed)
        if schema.get("title") == "ItemsReply" and "<subtopic>heart disease</subtopic>" in messages[-1]["content"]:
            n = len(json.loads(reply)["items"])
            reply = json.dumps({"items": [{"title": f"Weeknight pasta {i}", "text": f"Boil the penne for {9 + i} minutes, toss with garlic, olive "
                                                                                    "oil and basil, and serve with parmesan."}
                                          for i in range(n)]})
        return reply


def test_pairs_of_items_that_strayed_from_the_domain_are_dropped_with_the_reason(tmp_path):
    run_adapt(DESCRIPTION, tmp_path, RunConfig(n_subtopics=6, items_per_subtopic=6, rounds=1), FakeLLM(OneSubtopicStrays()),
              log=lambda m: None, generate_only=True)
    strays = {it.id for it in RunFolder(tmp_path).items() if it.title.startswith("Weeknight pasta")}
    rounds = json.loads((tmp_path / "rounds.json").read_text())
    assert strays and set(rounds[0]["off_domain_items"]) >= strays
    dropped = [d for d in read_records(tmp_path / "pairs.dropped.jsonl", DroppedPair) if d.reason == "off_domain_item"]
    assert dropped and {d.item_id for d in dropped} <= set(rounds[0]["off_domain_items"])
    assert not any(p.item_id in strays for p in read_records(tmp_path / "pairs.kept.jsonl", Pair))
