"""The whole pipeline on the scripted fake LLM and the real (packaged) encoder."""

import json
import time

import pytest
from conftest import DESCRIPTION
from fakes import Responder

from retable.llm.fake import FakeLLM
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.evals.evaluate import evaluate_run
from retable.files import read_records
from retable.records import Item, Pair

CONFIG = RunConfig(n_subtopics=6, items_per_subtopic=6, epochs=8, patience=3, rounds=1)  # 36 items, no extra agent round


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    llm = FakeLLM(Responder())
    start = time.perf_counter()
    report = run_adapt(DESCRIPTION, run_dir, CONFIG, llm, log=lambda m: None)
    return run_dir, report, llm, time.perf_counter() - start


def test_pipeline_runs_in_under_a_minute_and_writes_every_output(finished_run):
    run_dir, report, llm, seconds = finished_run
    assert seconds < 60
    for name in ["brief.json", "items.jsonl", "queries.jsonl", "pairs.kept.jsonl", "pairs.dropped.jsonl", "audit.json",
                 "adapter/table.safetensors", "adapter/quantizer.faiss", "adapter/adapter.json", "adapter/codes.npy", "adapter/item_ids.json"]:
        assert (run_dir / name).is_file(), name
    assert report.name == "report.html" and "<section id=\"verdict\">" in report.read_text()
    text = (run_dir / "report.md").read_text()
    assert "## Verdict" in text and "Held-out synthetic pairs" in text and "encoder weights unchanged: **yes**" in text
    teacher = next(line for line in text.splitlines() if line.startswith("- teacher: BM25 fused with the frozen encoder by peak"))
    assert "encoder weights" not in teacher  # the fusion's evidence ends its own line


def test_audit_records_pairs_tuning_and_an_unchanged_encoder(finished_run):
    run_dir, _, llm, _ = finished_run
    audit = json.loads((run_dir / "audit.json").read_text())
    assert audit["mode"] == "description-only"
    assert audit["n_items"] == 36 and audit["n_queries"] == 72
    assert audit["kept"] + sum(audit["dropped_by_reason"].values()) == 72
    assert set(audit["kept_by_format"]) == {"keyword", "question"}
    enc = audit["encoder"]
    assert enc["unchanged"] and enc["checksum_before"] == enc["checksum_after"] == enc["checksum_now"]
    tune = json.loads((run_dir / "tune.json").read_text())
    rank = 32  # the default pq_residual table: M·K·r corrections and an r×d projection
    assert audit["tuned"]["table_parameters"] == 48 * audit["tuned"]["pq_k"] * rank + rank * 384 + 384 * tune["collision_residuals"]
    assert tune["table_kind"] == "pq_residual" and set(tune["train_queries_by_format"]) <= {"keyword", "question", "title", "lead", "last",
                                                                                            "keyphrase", "span"}
    kept = read_records(run_dir / "pairs.kept.jsonl", Pair)
    assert kept and all(p.found_by in ("dense", "bm25", "both") for p in kept)
    assert 0 <= audit["codebook"]["collision_rate"] <= 1
    assert audit["held_out"]["n_pairs"] > 0
    assert audit["cost_by_stage"]["queries"]["calls"] == 36
    assert audit["cost_by_stage"]["brief"]["calls"] == 1
    judged = audit["cost_by_stage"]["judge"]["calls"]
    assert judged == len(audit["faithfulness"]["judge"]["judged"]) and 8 <= judged <= 8 + 4 + 16
    assert len(llm.history) == 1 + 12 + 36 + judged
    assert audit["verdict"] in ("red", "amber", "green") and audit["findings"]


def test_every_query_carries_its_format_label_to_the_kept_pairs(finished_run):
    run_dir = finished_run[0]
    for p in read_records(run_dir / "pairs.kept.jsonl", Pair):
        assert p.query_id.endswith("::" + p.format)


def test_rerun_skips_every_stage_and_makes_no_llm_call(finished_run):
    run_dir = finished_run[0]
    llm = FakeLLM(Responder())
    logs = []
    run_adapt(DESCRIPTION, run_dir, CONFIG, llm, log=logs.append)
    assert llm.history == []
    assert all("skipped" in line for line in logs) and len(logs) == 13


def test_changing_a_tuning_setting_reruns_only_tune_and_after(finished_run, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run[0], run_dir)
    logs = []
    run_adapt(DESCRIPTION, run_dir, CONFIG.model_copy(update={"lr": 0.01}), FakeLLM(Responder()), log=logs.append)
    ran = [line.split(":")[0] for line in logs if "done" in line]
    assert ran == ["tune", "audit", "report"]


