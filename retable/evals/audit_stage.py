"""The `judge`, `audit` and `report` stages of `retable adapt`, also run by `retable audit RUN_DIR`.
Everything is read back from the run folder, so an audit can be redone (or given a --probe) later."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from retable.adapters.artifact import Adapter, artifact_bytes
from retable.agent.llm import LLMClient
from retable.agent.prompts import Prompts
from retable.config import RunConfig
from retable.evals.audit import Audit, EncoderProof, Faithfulness, Probe, Tuned, Unsupported, held_out_metrics, pair_counts
from retable.evals.codebook import audit_codebook
from retable.evals.drift import measure_drift
from retable.evals.faithfulness import JudgeSummary, domain_check, judge_pairs, retriever_agreement, unsupported_facts
from retable.evals.findings import judge_audit
from retable.evals.report import render_html, render_markdown
from retable.files import atomic_write_text, fingerprint, read_records, write_json
from retable.records import DomainBrief, DroppedPair, Pair, StageUsage
from retable.runfiles import load_item_emb, load_items, load_queries, load_query_emb

REPORT_FILES = ["report.md", "report.html"]


def judge_key(filter_key: str | None, config: RunConfig, prompts: Prompts) -> str:
    """The judge stage's fingerprint, the same for `retable adapt` and `retable audit`: the filtered pairs,
    the LLM settings, the judge's settings, template and code version."""
    from retable.evals.faithfulness import JUDGE_VERSION

    return fingerprint(["judge", JUDGE_VERSION, filter_key, config.subset("llm", "base_url", "model", "temperature", "max_tokens", "max_retries", "seed",
                                                                          "judge_pairs"), config.audit.judge_informative, prompts.source_hash("judge")])


def write_judge(run_dir: Path, client: LLMClient, prompts: Prompts, config: RunConfig) -> None:
    kept = read_records(run_dir / "pairs.kept.jsonl", Pair)
    dropped = read_records(run_dir / "pairs.dropped.jsonl", DroppedPair)
    items = load_items(run_dir)
    summary = judge_pairs(client, prompts, kept, dropped, items, config.judge_pairs, config.seed, config.audit.judge_informative) if config.judge_pairs else None
    write_json(run_dir / "judge.json", None if summary is None else summary.model_dump(mode="json"))


def domain_anchors(run_dir: Path) -> list[str]:
    """The description the run was made from (older runs lack description.txt), then the brief's subtopics."""
    path = run_dir / "description.txt"
    brief = DomainBrief.model_validate_json((run_dir / "brief.json").read_text())
    head = [path.read_text(encoding="utf-8")] if path.is_file() else []
    return list(dict.fromkeys(head + brief.subtopics))


def usd(cost: dict[str, StageUsage], price: dict[str, float] | None) -> dict[str, float] | None:
    """Dollars per stage for the new (uncached) tokens, from a price per million tokens."""
    if not price:
        return None
    return {stage: (u.prompt_tokens * price.get("prompt", 0.0) + u.completion_tokens * price.get("completion", 0.0)) / 1e6 for stage, u in cost.items()}


