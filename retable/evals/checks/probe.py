"""The `probe` check, with `retable audit RUN --probe BEIR_DIR`: nDCG@10 on real queries — the table against
the frozen encoder, the hybrid search that ships against the better of BM25 and the frozen encoder, and the
table's own share (the same fusion over the frozen encoder and over the table)."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding, band


def judge(a, t) -> list[Finding]:
    """Real queries: the dense table against the frozen encoder, the hybrid search against the better of BM25 and the encoder."""
    if a.probe is None:
        return []
    p, n = a.probe, a.probe.ndcg_at_10
    thr = f"drop > {t.probe_drop_amber:.2f} amber, > {t.probe_drop_red:.2f} red (audit.probe_drop_*)"
    delta = n["adapted"] - n["frozen_flat"]
    out = [Finding(level=band(-delta, t.probe_drop_red, t.probe_drop_amber, low_is_bad=False), check="probe",
                   title=f"nDCG@10 on the probe queries ({p.dataset}), frozen encoder → adapted table",
                   evidence=f"frozen_flat {n['frozen_flat']:.4f} → adapted {n['adapted']:.4f} "
                            f"({delta:+.4f}); bm25 {n['bm25']:.4f}, frozen_pq {n['frozen_pq']:.4f}",
                   threshold=thr)]
    if "adapted_hybrid" in n:
        ref = max(("bm25", "frozen_flat"), key=lambda k: n[k])
        d = n["adapted_hybrid"] - n[ref]
        out.append(Finding(level=band(-d, t.served_drop_red, 0.0, low_is_bad=False), check="probe",
                           title=f"nDCG@10 on the probe queries ({p.dataset}), the better of "
                                 "BM25 and the frozen encoder → the hybrid search that ships",
                           evidence=f"{ref} {n[ref]:.4f} → adapted_hybrid {n['adapted_hybrid']:.4f} ({d:+.4f})",
                           threshold=f"any drop amber, > {t.served_drop_red:.2f} red (audit.served_drop_red)"))
    if "frozen_hybrid" in n and "adapted_hybrid" in n:
        d = n["adapted_hybrid"] - n["frozen_hybrid"]
        out.append(Finding(level=band(-d, t.probe_drop_red, t.probe_drop_amber, low_is_bad=False), check="probe",
                           title=f"nDCG@10 on the probe queries ({p.dataset}), the table's own "
                                 "share: the same fusion over the frozen encoder → over the table",
                           evidence=f"frozen_hybrid {n['frozen_hybrid']:.4f} → adapted_hybrid {n['adapted_hybrid']:.4f} ({d:+.4f})", threshold=thr))
    return out


CHECK = Check("probe", judge)
