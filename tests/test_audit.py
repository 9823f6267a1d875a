"""The audit's checks one by one: each finding fires on its side of the threshold and not on the
other, checks with too little data judge nothing, and `retable audit` redoes a run's audit."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIT_CONFIG

from retable.llm import LLMClient, UsageLog
from retable.llm.cache import CallCache
from retable.llm.fake import FakeLLM
from retable.prompts import Prompts
from retable.config import RunConfig
from retable.evals.audit import Audit
from retable.evals.checks.collisions import audit_codebook, popularity_bins, utilisation
from retable.evals.drift import overlap_at_k, spread
from retable.domain import domain_check
from retable.evals.faithfulness import judge_pairs, retriever_agreement
from retable.evals.checks import judge_audit
from planted import plant
from retable.files import read_records
from retable.records import DroppedPair, Item, Pair

T = RunConfig().audit
SCHEMA_DOC = Path(__file__).parent.parent / "docs" / "audit.schema.json"


@pytest.fixture
def audit(finished_audit_run) -> Audit:
    return Audit.model_validate_json((finished_audit_run / "audit.json").read_text())


def levels(a: Audit) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in judge_audit(a, T)[1]:
        out.setdefault(f.check, set()).add(f.level)
    return out


def test_clean_fake_run_has_no_red_and_says_its_loss_is_unmeasured(audit):
    """Description-only, and tuned without pseudo-queries (see AUDIT_CONFIG): only the loss check is not green."""
    assert [(f.check, f.level) for f in audit.findings if f.level != "green"] == [("loss", "amber")]
    assert audit.verdict == "amber" and audit.loss is None
    assert {"loss", "held_out", "retriever_agreement", "judge", "off_domain", "drift", "collapse", "encoder", "collisions"} <= set(levels(audit))


def test_format_slice_drop_is_amber_then_red_and_says_the_average_rose(audit):
    s = audit.held_out.by_format["keyword"]
    assert s.n_pairs >= T.min_pairs
    before = audit.held_out.before  # the untuned system: frozen_flat for the default table
    audit.held_out.all.mrr_at_10["adapted"] = audit.held_out.all.mrr_at_10[before] + 0.02
    for drop, want in [(0.04, None), (0.06, "amber"), (0.16, "red")]:
        s.mrr_at_10["adapted"] = s.mrr_at_10[before] - drop
        found = [f for f in judge_audit(audit, T)[1] if f.check == "format_regression"]
        assert [f.level for f in found] == ([want] if want else [])
        if want:
            assert "while the average rose" in found[0].title and f"{-drop:+.3f}" in found[0].evidence


def test_small_slices_judge_nothing(audit):
    s = audit.held_out.by_format["keyword"]
    s.n_pairs = T.min_pairs - 1
    s.mrr_at_10["adapted"] = 0.0
    assert "format_regression" not in levels(audit)
    audit.held_out.n_pairs = 3
    assert levels(audit)["held_out"] == {"amber"}  # too few to measure: said, not judged


@pytest.mark.parametrize("field,value,check,want", [
    ("retriever_agreement", 0.95, "retriever_agreement", "green"),
    ("retriever_agreement", 0.8, "retriever_agreement", "amber"),
    ("retriever_agreement", 0.5, "retriever_agreement", "red"),
    ("spread_ratio", 0.7, "collapse", "green"),
    ("spread_ratio", 0.5, "collapse", "amber"),
    ("spread_ratio", 0.1, "collapse", "red"),
    ("overlap_untuned_adapted", 0.3, "drift", "amber"),
    ("overlap_untuned_adapted", 0.1, "drift", "red"),
    ("indistinct_rate_by_query_mass", 0.1, "collisions", "amber"),
    ("indistinct_rate_by_query_mass", 0.3, "collisions", "red"),
    ("share", 0.12, "off_domain", "amber"),
    ("share", 0.25, "off_domain", "red"),
])
def test_each_threshold_bands_its_finding(audit, field, value, check, want):
    owner = {"retriever_agreement": audit.faithfulness, "spread_ratio": audit.drift, "overlap_untuned_adapted": audit.drift,
             "indistinct_rate_by_query_mass": audit.codebook, "share": audit.faithfulness.domain}[field]
    setattr(owner, field, value)
    assert levels(audit)[check] == {want}


@pytest.mark.parametrize("served,frozen_hybrid,want_served,want_share", [
    (0.512, 0.505, "green", "green"),   # above the better reference; the table adds to the fusion
    (0.495, 0.500, "amber", "green"),   # half a point below the better reference; the table loses a little inside the fusion
    (0.485, 0.520, "red", "red"),       # the served search loses 1.5 points; the table costs the fusion 3.5
])
def test_the_probe_judges_what_search_serves_and_the_tables_share_in_it(audit, served, frozen_hybrid, want_served, want_share):
    from retable.evals.audit import Probe

    n = {"bm25": 0.40, "frozen_flat": 0.50, "frozen_pq": 0.48, "adapted": 0.51, "frozen_hybrid": frozen_hybrid, "adapted_hybrid": served}
    audit.probe = Probe(dataset="beir", ndcg_at_10=n, recall_at_100=n)
    found = {f.title: f.level for f in judge_audit(audit, T)[1] if f.check == "probe"}
    assert [lvl for t, lvl in found.items() if "that ships" in t] == [want_served]
    assert [lvl for t, lvl in found.items() if "own share" in t] == [want_share]


@pytest.mark.parametrize("strength,tried,want", [(2.0, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0], {"amber"}), (0.5, [0.5, 0.75, 1.0], {"amber"}),
                                                 (1.25, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0], None), (1.0, [0.5, 0.75, 1.0], None)])
def test_a_strength_at_its_grids_edge_is_amber(audit, strength, tried, want):
    audit.tuned.strength, audit.tuned.strengths_tried, audit.tuned.strength_interval = strength, tried, [-0.01, -0.02, -0.001]
    audit.tuned.llm_query_evidence = None
    assert levels(audit).get("choices") == want


@pytest.mark.parametrize("best,lowest,interval,want", [(0, 3, [-0.004, -0.011, 0.002], {"amber"}),  # tuned lower, within the noise
                                                         (0, 0, None, None),  # no tuned epoch lowered the loss at all
                                                         (3, 3, [-0.05, -0.06, -0.04], None)])  # the tuned epoch ships on its evidence
def test_the_untuned_table_kept_on_thin_evidence_is_amber(audit, best, lowest, interval, want):
    audit.tuned.best_epoch, audit.tuned.lowest_epoch, audit.tuned.epoch_interval = best, lowest, interval
    audit.tuned.strength, audit.tuned.strengths_tried, audit.tuned.llm_query_evidence = 1.0, [0.5, 0.75, 1.0], None
    assert levels(audit).get("choices") == want


@pytest.mark.parametrize("kind,serves", [("pq_residual", "the frozen encoder's own ranking"), ("pq", "(frozen_pq), not the encoder itself")])
def test_the_kept_untuned_table_is_named_for_what_it_serves(audit, kind, serves):
    """A pq or vq table starts at the quantizer's reconstruction, not at the frozen encoder: the audit and both reports say so."""
    from retable.evals.report import render_html, render_markdown

    audit.tuned.table_kind, audit.tuned.best_epoch, audit.tuned.lowest_epoch = kind, 0, 2
    audit.tuned.epoch_interval, audit.tuned.llm_query_evidence = [-0.004, -0.011, 0.002], None
    found = [f.evidence for f in judge_audit(audit, T)[1] if f.check == "choices"]
    assert len(found) == 1 and serves in found[0]
    assert serves in render_markdown(audit) and serves.replace("'", "&#39;") in render_html(audit)


