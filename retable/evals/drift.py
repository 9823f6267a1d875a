"""How far the adapted table moved from what the frozen encoder knew: overlap of the top-10
rankings on held-out queries, and whether the item vectors kept their spread (a table tuned into
collapse puts all items close together)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from retable.metrics import rows_overlap


from retable.retrieval.dense import exact_search


def overlap_at_k(q_a: np.ndarray, items_a: np.ndarray, q_b: np.ndarray, items_b: np.ndarray, k: int = 10) -> float:
    """Mean share of the top k that two systems have in common over the same queries.

    >>> v = np.eye(4, dtype=np.float32)
    >>> overlap_at_k(v, v, v, v[::-1], k=1)
    0.0
    """
    if not len(q_a):
        return 1.0
    a, b = exact_search(items_a, q_a, k)[1], exact_search(items_b, q_b, k)[1]
    return rows_overlap(a, b, a.shape[1])


def spread(vectors: np.ndarray) -> float:
    """1 − length of the mean unit vector: near 0 when every item points the same way."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return float(1.0 - np.linalg.norm(unit.mean(axis=0)))


class Drift(BaseModel):
    n_queries: int
    overlap_untuned_adapted: float  # top-10 overlap, untuned table vs adapted, same queries
    overlap_flat_adapted: float  # frozen encoder with exact search vs adapted
    spread_untuned: float
    spread_adapted: float
    spread_ratio: float


def measure_drift(
    q_frozen: np.ndarray, q_adapted: np.ndarray, flat: np.ndarray, untuned: np.ndarray, adapted: np.ndarray, q_untuned: np.ndarray
) -> Drift:
    s_u, s_a = spread(untuned), spread(adapted)
    return Drift(
        n_queries=len(q_frozen),
        overlap_untuned_adapted=overlap_at_k(q_untuned, untuned, q_adapted, adapted),
        overlap_flat_adapted=overlap_at_k(q_frozen, flat, q_adapted, adapted),
        spread_untuned=s_u,
        spread_adapted=s_a,
        spread_ratio=s_a / s_u if s_u > 0 else 1.0,
    )
