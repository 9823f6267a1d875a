"""The verdict: each check turns its numbers into a red, amber or green finding with the evidence
and the threshold it was held against. Checks with too little data say so instead of judging."""

from __future__ import annotations

from retable.evals.audit import Audit, Finding
from retable.thresholds import AuditThresholds

ORDER = {"red": 0, "amber": 1, "green": 2}


def _band(value: float, red: float, amber: float, *, low_is_bad: bool) -> str:
    if low_is_bad:
        return "red" if value < red else "amber" if value < amber else "green"
    return "red" if value > red else "amber" if value > amber else "green"


def _held_out(a: Audit, t: AuditThresholds) -> list[Finding]:
    h, out = a.held_out, []
    thr = f"drop > {t.slice_drop_amber:.2f} amber, > {t.slice_drop_red:.2f} red (audit.slice_drop_*); at least {t.min_pairs} pairs (audit.min_pairs)"
    if h.all is None or h.n_pairs < t.min_pairs:
        return [Finding(level="amber", check="held_out", title="too few held-out pairs to measure the adaptation",
                        evidence=f"{h.n_pairs} held-out pairs", threshold=thr)]
    before = h.before
    avg = h.all.mrr_at_10["adapted"] - h.all.mrr_at_10[before]
    level = _band(-avg, t.slice_drop_red, t.slice_drop_amber, low_is_bad=False)
    out.append(Finding(level=level, check="held_out", title="held-out LLM pairs, MRR@10 of the frozen encoder → the adapter",
                       evidence=(f"{h.all.mrr_at_10[before]:.3f} → {h.all.mrr_at_10['adapted']:.3f} ({avg:+.3f}) on {h.n_pairs} pairs of the run's "
                                 f"{'corpus' if a.mode == 'corpus' else 'synthetic'} items; {before} is what a user runs without retable"),
                       threshold=thr))
    for fmt, s in h.by_format.items():
        if s.n_pairs < t.min_pairs:
            continue
        d = s.mrr_at_10["adapted"] - s.mrr_at_10[before]
        level = _band(-d, t.slice_drop_red, t.slice_drop_amber, low_is_bad=False)
        if level != "green":
            note = " while the average rose" if avg > 0 else ""
            out.append(Finding(level=level, check="format_regression", title=f"format '{fmt}' got worse{note}",
                               evidence=f"MRR@10 {s.mrr_at_10[before]:.3f} → {s.mrr_at_10['adapted']:.3f} ({d:+.3f}) on {s.n_pairs} pairs; average "
                                        f"{avg:+.3f}",
                               threshold=thr))
    return out


def _coverage(a: Audit, t: AuditThresholds) -> list[Finding]:
    out = []
    for fmt, n in a.kept_by_format.items():
        if a.train_by_format.get(fmt, 0) == 0:
            s = a.held_out.by_format.get(fmt)
            measured = f"; held-out MRR@10 {s.mrr_at_10[a.held_out.before]:.3f} → {s.mrr_at_10['adapted']:.3f} on {s.n_pairs} pairs" if s else ""
            if fmt in a.holdout_formats:
                out.append(Finding(level="green", check="format_coverage", title=f"format '{fmt}' held out of tuning by design",
                                   evidence=f"{n} kept pairs, none tuned on{measured}", threshold="holdout_formats in the run config"))
            else:
                out.append(Finding(level="amber", check="format_coverage", title=f"format '{fmt}' was never tuned on",
                                   evidence=f"{n} kept pairs, 0 of them in the training split{measured}",
                                   threshold="every kept format not in holdout_formats should have training pairs"))
    return out


