"""The audit of one run: what was kept and dropped, held-out retrieval frozen vs adapted, what was
tuned, proof that the encoder did not change, and what it cost. Written as audit.json."""

from __future__ import annotations

from collections import Counter

import numpy as np
from pydantic import BaseModel

from retable.adapters.tune import mrr_at_k, recall_at_k
from retable.records import DroppedPair, Pair, StageUsage


class SliceMetrics(BaseModel):
    """One slice of held-out pairs: recall@10 and MRR@10 per system (frozen_flat, frozen_pq, adapted)."""

    n_pairs: int
    recall_at_10: dict[str, float]
    mrr_at_10: dict[str, float]


class HeldOut(BaseModel):
    n_pairs: int
    all: SliceMetrics | None
    by_format: dict[str, SliceMetrics]


class Audit(BaseModel):
    """audit.json. Recalls are on held-out synthetic pairs whose items were not used for tuning."""

    mode: str
    n_items: int
    n_queries: int
    filter_top_k: int
    kept: int
    dropped_by_reason: dict[str, int]
    kept_by_format: dict[str, int]
    held_out: HeldOut
    table_kind: str
    quantizer: str
    collision_rate: float
    collision_rate_by_query_mass: float
    collision_residuals: int
    pq_m: int
    pq_k: int
    table_parameters: int
    encoder_parameters: int
    encoder: str
    encoder_checksum_before: str
    encoder_checksum_after: str
    encoder_unchanged: bool
    tuning: dict
    cost_by_stage: dict[str, StageUsage]
    seconds_by_stage: dict[str, float]


def held_out_recall(test: list[Pair], pos: np.ndarray, systems: dict[str, tuple[np.ndarray, np.ndarray]]) -> HeldOut:
    """Recall@10 and MRR@10 of each system (its test-query vectors, its item vectors), overall and
    per query format."""
    if not test:
        return HeldOut(n_pairs=0, all=None, by_format={})

    def metrics(mask: np.ndarray) -> SliceMetrics:
        scores = {name: q[mask] @ vecs.T for name, (q, vecs) in systems.items()}
        return SliceMetrics(
            n_pairs=int(mask.sum()),
            recall_at_10={name: recall_at_k(s, pos[mask]) for name, s in scores.items()},
            mrr_at_10={name: mrr_at_k(s, pos[mask]) for name, s in scores.items()},
        )

    formats = np.array([p.format for p in test])
    return HeldOut(
        n_pairs=len(test),
        all=metrics(np.ones(len(test), dtype=bool)),
        by_format={f: metrics(formats == f) for f in sorted(set(formats))},
    )


def pair_counts(kept: list[Pair], dropped: list[DroppedPair]) -> dict:
    return {
        "kept": len(kept),
        "dropped_by_reason": dict(Counter(d.reason for d in dropped)),
        "kept_by_format": dict(Counter(p.format for p in kept)),
    }