def test_a_run_with_no_held_out_pairs_finishes_and_says_what_it_could_not_measure(tmp_path):
    """Two items get LLM queries (a weak model's drop rate leaves as few): the test split is empty."""
    from conftest import DESCRIPTION
    from fakes import Responder

    from retable.commands.run import run_adapt

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": f"gut bacteria report {i}",
                                          "text": f"Report {i} measured probiotic strain {i % 7} and fiber {i % 5} in colon samples."}) + "\n"
                              for i in range(40)))
    cfg = RunConfig(n_subtopics=4, items_per_subtopic=4, epochs=3, rounds=1, max_query_items=2, judge_pairs=2)
    run_adapt(DESCRIPTION, tmp_path / "run", cfg, FakeLLM(Responder()), corpus=corpus, log=lambda m: None)
    a = Audit.model_validate_json((tmp_path / "run" / "audit.json").read_text())
    assert a.held_out.n_pairs == 0 and a.drift.n_queries == 0
    unmeasured = {f.check: f.title for f in a.findings if f.level == "amber"}
    assert "too few held-out pairs" in unmeasured["held_out"] and "too few held-out queries" in unmeasured["drift"]
    assert "too few held-out pairs to measure the adaptation" in (tmp_path / "run" / "report.md").read_text()
    assert "too few held-out pairs" in (tmp_path / "run" / "report.html").read_text()