def _faithfulness(a: Audit, t: AuditThresholds) -> list[Finding]:
    f, out = a.faithfulness, []
    agree = f.retriever_agreement
    out.append(Finding(level=_band(agree, t.retriever_agreement_red, t.retriever_agreement_amber, low_is_bad=True), check="retriever_agreement",
                       title="kept pairs whose item the frozen encoder ranks in its top k",
                       evidence=f"{100 * agree:.1f}% of {a.kept} kept pairs (top {a.filter_top_k})",
                       threshold=f"< {t.retriever_agreement_amber:.2f} amber, < {t.retriever_agreement_red:.2f} red (audit.retriever_agreement_*)"))
    j = f.judge
    thr = (f"yes on kept < {t.judge_yes_amber:.2f} amber, < {t.judge_yes_red:.2f} red; trusted when yes on matching controls − yes on "
           f"mismatched ones ≥ {t.judge_informative:.2f} with Fisher p < 0.05 (audit.judge_*)")
    if j is None or j.n_kept < t.min_pairs:
        out.append(Finding(level="amber", check="judge", title="the LLM judge read too few pairs to say anything",
                           evidence="judge off (judge_pairs = 0)" if j is None else f"{j.n_kept} kept pairs judged", threshold=thr))
    else:
        ev = (f"yes on {100 * j.yes_kept:.0f}% of {j.n_kept} kept pairs; controls: {100 * (j.yes_control_match or 0):.0f}% on matching, "
              f"{100 * (j.yes_control or 0):.0f}% on mismatched"
              + (f", {100 * j.yes_dropped:.0f}% of pairs the filter dropped" if j.yes_dropped is not None else "")
              + (f"; kappa with the filter {j.kappa_with_filter:.2f}" if j.kappa_with_filter is not None else "")
              + (f"; controls p = {j.control_p:.3f}" if j.control_p is not None else ""))
        if j.informative:
            level = _band(j.yes_kept, t.judge_yes_red, t.judge_yes_amber, low_is_bad=True)
            out.append(Finding(level=level, check="judge", title="the LLM judge finds the kept queries answerable by their items" if level == "green"
                               else "the LLM judge finds many kept queries unanswerable by their items", evidence=ev, threshold=thr))
        else:
            out.append(Finding(level="amber", check="judge", title="the LLM judge cannot tell matching controls from mismatched ones: its verdicts "
                                                                   "are not evidence",
                               evidence=ev, threshold=thr))
    u = f.unsupported
    if u.n_queries >= t.min_pairs:
        out.append(Finding(level="amber" if u.share > t.unsupported_facts_amber else "green", check="unsupported_facts",
                           title="kept queries naming numbers or names their item does not contain",
                           evidence=f"{100 * u.share:.0f}% of {u.n_queries} kept queries",
                           threshold=f"> {t.unsupported_facts_amber:.2f} amber (audit.unsupported_facts_amber)"))
    d = f.domain
    out.append(Finding(level=_band(d.share, t.off_domain_red, t.off_domain_amber, low_is_bad=False), check="off_domain",
                       title="items far from the domain the description names",
                       evidence=f"{len(d.off_domain)} of {a.n_items} items ({100 * d.share:.1f}%) below similarity {d.threshold:.3f} to the domain "
                                "seeds",
                       threshold=f"> {t.off_domain_amber:.2f} amber, > {t.off_domain_red:.2f} red (audit.off_domain_*)"))
    return out


def _drift(a: Audit, t: AuditThresholds) -> list[Finding]:
    d, out = a.drift, []
    if d.n_queries >= t.min_pairs:
        out.append(Finding(level=_band(d.overlap_untuned_adapted, t.overlap_red, t.overlap_amber, low_is_bad=True), check="drift",
                           title="top-10 overlap of the untuned and adapted rankings on held-out queries",
                           evidence=f"overlap@10 {d.overlap_untuned_adapted:.2f} (frozen encoder vs adapted {d.overlap_flat_adapted:.2f}) on "
                                    f"{d.n_queries} queries",
                           threshold=f"< {t.overlap_amber:.2f} amber, < {t.overlap_red:.2f} red (audit.overlap_*)"))
    else:
        out.append(Finding(level="amber", check="drift", title="too few held-out queries to measure how far the rankings moved",
                           evidence=f"{d.n_queries} held-out queries", threshold=f"at least {t.min_pairs} (audit.min_pairs)"))
    out.append(Finding(level=_band(d.spread_ratio, t.spread_red, t.spread_amber, low_is_bad=True), check="collapse",
                       title="spread of the adapted item vectors against the untuned table's",
                       evidence=f"spread {d.spread_untuned:.3f} → {d.spread_adapted:.3f} (ratio {d.spread_ratio:.2f})",
                       threshold=f"ratio < {t.spread_amber:.2f} amber, < {t.spread_red:.2f} red (audit.spread_*)"))
    if not a.encoder.unchanged:
        out.append(Finding(level="red", check="encoder", title="the encoder's weights changed",
                           evidence=f"sha256 {a.encoder.checksum_before[:12]}… → {a.encoder.checksum_now[:12]}…", threshold="must be identical"))
    else:
        out.append(Finding(level="green", check="encoder", title="the encoder's weights are unchanged",
                           evidence=f"sha256 {a.encoder.checksum_now[:16]}… before tuning, after it, and now", threshold="must be identical"))
    if a.probe is not None:
        out += _probe(a, t)
    return out


def _probe(a: Audit, t: AuditThresholds) -> list[Finding]:
    """Real queries: the dense table against the frozen encoder, the hybrid search against the better of BM25 and the encoder."""
    p, n = a.probe, a.probe.ndcg_at_10
    thr = f"drop > {t.probe_drop_amber:.2f} amber, > {t.probe_drop_red:.2f} red (audit.probe_drop_*)"
    delta = n["adapted"] - n["frozen_flat"]
    out = [Finding(level=_band(-delta, t.probe_drop_red, t.probe_drop_amber, low_is_bad=False), check="probe",
                   title=f"nDCG@10 on the probe queries ({p.dataset}), frozen encoder → adapted table",
                   evidence=f"frozen_flat {n['frozen_flat']:.4f} → adapted {n['adapted']:.4f} ({delta:+.4f}); bm25 {n['bm25']:.4f}, frozen_pq "
                            f"{n['frozen_pq']:.4f}",
                   threshold=thr)]
    if "adapted_hybrid" in n:
        ref = max(("bm25", "frozen_flat"), key=lambda k: n[k])
        d = n["adapted_hybrid"] - n[ref]
        out.append(Finding(level=_band(-d, t.served_drop_red, 0.0, low_is_bad=False), check="probe",
                           title=f"nDCG@10 on the probe queries ({p.dataset}), the better of BM25 and the frozen encoder → the hybrid search that "
                                 "ships",
                           evidence=f"{ref} {n[ref]:.4f} → adapted_hybrid {n['adapted_hybrid']:.4f} ({d:+.4f})",
                           threshold=f"any drop amber, > {t.served_drop_red:.2f} red (audit.served_drop_red)"))
    if "frozen_hybrid" in n and "adapted_hybrid" in n:
        d = n["adapted_hybrid"] - n["frozen_hybrid"]
        out.append(Finding(level=_band(-d, t.probe_drop_red, t.probe_drop_amber, low_is_bad=False), check="probe",
                           title=f"nDCG@10 on the probe queries ({p.dataset}), the table's own share: the same fusion over the frozen encoder → "
                                 "over the table",
                           evidence=f"frozen_hybrid {n['frozen_hybrid']:.4f} → adapted_hybrid {n['adapted_hybrid']:.4f} ({d:+.4f})", threshold=thr))
    return out


