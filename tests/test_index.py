"""`retable index`: a description-only run's adapter fitted to the real items when they arrive, served by
search and load_adapter, and judged by the audit against the frozen encoder on those items; a tiny
codebook kept from the synthetic items is red."""

import json
import random
import shutil
import subprocess
import sys

import pytest
from conftest import DESCRIPTION
from fakes import Responder

from retable.serving.load import load_adapter
from retable.commands.index import index_run
from retable.config import RunConfig
from retable.evals.audit import Audit
from retable.evals.checks import judge_audit
from retable.evals.checks.loss import LossEvidence
from retable.llm.fake import FakeLLM
from retable.runfiles import RunFolder
from retable.commands.run import run_adapt

CONFIG = RunConfig(n_subtopics=6, items_per_subtopic=6, epochs=4, patience=2, rounds=1)
WORDS = ("protein kinase tumour cell insulin receptor mouse liver cardiac muscle neuron synapse plasma membrane vaccine antibody "
         "virus genome enzyme lipid glucose obesity diabetes cancer therapy trial dose placebo cohort mortality infection "
         "bacteria antibiotic resistance inflammation cytokine lung kidney bone fracture pregnancy infant diet vitamin sleep "
         "stroke blood pressure artery heart brain memory depression anxiety pain opioid surgery imaging screening").split()


