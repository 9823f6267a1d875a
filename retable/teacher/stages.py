"""The `teacher` stage. It builds BM25 over the items, fuses it with the frozen
encoder by the prior rule (retrieval/fusion.py) or the share set, records how fixed shares rank the run's
LLM queries (each labelled with the item it was written from), and scores the candidates of every
training query: the LLM queries the filter kept and the pseudo-queries."""

from __future__ import annotations

from collections import Counter

from retable.runfiles import (DROPPED, ITEM_EMB, ITEMS, KEPT, PSEUDO, PSEUDO_EMB, QUERIES, QUERY_EMB, ROUND_ITEM_EMB, ROUND_ITEMS, ROUND_QUERIES,
                              ROUND_QUERY_EMB, TEACHER, TEACHER_LABELS, Labels, TeacherRecord)
from retable.stage import Context, Stage

MIN_LABEL_QUERIES = 30  # LLM queries below which the evidence on fixed shares is not recorded


def _evidence(ctx: Context, cands_for, item_row: dict[str, int], fusion) -> dict:
    """How fixed BM25 shares and the rule rank the LLM queries that passed every check but rank (kept, or
    dropped only for their rank) — recorded for the audit, never used to move the rule: these queries
    reuse their item's words, so they lean toward BM25 more than users' queries do."""
    import numpy as np

    from retable.metrics import paired_interval, reciprocal_ranks
    from retable.retrieval.fusion import WEIGHTS

    q_row = {q.id: i for i, q in enumerate(ctx.run.queries())}
    labelled = [p for p in ctx.run.kept()] + [p for p in ctx.run.dropped() if p.reason == "round_trip_rank"]
    out = {"label_queries": len(labelled), "mrr_by_weight": {}}
    if len(labelled) < MIN_LABEL_QUERIES:
        return out
    emb = ctx.run.query_emb()[[q_row[p.query_id] for p in labelled]]
    cands, pos = cands_for([p.query for p in labelled], emb), np.array([item_row[p.item_id] for p in labelled])
    rr = {w: reciprocal_ranks(cands.ranked(w, 10)[1], pos) for w in WEIGHTS}
    rule_rr = reciprocal_ranks(fusion.ranked(cands, 10)[1], pos)
    best = max(WEIGHTS, key=lambda w: (rr[w].mean(), -w))
    low, high = paired_interval(rr[best], rule_rr)
    return {**out, "mrr_by_weight": {str(w): round(float(v.mean()), 4) for w, v in rr.items()}, "rule_mrr": round(float(rule_rr.mean()), 4),
            "best_fixed_minus_rule": [round(float((rr[best] - rule_rr).mean()), 4), round(low, 4), round(high, 4)]}


def candidates(lexical, item_emb, texts: list[str], emb, k: int):
    """Both retrievers' top k of each query (texts and their embeddings), as fusion candidates."""
    from retable.retrieval.dense import top_k
    from retable.retrieval.fusion import Candidates

    return Candidates.build(top_k(item_emb, emb, k, ann_threshold=len(item_emb)), lexical.top(texts, k), item_emb, emb)


def _teacher(ctx: Context) -> None:
    import numpy as np

    from retable.retrieval.fusion import Fusion
    from retable.retrieval.lexical import Lexical

    run, k = ctx.run, ctx.config.teacher_candidates
    items, item_emb = run.items(), run.item_emb()
    lexical = Lexical.build([it.encode_text() for it in items])
    item_row = {it.id: i for i, it in enumerate(items)}

    def cands_for(texts: list[str], emb):
        return candidates(lexical, item_emb, texts, emb, k)

    fusion = Fusion.of(ctx.config.teacher_weight)
    evidence = _evidence(ctx, cands_for, item_row, fusion)
    q_row = {q.id: i for i, q in enumerate(run.queries())}
    kept, pseudo = run.kept(), run.pseudo_queries()
    dim = item_emb.shape[1]
    emb = np.vstack([run.query_emb()[[q_row[p.query_id] for p in kept]].reshape(len(kept), dim), run.pseudo_emb().reshape(len(pseudo), dim)])
    texts = [p.query for p in kept] + [q.text for q in pseudo]
    scores, rows = fusion.ranked(cands_for(texts, emb), k)
    formats = [p.format for p in kept] + [q.format for q in pseudo]
    run.write_teacher(
        TeacherRecord(weight=fusion.weight, rule=fusion.rule, chosen_on="setting" if ctx.config.teacher_weight is not None else "prior",
                      candidates=k, labelled_by_format=dict(Counter(formats)), **evidence),
        Labels(query_ids=np.array([p.query_id for p in kept] + [q.id for q in pseudo], dtype=str), formats=np.array(formats, dtype=str),
               pos=np.array([item_row[p.item_id] for p in kept] + [item_row[q.item_id] for q in pseudo], dtype=np.int64),
               rows=rows, scores=scores))
    ctx.log(f"teacher: BM25 fused with the frozen encoder by {fusion}, {len(texts)} queries labelled")


TEACHER_STAGE = Stage(
    "teacher", _teacher, version=2, writes=(TEACHER, TEACHER_LABELS),
    reads=(ITEMS, ROUND_ITEMS, ITEM_EMB, ROUND_ITEM_EMB, QUERIES, ROUND_QUERIES, QUERY_EMB, ROUND_QUERY_EMB, KEPT, DROPPED, PSEUDO, PSEUDO_EMB),
    config=("teacher_weight", "teacher_candidates"))