def test_a_changed_encoder_is_red(audit):
    audit.encoder.unchanged = False
    assert judge_audit(audit, T)[0] == "red"


def test_a_judge_that_says_yes_to_everything_is_not_trusted(finished_audit_run, tmp_path):
    llm = FakeLLM(lambda messages, schema: json.dumps({"reason": "looks fine", "answerable": True}))
    client = LLMClient(llm, CallCache(tmp_path / "c.sqlite"), temperature=0.7, max_tokens=64, max_retries=0, usage=UsageLog())
    kept = read_records(finished_audit_run / "pairs.kept.jsonl", Pair)
    dropped = read_records(finished_audit_run / "pairs.dropped.jsonl", DroppedPair)
    items = read_records(finished_audit_run / "items.jsonl", Item)
    summary = judge_pairs(client, Prompts(), kept, dropped, items, 8, seed=1, informative_gap=T.judge_informative)
    assert summary.yes_kept == summary.yes_control == summary.yes_control_match == 1.0
    assert not summary.informative
    audit = Audit.model_validate_json((finished_audit_run / "audit.json").read_text())
    audit.faithfulness.judge = summary
    judge = [f for f in judge_audit(audit, T)[1] if f.check == "judge"]
    assert judge[0].level == "amber" and "not evidence" in judge[0].title


def test_invalid_judge_replies_are_counted_not_fatal(finished_audit_run, tmp_path):
    client = LLMClient(FakeLLM(lambda m, s: "not json"), CallCache(tmp_path / "c.sqlite"), temperature=0.7, max_tokens=64, max_retries=1,
                       usage=UsageLog())
    kept = read_records(finished_audit_run / "pairs.kept.jsonl", Pair)
    items = read_records(finished_audit_run / "items.jsonl", Item)
    summary = judge_pairs(client, Prompts(), kept, [], items, 4, seed=1, informative_gap=0.25)
    assert summary.invalid == len(summary.judged) > 0 and summary.yes_kept is None


def test_codebook_measures():
    uniform = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    assert utilisation(uniform, 4).tolist() == [1.0, 1.0]
    assert utilisation(np.zeros((5, 2), dtype=int), 4).tolist() == [0.0, 0.0]
    mass = np.array([5, 0, 3, 1, 0])
    collide = np.array([True, False, True, False, False])
    bins = popularity_bins(mass, collide, collide)
    assert [(b.ranks, b.items, b.collision_rate) for b in bins] == [("1-3", 3, 2 / 3), ("no queries", 2, 0.0)]
    codes = np.array([[1, 1], [1, 1], [2, 2]])
    vectors = np.array([[1.0, 0], [1.0, 0], [0, 1.0]])
    c = audit_codebook(codes, 4, vectors, np.array([3.0, 1.0, 0.0]))
    assert c.collision_rate == pytest.approx(2 / 3) and c.indistinct_rate_by_query_mass == 1.0


def test_drift_measures():
    rng = np.random.default_rng(0)
    items, q = rng.standard_normal((50, 8)), rng.standard_normal((10, 8))
    assert overlap_at_k(q, items, q, items) == 1.0
    assert overlap_at_k(q, items, q, -items) < 0.5
    assert spread(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-9) and spread(np.eye(4)) > 0.4


def test_retriever_agreement_counts_pairs_outside_the_top_k():
    items = np.eye(4, dtype=np.float32)
    q = np.eye(4, dtype=np.float32)
    pairs = [Pair(query_id=str(i), query="q", item_id=str(i), format="keyword") for i in range(4)]
    texts = ["alpha", "beta", "gamma", "delta"]
    assert retriever_agreement(pairs, q, items, np.arange(4), top_k=1, item_texts=texts) == 1.0
    assert retriever_agreement(pairs, q, items, np.array([1, 0, 2, 3]), top_k=1, item_texts=texts) == 0.5
    worded = [p.model_copy(update={"query": t}) for p, t in zip(pairs, ["beta", "alpha", "x", "y"])]  # BM25 finds the swapped items
    assert retriever_agreement(worded, q, items, np.array([1, 0, 2, 3]), top_k=1, item_texts=texts) == 1.0


