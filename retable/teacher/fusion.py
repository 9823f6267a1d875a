"""Fusing two rankings of the same items: each query's scores are min-max normalized over its own top
k of each retriever, and the fused score is w·lexical + (1−w)·dense over the union of both top-k lists
(an item missing from one list gets that list's floor, 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHTS = tuple(round(0.05 * i, 2) for i in range(0, 17))  # 0 … 0.8: the lexical share tried when a weight is chosen


def minmax(scores: np.ndarray) -> np.ndarray:
    """Rows scaled to 0..1 (a constant row becomes 0)."""
    lo, hi = scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True)
    return (scores - lo) / np.where(hi > lo, hi - lo, 1.0)


@dataclass
class Candidates:
    """Per query, the union of both retrievers' top k: item rows (−1 pads) and both normalized scores."""

    rows: np.ndarray  # (n, C) int64
    dense: np.ndarray  # (n, C) float32, 0..1
    lexical: np.ndarray  # (n, C) float32, 0..1

    @classmethod
    def build(cls, dense_top: tuple[np.ndarray, np.ndarray], lexical_top: tuple[np.ndarray, np.ndarray],
              item_vecs: np.ndarray, query_vecs: np.ndarray) -> "Candidates":
        """`*_top` are (scores, rows) of each retriever; dense scores of the lexical-only candidates are
        computed exactly from the vectors."""
        (d_s, d_r), (l_s, l_r) = dense_top, lexical_top
        n, width = len(d_r), d_r.shape[1] + l_r.shape[1]
        rows = np.full((n, width), -1, dtype=np.int64)
        lex = np.zeros((n, width), dtype=np.float32)
        found = d_r >= 0  # an IVF search can return fewer than k rows (−1, with junk scores)
        d_lo = np.where(found, d_s, np.inf).min(axis=1, initial=np.inf)
        d_hi = np.where(found, d_s, -np.inf).max(axis=1, initial=-np.inf)
        d_lo, d_hi = np.where(np.isfinite(d_lo), d_lo, 0.0), np.where(np.isfinite(d_hi), d_hi, 0.0)
        l_norm = minmax(l_s)
        for i in range(n):
            union = np.unique(np.concatenate([d_r[i], l_r[i]]))
            union = union[union >= 0]
            rows[i, :len(union)] = union
            pos = np.searchsorted(union, l_r[i])
            ok = l_r[i] >= 0
            lex[i, pos[ok]] = l_norm[i, ok]
        safe = np.where(rows >= 0, rows, 0)
        raw = np.einsum("ncd,nd->nc", item_vecs[safe], query_vecs)
        span = np.where(d_hi > d_lo, d_hi - d_lo, 1.0)[:, None]
        dense = np.clip((raw - d_lo[:, None]) / span, 0.0, 1.0).astype(np.float32)
        dense[rows < 0] = 0.0
        return cls(rows, dense, lex)

    def fused(self, weight: float) -> np.ndarray:
        """(n, C) fused scores, −inf at padding."""
        out = weight * self.lexical + (1.0 - weight) * self.dense
        return np.where(self.rows >= 0, out, -np.inf).astype(np.float32)

    def ranked(self, weight: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the fused top k, best first (rows −1 where a query had fewer candidates)."""
        fused = self.fused(weight)
        order = np.argsort(-fused, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(fused, order, axis=1), np.take_along_axis(self.rows, order, axis=1)


def reciprocal_ranks(rows: np.ndarray, positives: np.ndarray, k: int = 10) -> np.ndarray:
    """1/rank of each query's positive row within its first k rows, 0 when absent."""
    hit = rows[:, :k] == positives[:, None]
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0)


def choose_weight(cands: Candidates, positives: np.ndarray, weights=WEIGHTS, k: int = 10) -> tuple[float, dict[float, float]]:
    """The lexical weight whose fused ranking puts each query's own item highest (MRR@k), and the
    score of every weight tried. Ties go to the smaller weight (closer to the dense model alone)."""
    scores = {w: float(reciprocal_ranks(cands.ranked(w, k)[1], positives, k).mean()) for w in weights}
    best = max(scores.values())
    return min(w for w, s in scores.items() if s >= best - 1e-12), scores
