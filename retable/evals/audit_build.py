"""Building the audit from a finished run folder: faithfulness of the synthetic pairs, held-out metrics per
format, drift, collapse, collisions, the encoder's checksum, cost, and the probe when given."""

from __future__ import annotations

from collections import Counter

import numpy as np

from retable.adapters.artifact import Adapter, artifact_bytes
from retable.domain import domain_check
from retable.evals.audit import Audit, EncoderProof, Faithfulness, Probe, Tuned, Unsupported, pair_counts
from retable.evals.checks import CHECKS, judge_audit
from retable.evals.checks.held_out import held_out_metrics
from retable.evals.drift import measure_drift
from retable.evals.faithfulness import JudgeSummary, retriever_agreement, unsupported_facts
from retable.records import StageUsage
from retable.runfiles import DESCRIPTION, TEACHER
from retable.stage import Context


def domain_anchors(ctx: Context) -> list[str]:
    """The description the run was made from, then the brief's subtopics."""
    head = [ctx.run.description()] if ctx.run.has(DESCRIPTION) else []
    return list(dict.fromkeys(head + ctx.run.brief().subtopics))


def usd(cost: dict[str, StageUsage], price: dict[str, float] | None) -> dict[str, float] | None:
    """Dollars per stage for the new (uncached) tokens, from a price per million tokens."""
    if not price:
        return None
    return {stage: (u.prompt_tokens * price.get("prompt", 0.0) + u.completion_tokens * price.get("completion", 0.0)) / 1e6 for stage,
            u in cost.items()}


def _faithfulness(ctx: Context, data: "RunData") -> Faithfulness:
    kept, items = data.kept, data.items
    kept_q = data.query_emb[[data.q_row[p.query_id] for p in kept]].reshape(len(kept), data.item_emb.shape[1])
    kept_pos = np.array([data.i_row[p.item_id] for p in kept], dtype=np.int64)
    flagged = [(p, unsupported_facts(p.query, items[data.i_row[p.item_id]].encode_text())) for p in kept]
    flagged = [(p, f) for p, f in flagged if f]
    anchors = domain_anchors(ctx)
    judge_raw = ctx.run.judge_json()
    a = ctx.config.audit
    return Faithfulness(
        judge=None if judge_raw is None else JudgeSummary.model_validate(judge_raw),
        retriever_agreement=retriever_agreement(kept, kept_q, data.item_emb, kept_pos, ctx.config.filter_top_k, [it.encode_text() for it in items]),
        unsupported=Unsupported(n_queries=len(kept), share=len(flagged) / len(kept) if kept else 0.0,
                                examples=[{"query": p.query, "item_id": p.item_id, "facts": f} for p, f in flagged[:10]]),
        domain=domain_check([it.id for it in items], data.item_emb, anchors, ctx.encoder.encode(anchors), a.domain_seed_share, a.domain_ratio),
    )


class RunData:
    """What the audit reads from the run folder, with the rows of each query and item."""

    def __init__(self, ctx: Context):
        run = ctx.run
        self.items, self.queries, self.kept, self.dropped = run.items(), run.queries(), run.kept(), run.dropped()
        self.item_emb, self.query_emb = run.item_emb(), run.query_emb()
        self.splits, self.tune = run.splits(), run.tune()
        self.adapter = Adapter(run.adapter_folder())  # the run's own: its tuning, codes and collisions
        # what serves: the indexed adapter over the real items once there is one
        self.shipped = self.adapter if run.indexed() is None else Adapter(run.shipped_adapter())
        self.q_row = {q.id: i for i, q in enumerate(self.queries)}
        self.i_row = {it.id: i for i, it in enumerate(self.items)}

    def held_out(self):
        """Test-split pairs, and pairs of formats never trained on (held out by design or by accident)."""
        by_id = {p.query_id: p for p in self.kept}
        train_by_format = dict(Counter(by_id[q].format for q in self.splits.train if q in by_id))
        untrained = {p.format for p in self.kept} - set(train_by_format)
        test_ids, train_ids = set(self.splits.test), set(self.splits.train)
        held = [p for p in self.kept if p.query_id in test_ids or (p.format in untrained and p.query_id not in train_ids)]
        return train_by_format, held


