"""Collisions and codeword use, as the audit reports them. Items collide when they share all M
codes; what matters for search is whether the adapter can still tell them apart (a collision
residual may separate them), and how much query mass sits on the items it cannot."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from retable.adapters.collisions import collision_mask, collision_rate

POPULARITY_EDGES = (1, 10, 100, 1000, 10000, 100000)


class PopularityBin(BaseModel):
    ranks: str  # e.g. "1-10", or "no queries"
    items: int
    collision_rate: float  # share sharing all codes
    indistinct_rate: float  # share whose adapted vector equals another item's


class LoadedCode(BaseModel):
    subspace: int
    code: int
    share: float  # share of items with this code in this subspace


class Codebook(BaseModel):
    collision_rate: float
    collision_rate_by_query_mass: float
    indistinct_rate: float
    indistinct_rate_by_query_mass: float
    utilisation_mean: float  # mean over sub-spaces of code entropy / log2(K); 1 = every code equally used
    utilisation_min: float
    most_loaded: list[LoadedCode]
    by_popularity: list[PopularityBin]


def indistinct_mask(vectors: np.ndarray) -> np.ndarray:
    """True for items whose vector equals another item's (to 6 decimals)."""
    return collision_mask(np.round(vectors, 6))


def utilisation(codes: np.ndarray, k: int) -> np.ndarray:
    """Per sub-space, the entropy of code use divided by its maximum log2(K)."""
    out = []
    for m in range(codes.shape[1]):
        p = np.bincount(codes[:, m], minlength=k) / len(codes)
        p = p[p > 0]
        out.append(float(-(p * np.log2(p)).sum() / np.log2(k)) if k > 1 else 1.0)
    return np.array(out)


def most_loaded(codes: np.ndarray, k: int, limit: int = 5) -> list[LoadedCode]:
    counts = np.stack([np.bincount(codes[:, m], minlength=k) for m in range(codes.shape[1])])
    flat = np.argsort(-counts, axis=None, kind="stable")[:limit]
    return [LoadedCode(subspace=int(f // k), code=int(f % k), share=float(counts.flat[f] / len(codes))) for f in flat]


def popularity_bins(mass: np.ndarray, collide: np.ndarray, indistinct: np.ndarray) -> list[PopularityBin]:
    """Items ranked by query mass (most first); collision rates per rank band, then items without queries."""
    order = np.argsort(-mass, kind="stable")
    with_q = order[mass[order] > 0]
    bins, lo = [], 0
    for hi in POPULARITY_EDGES[1:]:
        rows = with_q[lo:hi]
        if len(rows):
            bins.append(PopularityBin(ranks=f"{lo + 1}-{lo + len(rows)}", items=len(rows), collision_rate=float(collide[rows].mean()),
                                      indistinct_rate=float(indistinct[rows].mean())))
        lo = hi
    rest = order[mass[order] == 0]
    if len(rest):
        bins.append(PopularityBin(ranks="no queries", items=len(rest), collision_rate=float(collide[rest].mean()),
                                  indistinct_rate=float(indistinct[rest].mean())))
    return bins


def audit_codebook(codes: np.ndarray, k: int, vectors: np.ndarray, mass: np.ndarray) -> Codebook:
    collide, indistinct = collision_mask(codes), indistinct_mask(vectors)
    total = float(mass.sum())
    util = utilisation(codes, k)
    return Codebook(
        collision_rate=collision_rate(codes),
        collision_rate_by_query_mass=collision_rate(codes, mass),
        indistinct_rate=float(indistinct.mean()),
        indistinct_rate_by_query_mass=float(mass[indistinct].sum() / total) if total else 0.0,
        utilisation_mean=float(util.mean()),
        utilisation_min=float(util.min()),
        most_loaded=most_loaded(codes, k),
        by_popularity=popularity_bins(mass, collide, indistinct),
    )
