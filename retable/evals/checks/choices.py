"""The `choices` check: choices made on synthetic evidence — the untuned table kept because no tuned epoch beat it
beyond the noise is amber, as is a tuned strength at its grid's edge; the fusion rule's evidence on the run's own LLM
queries is shown, not acted on."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding


def judge(a, t) -> list[Finding]:
    """Choices made on synthetic evidence: the untuned table kept on thin evidence, or a strength at its grid's edge, is amber;
    the fusion rule's evidence is shown."""
    u, out = a.tuned, []
    if u is None:
        return out
    ei = u.epoch_interval
    if u.best_epoch == 0 and u.lowest_epoch and ei:
        from retable.adapters.table import untuned_ranking  # torch: only when the finding is written

        out.append(Finding(level="amber", check="choices", title="the untuned table ships: no tuned epoch beat it on validation beyond the noise",
                           evidence=(f"epoch {u.lowest_epoch} had the lowest validation loss, {ei[0]:+.4f} against the untuned table's "
                                     f"[{ei[1]:+.4f}, {ei[2]:+.4f}] per query on {u.val_pairs} validation queries; the adapter "
                                     f"serves {untuned_ranking(u.table_kind)}"),
                           threshold="a tuned epoch ships only when its paired 95% interval is below 0; else amber"))
    tried = u.strengths_tried
    if u.strength != 1.0 and tried and u.strength in (min(tried), max(tried)):
        ci = u.strength_interval or [0.0, 0.0, 0.0]
        out.append(Finding(level="amber", check="choices", title=f"the tuned correction's strength {u.strength} "
                                                                 "is at the edge of the grid it was chosen from",
                           evidence=(f"tried {', '.join(str(x) for x in tried)}; validation loss minus strength 1's {ci[0]:+.4f} "
                                     f"[{ci[1]:+.4f}, {ci[2]:+.4f}] on pseudo-queries — the best may lie beyond the grid, or be an artefact of them"),
                           threshold="a strength other than 1 at the smallest or largest tried: amber"))
    e = u.llm_query_evidence
    if u.fusion and e and e.get("best_fixed_minus_rule"):
        by = e["mrr_by_weight"]
        best = max(by, key=lambda w: by[w])
        m, lo, hi = e["best_fixed_minus_rule"]
        out.append(Finding(level="green", check="choices", title=f"search fuses BM25 by the {u.fusion} rule, fixed in advance "
                                                                 f"({u.teacher_chosen_on})",
                           evidence=(f"MRR@10 on the run's {e['label_queries']} LLM queries: rule {e['rule_mrr']:.3f}, the best fixed BM25 share "
                                     f"({best}) {by[best]:.3f} ({m:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}]): recorded, not acted on — these "
                                     "queries reuse their item's words and favour BM25 more than users' queries do; `retable audit RUN --probe "
                                     "BEIR_DIR` measures the rule on real queries"),
                           threshold="nothing is chosen on this run's queries, so nothing is judged"))
    return out


CHECK = Check("choices", judge)