def build_audit(run_dir: Path, config: RunConfig, encoder, cost: dict[str, StageUsage], seconds: dict[str, float],
                probe: Path | None = None, log=print) -> Audit:
    items, queries = load_items(run_dir), load_queries(run_dir)
    kept = read_records(run_dir / "pairs.kept.jsonl", Pair)
    dropped = read_records(run_dir / "pairs.dropped.jsonl", DroppedPair)
    item_emb, query_emb = load_item_emb(run_dir), load_query_emb(run_dir)
    splits = json.loads((run_dir / "splits.json").read_text())
    tune = json.loads((run_dir / "tune.json").read_text())
    judge_raw = json.loads((run_dir / "judge.json").read_text()) if (run_dir / "judge.json").is_file() else None
    adapter = Adapter(run_dir / "adapter")
    q_row = {q.id: i for i, q in enumerate(queries)}
    i_row = {it.id: i for i, it in enumerate(items)}
    by_id = {p.query_id: p for p in kept}

    train_by_format = dict(Counter(by_id[q].format for q in splits["train"] if q in by_id))
    untrained = {p.format for p in kept} - set(train_by_format)
    test_ids = set(splits["test"])
    held = [p for p in kept if p.query_id in test_ids or (p.format in untrained and p.query_id not in splits["train"])]
    q = query_emb[[q_row[p.query_id] for p in held]].reshape(len(held), -1)
    pos = np.array([i_row[p.item_id] for p in held], dtype=np.int64)
    adapted_items = adapter.item_vectors(item_emb, adapter.item_ids, adapter.codes)
    systems = {
        "frozen_flat": (q, item_emb),
        "frozen_pq": (q, adapter.quantizer.reconstruct(item_emb)),
        "adapted": (adapter.query_vectors(q), adapted_items),
    }
    before = "frozen_pq" if adapter.table.kind in ("pq", "vq") else "frozen_flat"

    kept_q = query_emb[[q_row[p.query_id] for p in kept]].reshape(len(kept), -1)
    kept_pos = np.array([i_row[p.item_id] for p in kept], dtype=np.int64)
    flagged = [(p, unsupported_facts(p.query, items[i_row[p.item_id]].encode_text())) for p in kept]
    flagged = [(p, f) for p, f in flagged if f]
    anchors = domain_anchors(run_dir)
    faith = Faithfulness(
        judge=None if judge_raw is None else JudgeSummary.model_validate(judge_raw),
        retriever_agreement=retriever_agreement(kept, kept_q, item_emb, kept_pos, config.filter_top_k),
        unsupported=Unsupported(n_queries=len(kept), share=len(flagged) / len(kept) if kept else 0.0,
                                examples=[{"query": p.query, "item_id": p.item_id, "facts": f} for p, f in flagged[:10]]),
        domain=domain_check([it.id for it in items], item_emb, anchors, encoder.encode(anchors), config.audit.domain_seed_share, config.audit.domain_ratio),
    )
    mass = np.bincount(kept_pos, minlength=len(items)).astype(np.float64)
    probe_result = None
    if probe is not None:
        from retable.evals.evaluate import evaluate_run

        res = evaluate_run(run_dir, probe, log=log)
        probe_result = Probe(dataset=str(probe), ndcg_at_10={k: v["ndcg@10"] for k, v in res.items()},
                             recall_at_100={k: v["recall@100"] for k, v in res.items()})
    now = encoder.checksum()
    audit = Audit(
        run=run_dir.name,
        mode="corpus" if all(it.source == "corpus" for it in items) else "description-only",
        verdict="green", findings=[],
        n_items=len(items), n_queries=len(queries), filter_top_k=config.filter_top_k,
        **pair_counts(kept, dropped),
        train_by_format=train_by_format, holdout_formats=config.holdout_formats,
        rounds=json.loads((run_dir / "rounds.json").read_text()) if (run_dir / "rounds.json").is_file() else [],
        faithfulness=faith,
        held_out=held_out_metrics(held, pos, systems, before),
        drift=measure_drift(q, systems["adapted"][0], item_emb, systems[before][1], adapted_items, systems[before][0]),
        probe=probe_result,
        codebook=audit_codebook(adapter.codes, adapter.quantizer.k, adapted_items, mass),
        tuned=Tuned(table_kind=adapter.table.kind, quantizer=adapter.quantizer.kind, pq_m=adapter.quantizer.m, pq_k=adapter.quantizer.k,
                    table_parameters=adapter.table.n_parameters(), encoder_parameters=encoder.n_parameters(),
                    artifact_bytes=artifact_bytes(adapter.folder),
                    **{k: tune[k] for k in ("best_epoch", "initial_val_mrr", "best_val_mrr", "seconds", "train_pairs", "val_pairs", "history")}),
        encoder=EncoderProof(name=encoder.name, checksum_before=tune["encoder_checksum_before"], checksum_after=tune["encoder_checksum_after"],
                             checksum_now=now, unchanged=tune["encoder_checksum_before"] == tune["encoder_checksum_after"] == now),
        cost_by_stage=cost, seconds_by_stage=seconds, usd_by_stage=usd(cost, config.price_per_million_tokens),
    )
    audit.verdict, audit.findings = judge_audit(audit, config.audit)
    return audit


def write_audit(run_dir: Path, config: RunConfig, encoder, cost, seconds, probe: Path | None = None, log=print) -> Audit:
    audit = build_audit(run_dir, config, encoder, cost, seconds, probe, log)
    write_json(run_dir / "audit.json", audit.model_dump(mode="json"))
    return audit


def write_report(run_dir: Path) -> None:
    audit = Audit.model_validate_json((run_dir / "audit.json").read_text())
    atomic_write_text(run_dir / "report.md", render_markdown(audit))
    atomic_write_text(run_dir / "report.html", render_html(audit))