def test_eval_reports_every_system_on_a_beir_folder(finished_run, tmp_path):
    run_dir = finished_run[0]
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    items = read_records(run_dir / "items.jsonl", Item)
    pairs = read_records(run_dir / "pairs.kept.jsonl", Pair)[:20]
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i.id, "title": i.title, "text": i.text}) + "\n" for i in items))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{n}", "text": p.query}) + "\n" for n, p in enumerate(pairs)))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{p.item_id}\t1\n" for n, p in enumerate(pairs)))
    results = evaluate_run(run_dir, beir, log=lambda m: None)
    assert set(results) == {"bm25", "frozen_flat", "frozen_pq", "adapted", "frozen_hybrid", "adapted_hybrid"}
    for m in results.values():
        assert {"ndcg@10", "recall@100", "trainable_parameters"} <= set(m) and 0.0 <= m["ndcg@10"] <= 1.0
    assert results["frozen_flat"]["recall@100"] == 1.0  # 36 items < 100: every judged item is retrieved
    assert results["adapted_hybrid"]["recall@100"] == 1.0  # the union of both top-100 lists holds every item
    teacher = json.loads((run_dir / "teacher.json").read_text())
    assert results["adapted_hybrid"]["hybrid_rule"] == teacher["rule"] == "peak" and teacher["weight"] is None
    # the run's LLM queries are measured for every fixed share and the rule, and the rule is kept whatever they say
    assert teacher["chosen_on"] == "prior" and teacher["label_queries"] >= 30 and len(teacher["mrr_by_weight"]) == 17
    m, low, high = teacher["best_fixed_minus_rule"]
    assert low <= m <= high and max(teacher["mrr_by_weight"].values()) - teacher["rule_mrr"] == pytest.approx(m, abs=1e-3)
    assert results["frozen_hybrid"]["hybrid_rule"] == "peak" and results["frozen_hybrid"]["trainable_parameters"] == 0
    assert (run_dir / "eval_cache").is_dir()


def test_corpus_mode_uses_the_users_items(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": f"d{i}", "title": f"gut bacteria report {i}", "text": f"Report {i} measured probiotic strain {i % 7} and "
                                                                          f"fiber {i % 5} in colon samples."} for i in range(40)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    llm = FakeLLM(Responder())
    run_adapt(DESCRIPTION, tmp_path / "run", CONFIG.model_copy(update={"max_query_items": 20}), llm, corpus=corpus, log=lambda m: None)
    audit = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert audit["mode"] == "corpus" and audit["n_items"] == 40 and audit["n_queries"] == 40
    assert len([h for h in llm.history if h["schema"].get("title") != "JudgeReply"]) == 1 + 20


def _beir_from_run(run_dir, folder, n_queries=20):
    (folder / "qrels").mkdir(parents=True)
    items = read_records(run_dir / "items.jsonl", Item)
    pairs = read_records(run_dir / "pairs.kept.jsonl", Pair)[:n_queries]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i.id, "title": i.title, "text": i.text}) + "\n" for i in items))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{n}", "text": p.query}) + "\n" for n, p in enumerate(pairs)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{p.item_id}\t1\n" for n, p in enumerate(pairs)))
    return folder


@pytest.mark.integration
def test_eval_baselines_train_every_method_on_the_same_pairs(finished_run, tmp_path):
    run_dir = finished_run[0]
    results = evaluate_run(run_dir, _beir_from_run(run_dir, tmp_path / "beir"), baselines=True, log=lambda m: None)
    assert set(results) == {"frozen_flat", "frozen_pq", "adapted", "frozen_hybrid", "adapted_hybrid", "bm25", "adapted_pq_residual", "adapted_pq",
                            "adapted_vq",
                            "adapted_residual", "query_linear", "full_finetune"}
    assert results["full_finetune"]["trainable_parameters"] == 22_713_216
    assert results["query_linear"]["trainable_parameters"] == 384 * 384
    for m in results.values():
        assert 0.0 <= m["ndcg@10"] <= 1.0
    # training moved them: each table's training loss fell from its first epoch, and fine-tuning changed the ranking
    tables = [k for k in results if k.startswith("adapted_") and k != "adapted_hybrid" or k == "query_linear"]
    assert all(results[k]["train_loss"][-1] < results[k]["train_loss"][0] for k in tables), {k: results[k]["train_loss"] for k in tables}
    full, flat = results["full_finetune"], results["frozen_flat"]
    assert full["ndcg@10"] != flat["ndcg@10"] or full["recall@100"] != flat["recall@100"]


def test_search_fuses_bm25_by_default_and_added_items_join_both_halves(finished_run):
    from retable.serving.load import load_adapter

    run_dir = finished_run[0]
    index = load_adapter(run_dir)
    assert index.hybrid and index.fusion.rule == json.loads((run_dir / "teacher.json").read_text())["rule"] == "peak"
    index.add([{"id": "new-1", "text": "A xylophonist's wrist tendons under repetitive strain"}])
    hits = index.search("xylophonist tendons", k=5)
    assert hits[0][0] == "new-1" and all(0.0 <= s <= 1.0 for _, s in hits)
    dense = index.search("xylophonist tendons", k=5, hybrid=False)
    assert len(dense) == 5 and dense != hits
