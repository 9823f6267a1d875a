"""The `held_out` check: MRR@10 of the frozen encoder and of the adapter on the held-out LLM pairs (items never
tuned on), overall — and per query format, where a format that got worse is a `format_regression` finding."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from retable.evals.checks.base import Check, Finding, band
from retable.metrics import mrr_at_k, recall_at_k
from retable.records import Pair


class SliceMetrics(BaseModel):
    """One slice of held-out pairs: recall@10 and MRR@10 per system."""

    n_pairs: int
    recall_at_10: dict[str, float]
    mrr_at_10: dict[str, float]


class HeldOut(BaseModel):
    before: str = Field(description="the system the adapted one is compared with: frozen_flat, "
                                    "the encoder used flat (what a user runs without retable)")
    n_pairs: int = Field(description="test-split pairs (items never tuned on) plus every pair of a format that had no training pairs")
    all: SliceMetrics | None
    by_format: dict[str, SliceMetrics]


def held_out_metrics(test: list[Pair], pos: np.ndarray, systems: dict[str, tuple[np.ndarray, np.ndarray]], before: str) -> HeldOut:
    """Recall@10 and MRR@10 of each system (its query vectors, its item vectors), overall and per format."""
    if not test:
        return HeldOut(before=before, n_pairs=0, all=None, by_format={})

    def metrics(mask: np.ndarray) -> SliceMetrics:
        scores = {name: q[mask] @ vecs.T for name, (q, vecs) in systems.items()}
        return SliceMetrics(
            n_pairs=int(mask.sum()),
            recall_at_10={name: recall_at_k(s, pos[mask]) for name, s in scores.items()},
            mrr_at_10={name: mrr_at_k(s, pos[mask]) for name, s in scores.items()},
        )

    formats = np.array([p.format for p in test])
    return HeldOut(before=before, n_pairs=len(test), all=metrics(np.ones(len(test), dtype=bool)),
                   by_format={f: metrics(formats == f) for f in sorted(set(formats))})


def judge(a, t) -> list[Finding]:
    h, out = a.held_out, []
    thr = f"drop > {t.slice_drop_amber:.2f} amber, > {t.slice_drop_red:.2f} red (audit.slice_drop_*); at least {t.min_pairs} pairs (audit.min_pairs)"
    if h.all is None or h.n_pairs < t.min_pairs:
        return [Finding(level="amber", check="held_out", title="too few held-out pairs to measure the adaptation",
                        evidence=f"{h.n_pairs} held-out pairs", threshold=thr)]
    before = h.before
    avg = h.all.mrr_at_10["adapted"] - h.all.mrr_at_10[before]
    level = band(-avg, t.slice_drop_red, t.slice_drop_amber, low_is_bad=False)
    out.append(Finding(level=level, check="held_out", title="held-out LLM pairs, MRR@10 of the frozen encoder → the adapter",
                       evidence=(f"{h.all.mrr_at_10[before]:.3f} → {h.all.mrr_at_10['adapted']:.3f} ({avg:+.3f}) on {h.n_pairs} pairs of the run's "
                                 f"{'corpus' if a.mode == 'corpus' else 'synthetic'} items; {before} is what a user runs without retable"),
                       threshold=thr))
    for fmt, s in h.by_format.items():
        if s.n_pairs < t.min_pairs:
            continue
        d = s.mrr_at_10["adapted"] - s.mrr_at_10[before]
        level = band(-d, t.slice_drop_red, t.slice_drop_amber, low_is_bad=False)
        if level != "green":
            note = " while the average rose" if avg > 0 else ""
            out.append(Finding(level=level, check="format_regression", title=f"format '{fmt}' got worse{note}",
                               evidence=f"MRR@10 {s.mrr_at_10[before]:.3f} → {s.mrr_at_10['adapted']:.3f} "
                                        f"({d:+.3f}) on {s.n_pairs} pairs; average {avg:+.3f}",
                               threshold=thr))
    return out


CHECK = Check("held_out", judge)