def test_domain_check_flags_planted_recipes_not_the_domain(finished_audit_run, encoder):
    items = read_records(finished_audit_run / "items.jsonl", Item)
    emb = np.load(finished_audit_run / "item_emb.npy")
    recipes = encoder.encode([f"Recipe {i}: roast the lamb with garlic for {20 + i} minutes and serve." for i in range(12)])
    anchors = [(finished_audit_run / "description.txt").read_text()]
    a_emb = encoder.encode(anchors)
    clean = domain_check([it.id for it in items], emb, anchors, a_emb, T.domain_seed_share, T.domain_ratio)
    mixed = domain_check([it.id for it in items] + [f"r{i}" for i in range(12)], np.vstack([emb, recipes]), anchors, a_emb,
                         T.domain_seed_share, T.domain_ratio)
    assert clean.share < T.off_domain_amber
    assert sum(i.startswith("r") for i in mixed.off_domain) >= 10


def test_a_format_held_out_by_design_is_measured_and_green(finished_audit_run, encoder, tmp_path):
    cfg = RunConfig(**AUDIT_CONFIG, holdout_formats=["question"])
    audit = plant(finished_audit_run, tmp_path / "h", "clean", cfg, encoder, seed=1)
    assert "question" not in audit.train_by_format
    assert audit.held_out.by_format["question"].n_pairs == audit.kept_by_format["question"]
    coverage = [f for f in audit.findings if f.check == "format_coverage"]
    assert [f.level for f in coverage] == ["green"] and "by design" in coverage[0].title


def test_holdout_cannot_remove_every_format():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least one"):
        RunConfig(query_formats=["keyword", "question"], holdout_formats=["keyword", "question"])


def test_retable_audit_redoes_the_audit_with_a_probe_and_no_llm_call(finished_audit_run, tmp_path):
    from retable.commands.run import run_audit as audit_run

    run = tmp_path / "run"
    shutil.copytree(finished_audit_run, run)
    (run / "audit.json").unlink()
    (run / "report.html").unlink()
    probe = tmp_path / "probe"
    (probe / "qrels").mkdir(parents=True)
    items = read_records(run / "items.jsonl", Item)
    kept = read_records(run / "pairs.kept.jsonl", Pair)[:20]
    (probe / "corpus.jsonl").write_text("".join(json.dumps({"_id": it.id, "title": it.title, "text": it.text}) + "\n" for it in items))
    (probe / "queries.jsonl").write_text("".join(json.dumps({"_id": p.query_id, "text": p.query}) + "\n" for p in kept))
    (probe / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{p.query_id}\t{p.item_id}\t1\n" for p in kept))
    logs = []
    report, verdict = audit_run(run, probe=probe, log=logs.append)  # the run's judge stage is current: no LLM is loaded
    assert "judge: up to date, skipped" in logs
    audit = Audit.model_validate_json((run / "audit.json").read_text())
    assert report == run / "report.html" and report.is_file() and verdict == audit.verdict
    assert audit.probe is not None and set(audit.probe.ndcg_at_10) == {"bm25", "frozen_flat", "frozen_pq", "adapted", "frozen_hybrid",
                                                                       "adapted_hybrid"}
    titles = [f.title for f in audit.findings if f.check == "probe"]
    assert any("the hybrid search that ships" in t for t in titles) and any("the table's own share" in t for t in titles)


def test_audit_json_schema_doc_is_current():
    schema = json.dumps(Audit.model_json_schema(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("RETABLE_WRITE_DOCS"):
        SCHEMA_DOC.write_text(schema)
    assert SCHEMA_DOC.read_text() == schema, "run RETABLE_WRITE_DOCS=1 pytest tests/test_audit.py"


def test_a_registered_check_with_evidence_of_its_own_gets_a_field_and_its_findings(finished_audit_run):
    from pydantic import BaseModel

    from retable.evals.audit import with_check_evidence
    from retable.evals.checks import CHECKS
    from retable.evals.checks.base import Check, Finding

    class Words(BaseModel):
        """words per kept query"""

        mean: float

    def judge(a, t):
        return [Finding(level="amber" if a.words.mean < 3 else "green", check="words", title="short queries", evidence=f"{a.words.mean:.1f}",
                        threshold="< 3 amber")]

    model = with_check_evidence(Audit, [*CHECKS, Check("words", judge, evidence=Words)])
    audit = model.model_validate({**json.loads((finished_audit_run / "audit.json").read_text()), "words": {"mean": 2.0}})
    assert model.model_json_schema()["properties"]["words"]["description"] == "words per kept query"
    assert [f.level for f in judge(audit, None)] == ["amber"] and "words" not in Audit.model_fields
    names = [c.name for c in CHECKS]
    faults = [c.fault.name for c in CHECKS if c.fault]
    assert len(set(names)) == len(names) and len(set(faults)) == len(faults) == 5
