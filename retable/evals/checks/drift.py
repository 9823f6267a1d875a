"""The `drift` check: how far the adapter moved the rankings — top-10 overlap of the untuned and adapted
rankings on held-out queries (evals/drift.py measures it)."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding, band


def judge(a, t) -> list[Finding]:
    d, out = a.drift, []
    if d.n_queries >= t.min_pairs:
        out.append(Finding(level=band(d.overlap_untuned_adapted, t.overlap_red, t.overlap_amber, low_is_bad=True), check="drift",
                           title="top-10 overlap of the untuned and adapted rankings on held-out queries",
                           evidence=f"overlap@10 {d.overlap_untuned_adapted:.2f} (frozen encoder vs adapted {d.overlap_flat_adapted:.2f}) on "
                                    f"{d.n_queries} queries",
                           threshold=f"< {t.overlap_amber:.2f} amber, < {t.overlap_red:.2f} red (audit.overlap_*)"))
    else:
        out.append(Finding(level="amber", check="drift", title="too few held-out queries to measure how far the rankings moved",
                           evidence=f"{d.n_queries} held-out queries", threshold=f"at least {t.min_pairs} (audit.min_pairs)"))
    return out


CHECK = Check("drift", judge)