def _corpus(path, n=400, seed=0):
    rng = random.Random(seed)
    rows = [{"id": f"doc{i}", "title": " ".join(rng.sample(WORDS, 3)), "text": " ".join(rng.choices(WORDS, k=25))} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    run_dir = root / "run"
    run_adapt(DESCRIPTION, run_dir, CONFIG, FakeLLM(Responder()), log=lambda m: None)
    before = json.loads((run_dir / "audit.json").read_text())
    corpus = _corpus(root / "corpus.jsonl")
    index_run(run_dir, corpus, log=lambda m: None)
    return run_dir, corpus, before


def test_a_description_only_audit_says_the_real_items_are_unseen(indexed):
    before = indexed[2]
    loss = [f for f in before["findings"] if f["check"] == "loss"]
    assert before["loss"]["items"] == "synthetic" and loss[0]["level"] in ("amber", "red")
    assert "no real items yet: the loss on your corpus is unknown" in loss[0]["evidence"]


def test_indexing_refits_the_codes_to_the_real_items_and_they_are_served(indexed):
    run_dir, corpus, before = indexed
    assert RunFolder(run_dir).description_only()
    record = json.loads((run_dir / "indexed" / "index.json").read_text())
    assert record["codes"] == "refit" and record["n_items"] == 400 and record["fusion"] == "peak"
    meta = json.loads((run_dir / "indexed" / "adapter" / "adapter.json").read_text())
    own = json.loads((run_dir / "adapter" / "adapter.json").read_text())
    assert meta["n_items"] == 400 and meta["pq_k"] > own["pq_k"]  # codebooks fitted on 400 items, not on the few synthetic ones
    index = load_adapter(run_dir)
    assert len(index.ids) == 400 and index.hybrid
    target = json.loads(corpus.read_text().splitlines()[42])  # its title and first words: a query only it answers well
    hits = [item_id for item_id, _ in index.search(target["title"] + " " + " ".join(target["text"].split()[:6]), k=3)]
    assert target["id"] in hits


def test_the_audit_then_judges_the_served_adapter_on_the_real_items(indexed):
    run_dir = indexed[0]
    audit = json.loads((run_dir / "audit.json").read_text())
    e = audit["loss"]
    assert e["items"] == "real" and e["n_items"] == 400 and e["n_queries"] > 0 and e["indexed"]["codes"] == "refit"
    assert {"frozen_flat", "adapted", "bm25"} <= set(e["mrr_at_10"])
    line = next(f for f in audit["findings"] if f["check"] == "loss")
    assert "real items never tuned on" in line["evidence"] and "real users' queries" in line["evidence"]
    assert "Against the frozen encoder" in (run_dir / "report.md").read_text()


def test_indexing_again_resumes_every_stage(indexed):
    run_dir, corpus, _ = indexed
    lines = []
    index_run(run_dir, corpus, log=lines.append)
    assert [ln for ln in lines if ln.startswith(("embed_items", "pseudo", "teacher", "tune", "codes"))] and all(
        "up to date" in ln for ln in lines if ln.startswith(("embed_items:", "pseudo:", "teacher:", "tune:", "codes:")))


def test_index_with_db_writes_the_indexed_items_into_lancedb(indexed, tmp_path):
    run_dir, corpus, _ = indexed
    db = tmp_path / "items.lancedb"
    r = subprocess.run([sys.executable, "-m", "retable.cli", "index", str(run_dir), "--corpus", str(corpus), "--db", str(db)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    memory, disk = load_adapter(run_dir), load_adapter(run_dir, db=db)
    assert len(disk.ids) == 400 and disk.ids == memory.ids  # the indexed items, not the run's synthetic ones
    for query in ("insulin receptor in liver", "vaccine antibody trial"):
        assert [i for i, _ in disk.search(query, 10)] == [i for i, _ in memory.search(query, 10)]


def test_indexing_a_second_corpus_says_it_replaces_the_first(indexed, tmp_path):
    run_dir, corpus, _ = indexed
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    other = _corpus(tmp_path / "other.jsonl", n=200, seed=5)
    lines = []
    index_run(copy, other, log=lines.append)
    assert f"note: the items indexed from {corpus} (400) are replaced by {other}'s (200); search and eval then serve these" in lines
    assert len(load_adapter(copy).ids) == 200


def test_a_tiny_codebook_kept_from_the_synthetic_items_is_red(indexed, tmp_path):
    run_dir, corpus, _ = indexed
    planted = tmp_path / "planted"
    shutil.copytree(run_dir, planted)
    run_adapt(DESCRIPTION, planted, CONFIG.model_copy(update={"table_kind": "pq"}), FakeLLM(Responder()), log=lambda m: None)
    index_run(planted, corpus, keep_codes=True, log=lambda m: None)
    audit = json.loads((planted / "audit.json").read_text())
    assert audit["loss"]["indexed"]["codes"] == "kept" and json.loads((planted / "indexed" / "adapter" / "adapter.json").read_text())["pq_k"] <= 8
    line = next(f for f in audit["findings"] if f["check"] == "loss")
    assert line["level"] == "red" and audit["verdict"] == "red", line


def _with_loss(audit: Audit, **kw) -> Audit:
    base = dict(items="real", n_items=1000, n_queries=400, mrr_at_10={"frozen_flat": 0.5, "adapted": 0.5}, delta=0.0, ci_low=-0.01, ci_high=0.01)
    return audit.model_copy(update={"loss": LossEvidence(**{**base, **kw})})


@pytest.mark.parametrize("kw,want", [
    (dict(delta=0.02, ci_low=0.01, ci_high=0.03), "green"),
    (dict(delta=-0.005, ci_low=-0.009, ci_high=-0.001), "green"),  # measurable but under audit.loss_red
    (dict(delta=-0.05, ci_low=-0.09, ci_high=0.01), "amber"),  # a loss within the noise
    (dict(delta=-0.05, ci_low=-0.08, ci_high=-0.02), "red"),
    (dict(items="synthetic", delta=0.02, ci_low=0.01, ci_high=0.03), "amber"),  # the user's corpus unseen
    (dict(items="synthetic", delta=-0.05, ci_low=-0.08, ci_high=-0.02), "red"),
])
def test_loss_check_levels(finished_audit_run, kw, want):
    audit = Audit.model_validate_json((finished_audit_run / "audit.json").read_text())
    found = [f for f in judge_audit(_with_loss(audit, **kw), RunConfig().audit)[1] if f.check == "loss"]
    assert [f.level for f in found] == [want]


def test_index_cli_refuses_bad_input_in_one_line(indexed, tmp_path):
    run_dir = indexed[0]
    for args in (["index", str(run_dir), "--corpus", str(tmp_path / "missing.jsonl")], ["index", str(tmp_path), "--corpus", str(indexed[1])]):
        r = subprocess.run([sys.executable, "-m", "retable.cli", *args], capture_output=True, text=True)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_eval_of_a_description_only_run_indexes_the_collection_first(indexed, tmp_path):
    from retable.commands.evaluate import eval_run

    run_dir, corpus, _ = indexed
    rows = [json.loads(ln) for ln in corpus.read_text().splitlines()]
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": r["id"], "title": r["title"], "text": r["text"]}) + "\n" for r in rows))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": rows[i]["title"]}) + "\n" for i in range(20)))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{rows[i]['id']}\t1\n" for i in range(20)))
    results = eval_run(run_dir, beir, log=lambda m: None)
    assert json.loads((run_dir / "indexed" / "index.json").read_text())["corpus"] == str(beir / "corpus.jsonl")
    assert {"bm25", "frozen_flat", "adapted", "adapted_hybrid"} <= set(results) and results["adapted"]["ndcg@10"] > 0.3
