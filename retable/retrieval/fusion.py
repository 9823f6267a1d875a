"""Fusing two rankings of the same items over the union of both top-k lists. Each query's scores are
min-max normalized over each retriever's own top k (an item missing from one list gets that list's
floor, 0), and the fused score is w·lexical + (1−w)·dense. The weight w is BM25's share:
- `peak` (the default, PRIOR_RULE): per query, w = p_lex / (p_lex + p_dense), where p is how far each
  retriever's best score stands above the rest of its own top k (its z-score): the retriever that is
  surer of its top item gets more say. Nothing is tuned; fixed leave-one-collection-out on the four
  shared collections (docs/fusion.md, benchmarks/fusion_rules.py).
- `minmax`: one fixed w for every query (`teacher_weight`).
- `zscore` (each score standardized by its list's mean and spread, summed) and `rrf` (reciprocal rank
  fusion, k=60) are measured beside them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retable.metrics import reciprocal_ranks

RULES = ("peak", "zscore", "rrf")  # weight-free rules; `minmax` takes a weight
PRIOR_RULE = "peak"
RRF_K = 60
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
    dense_z: np.ndarray | None = None  # (n, C) scores standardized by the mean and spread of each retriever's own top k
    lexical_z: np.ndarray | None = None

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
        lex_z = np.zeros((n, width), dtype=np.float32)
        l_mean, l_std = l_s.mean(axis=1, keepdims=True), l_s.std(axis=1, keepdims=True)
        l_zs = (l_s - l_mean) / np.where(l_std > 0, l_std, 1.0)
        for i in range(n):
            union = np.unique(np.concatenate([d_r[i], l_r[i]]))
            union = union[union >= 0]
            rows[i, :len(union)] = union
            pos = np.searchsorted(union, l_r[i])
            ok = l_r[i] >= 0
            lex[i, pos[ok]] = l_norm[i, ok]
            lex_z[i, :] = l_zs[i, ok].min(initial=0.0)
            lex_z[i, pos[ok]] = l_zs[i, ok]
        safe = np.where(rows >= 0, rows, 0)
        raw = np.einsum("ncd,nd->nc", item_vecs[safe], query_vecs)
        span = np.where(d_hi > d_lo, d_hi - d_lo, 1.0)[:, None]
        dense = np.clip((raw - d_lo[:, None]) / span, 0.0, 1.0).astype(np.float32)
        dense[rows < 0] = 0.0
        d_mean = np.nanmean(np.where(found, d_s, np.nan), axis=1) if found.any() else np.zeros(n)
        d_std = np.nanstd(np.where(found, d_s, np.nan), axis=1) if found.any() else np.ones(n)
        d_mean, d_std = np.nan_to_num(d_mean), np.nan_to_num(d_std, nan=1.0)
        dense_z = ((raw - d_mean[:, None]) / np.where(d_std > 0, d_std, 1.0)[:, None]).astype(np.float32)
        dense_z[rows < 0] = 0.0
        return cls(rows, dense, lex, dense_z, lex_z)

    def fused(self, weight: float) -> np.ndarray:
        """(n, C) fused scores, −inf at padding."""
        out = weight * self.lexical + (1.0 - weight) * self.dense
        return np.where(self.rows >= 0, out, -np.inf).astype(np.float32)

    def by_rule(self, rule: str) -> np.ndarray:
        """(n, C) fused scores of a weight-free rule (RULES), −inf at padding."""
        valid = self.rows >= 0
        if rule == "peak":
            w = self.peak_share()[:, None]
            out = w * self.lexical + (1.0 - w) * self.dense
        elif rule == "zscore":
            out = 0.5 * self.lexical_z + 0.5 * self.dense_z
        elif rule == "rrf":
            out = sum(np.where(part > 0, 1.0 / (RRF_K + 1 + _ranks(np.where(valid, part, -np.inf))), 0.0) for part in (self.lexical, self.dense))
        else:
            raise ValueError(f"unknown fusion rule {rule!r}; one of {', '.join(RULES)}")
        return np.where(valid, out, -np.inf).astype(np.float32)

    def peak_share(self) -> np.ndarray:
        """BM25's share per query under `peak`: p_lex / (p_lex + p_dense), p the z-score of each list's best item."""
        valid = self.rows >= 0

        def peak(z: np.ndarray) -> np.ndarray:
            return np.clip(np.where(valid, z, -np.inf).max(axis=1, initial=0.0), 1e-3, None)

        lex, dense = peak(self.lexical_z), peak(self.dense_z)
        return lex / (lex + dense)

    def ranked_by(self, rule: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._top(self.by_rule(rule), k)

    def ranked(self, weight: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the fused top k, best first (rows −1 where a query had fewer candidates)."""
        return self._top(self.fused(weight), k)

    def _top(self, fused: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-fused, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(fused, order, axis=1), np.take_along_axis(self.rows, order, axis=1)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every column within its row, best first (ties in column order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
    return ranks


def choose_weight(cands: Candidates, positives: np.ndarray, weights=WEIGHTS, k: int = 10) -> tuple[float, dict[float, float]]:
    """The lexical weight whose fused ranking puts each query's own item highest (MRR@k), and the
    score of every weight tried. Ties go to the smaller weight (closer to the dense model alone)."""
    scores = {w: float(reciprocal_ranks(cands.ranked(w, k)[1], positives, k).mean()) for w in weights}
    best = max(scores.values())
    return min(w for w, s in scores.items() if s >= best - 1e-12), scores


@dataclass(frozen=True)
class Fusion:
    """How search and the teacher fuse BM25 with a dense retriever: a weight-free rule, or `minmax` with
    BM25's share. Stored in an adapter's manifest as hybrid_rule (and hybrid_weight for minmax)."""

    rule: str = PRIOR_RULE
    weight: float | None = None

    def __post_init__(self):
        if self.rule == "minmax":
            if self.weight is None or not 0.0 <= self.weight <= 1.0:
                raise ValueError(f"minmax fusion needs BM25's share in 0..1, got {self.weight!r}")
        elif self.rule not in RULES:
            raise ValueError(f"unknown fusion rule {self.rule!r}; one of {', '.join((*RULES, 'minmax'))}")
        elif self.weight is not None:
            raise ValueError(f"the {self.rule} rule takes no BM25 share, got {self.weight!r}")

    @classmethod
    def of(cls, weight: float | None) -> "Fusion":
        """A fixed BM25 share when one is set, else the prior rule."""
        return cls("minmax", float(weight)) if weight is not None else cls()

    @classmethod
    def from_meta(cls, meta: dict) -> "Fusion | None":
        """The adapter's fusion; adapters before rules hold only hybrid_weight (minmax); None: no hybrid."""
        rule = meta.get("hybrid_rule")
        if rule is None:
            return None if meta.get("hybrid_weight") is None else cls("minmax", meta["hybrid_weight"])
        return cls(rule, meta.get("hybrid_weight"))

    def meta(self) -> dict:
        return {"hybrid_rule": self.rule, "hybrid_weight": self.weight}

    def ranked(self, cands: Candidates, k: int) -> tuple[np.ndarray, np.ndarray]:
        return cands.ranked(self.weight, k) if self.rule == "minmax" else cands.ranked_by(self.rule, k)

    def __str__(self) -> str:
        return f"minmax at BM25 share {self.weight}" if self.rule == "minmax" else self.rule