def _choices(a: Audit, t: AuditThresholds) -> list[Finding]:
    """Choices made on synthetic evidence: a strength at its grid's edge is amber; the fusion rule's evidence is shown."""
    u, out = a.tuned, []
    if u is None:
        return out
    tried = u.strengths_tried
    if u.strength != 1.0 and tried and u.strength in (min(tried), max(tried)):
        ci = u.strength_interval or [0.0, 0.0, 0.0]
        out.append(Finding(level="amber", check="choices", title=f"the tuned correction's strength {u.strength} is at the edge of the grid it was "
                                                                 "chosen from",
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


INDEX_HINT = "`retable index RUN --corpus FILE` fits the adapter to them and measures it there"


def _loss(a: Audit, t: AuditThresholds) -> list[Finding]:
    """The shipped adapter against the frozen encoder on held-out pseudo-queries; says what it could not see."""
    thr = (f"adapted below frozen_flat by > {t.loss_red:.3f} MRR@10 with its 95% interval below 0: red; by more within the noise: amber "
           "(audit.loss_red); over synthetic items only: amber, the loss on the user's corpus is unknown")
    e = a.loss
    if e is None:
        return [Finding(level="amber", check="loss", title="no held-out pseudo-queries: the loss against the frozen encoder is unmeasured",
                        evidence="the run has no pseudo-queries (pseudo_formats is empty) or no item held out of tuning", threshold=thr)]
    loss = e.delta < -t.loss_red
    level = "red" if loss and e.ci_high < 0 else "amber" if loss or e.items == "synthetic" else "green"
    m = e.mrr_at_10
    bm25 = f"; bm25 {m['bm25']:.3f} (these queries are cut from the items' words: shown, not judged)" if "bm25" in m else ""
    seen = (f"{e.n_queries} pseudo-queries of {e.n_items:,} {e.items} items never tuned on, each labelled with the item it was cut from"
            + (f" (indexed from {e.indexed['corpus']}, codes {e.indexed['codes']})" if e.indexed else ""))
    unseen = ("no real items yet: the loss on your corpus is unknown — " + INDEX_HINT if e.items == "synthetic"
              else "not seen: real users' queries — `retable audit RUN --probe BEIR_DIR` measures them")
    title = ("the adapter is measurably worse than the frozen encoder" if level == "red"
             else "the adapter may be worse than the frozen encoder" if loss
             else "no loss against the frozen encoder on the synthetic items; the real items are unseen" if e.items == "synthetic"
             else "no loss against the frozen encoder on the real items")
    return [Finding(level=level, check="loss", title=title,
                    evidence=(f"MRR@10 frozen_flat {m['frozen_flat']:.3f} → adapted {m['adapted']:.3f} ({e.delta:+.3f}, 95% interval "
                              f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]) on {seen}{bm25}. {unseen}"),
                    threshold=thr)]


def _collisions(a: Audit, t: AuditThresholds) -> list[Finding]:
    c = a.codebook
    return [Finding(level=_band(c.indistinct_rate_by_query_mass, t.collision_mass_red, t.collision_mass_amber, low_is_bad=False), check="collisions",
                    title="query mass on items the adapter cannot tell apart",
                    evidence=(f"{100 * c.indistinct_rate_by_query_mass:.1f}% of query mass, {100 * c.indistinct_rate:.1f}% of items "
                              f"(sharing all codes: {100 * c.collision_rate:.1f}% of items, {100 * c.collision_rate_by_query_mass:.1f}% of query "
                              "mass)"),
                    threshold=f"> {t.collision_mass_amber:.2f} amber, > {t.collision_mass_red:.2f} red (audit.collision_mass_*)")]


def judge_audit(a: Audit, t: AuditThresholds) -> tuple[str, list[Finding]]:
    """All findings, worst first, and the verdict (the worst level)."""
    found = _loss(a, t) + _held_out(a, t) + _coverage(a, t) + _faithfulness(a, t) + _drift(a, t) + _collisions(a, t) + _choices(a, t)
    found.sort(key=lambda f: ORDER[f.level])
    return (found[0].level if found else "green"), found