def _probe(ctx: Context):
    if ctx.probe is None:
        return None
    from retable.evals.evaluate import evaluate_run

    res = evaluate_run(ctx.run.root, ctx.probe, log=ctx.log)
    return Probe(dataset=str(ctx.probe), ndcg_at_10={k: v["ndcg@10"] for k, v in res.items()},
                 recall_at_100={k: v["recall@100"] for k, v in res.items()})


def _tuned(data: RunData, encoder, teacher) -> Tuned:
    a, t = data.adapter, data.tune
    return Tuned(table_kind=a.table.kind, quantizer=a.quantizer.kind, pq_m=a.quantizer.m, pq_k=a.quantizer.k, table_parameters=a.table.n_parameters(),
                 encoder_parameters=encoder.n_parameters(), artifact_bytes=artifact_bytes(a.folder), best_epoch=t.best_epoch,
                 strength=t.strength, initial_val_mrr=t.initial_val_mrr, best_val_mrr=t.best_val_mrr, seconds=t.seconds, train_pairs=t.train_pairs,
                 val_pairs=t.val_pairs, history=t.history, train_queries_by_format=t.train_queries_by_format,
                 teacher_weight=teacher.weight if teacher else None, teacher_chosen_on=teacher.chosen_on if teacher else None,
                 fusion=str(teacher.fusion()) if teacher else None, strengths_tried=sorted(float(a) for a in t.val_loss_by_strength),
                 strength_interval=t.strength_interval, lowest_epoch=t.lowest_epoch, epoch_interval=t.epoch_interval,
                 llm_query_evidence=({k: getattr(teacher, k) for k in ("label_queries", "mrr_by_weight", "rule_mrr", "best_fixed_minus_rule")}
                                     if teacher and teacher.best_fixed_minus_rule else None))


def build_audit(ctx: Context, cost: dict[str, StageUsage], seconds: dict[str, float]) -> Audit:
    data, config, encoder = RunData(ctx), ctx.config, ctx.encoder
    adapter, shipped = data.adapter, data.shipped
    train_by_format, held = data.held_out()
    q = data.query_emb[[data.q_row[p.query_id] for p in held]].reshape(len(held), data.item_emb.shape[1])  # (0, d) when nothing is held out
    pos = np.array([data.i_row[p.item_id] for p in held], dtype=np.int64)
    own_items = adapter.item_vectors(data.item_emb, adapter.item_ids, adapter.codes)
    adapted_items = own_items if shipped is adapter else shipped.item_vectors(data.item_emb, [it.id for it in data.items])
    systems = {"frozen_flat": (q, data.item_emb), "frozen_pq": (q, shipped.quantizer.reconstruct(data.item_emb)),
               "adapted": (shipped.query_vectors(q), adapted_items)}
    before = "frozen_flat"  # what the user runs without retable: the reference of every comparison
    t, now = data.tune, encoder.checksum()
    evidence = {check.field: check.measure(ctx, data) for check in CHECKS if check.measure is not None}  # the checks' own (evals/checks/)
    audit = Audit(
        run=ctx.run.root.name, mode="corpus" if all(it.source == "corpus" for it in data.items) else "description-only",
        verdict="green", findings=[], n_items=len(data.items), n_queries=len(data.queries), filter_top_k=config.filter_top_k,
        **pair_counts(data.kept, data.dropped), train_by_format=train_by_format, holdout_formats=config.holdout_formats,
        rounds=ctx.run.rounds(), faithfulness=_faithfulness(ctx, data), held_out=held_out_metrics(held, pos, systems, before),
        drift=measure_drift(q, systems["adapted"][0], data.item_emb, systems[before][1], adapted_items, systems[before][0]),
        probe=_probe(ctx), tuned=_tuned(data, encoder, ctx.run.teacher() if ctx.run.has(TEACHER) else None), **evidence,
        encoder=EncoderProof(name=encoder.name, checksum_before=t.encoder_checksum_before, checksum_after=t.encoder_checksum_after,
                             checksum_now=now, unchanged=t.encoder_checksum_before == t.encoder_checksum_after == now),
        cost_by_stage=cost, seconds_by_stage=seconds, usd_by_stage=usd(cost, config.price_per_million_tokens),
    )
    audit.verdict, audit.findings = judge_audit(audit, config.audit)
    return audit
