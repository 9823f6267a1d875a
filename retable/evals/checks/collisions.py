"""The `collisions` check: how much query mass sits on items the adapter cannot tell apart. Items collide when
they share all M codes; what matters for search is whether the adapter can still tell them apart (a
collision residual may separate them). Its evidence is the codebook: collisions and codeword use. Its
planted fault gives the most popular items the codes of the most popular one."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from retable.adapters.collisions import collision_mask, collision_rate
from retable.evals.checks.base import Check, Fault, Finding, band

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


def judge(a, t) -> list[Finding]:
    c = a.codebook
    return [Finding(level=band(c.indistinct_rate_by_query_mass, t.collision_mass_red, t.collision_mass_amber, low_is_bad=False), check="collisions",
                    title="query mass on items the adapter cannot tell apart",
                    evidence=(f"{100 * c.indistinct_rate_by_query_mass:.1f}% of query mass, {100 * c.indistinct_rate:.1f}% of items "
                              f"(sharing all codes: {100 * c.collision_rate:.1f}% of items, {100 * c.collision_rate_by_query_mass:.1f}% of query "
                              "mass)"),
                    threshold=f"> {t.collision_mass_amber:.2f} amber, > {t.collision_mass_red:.2f} red (audit.collision_mass_*)")]


def force_collisions(run, seed: int, share: float = 0.2) -> None:
    """The most popular items (most kept queries) get the codes of the most popular one."""
    items = run.items()
    row = {it.id: i for i, it in enumerate(items)}
    mass = np.bincount([row[p.item_id] for p in run.kept()], minlength=len(items))
    popular = np.argsort(-mass, kind="stable")[: max(3, int(round(share * int((mass > 0).sum()))))]
    codes = run.adapter_codes()
    codes[popular] = codes[popular[0]]
    run.write_adapter_codes(codes)


def measure(ctx, data) -> Codebook:
    adapter = data.adapter  # the run's own: its codes and collisions
    mass = np.bincount([data.i_row[p.item_id] for p in data.kept], minlength=len(data.items)).astype(np.float64)
    return audit_codebook(adapter.codes, adapter.quantizer.k, adapter.item_vectors(data.item_emb, adapter.item_ids, adapter.codes), mass)


def _pq_table(config) -> dict:
    """Shared codes make items indistinct only in a table built from codes alone; pq_residual and residual keep each
    item's frozen embedding (the same codes only share a correction), so the fault goes into a pq table there."""
    from retable.adapters.table import table_class

    return {} if table_class(config.table_kind).compressed else {"table_kind": "pq"}


CHECK = Check("collisions", judge, evidence=Codebook, measure=measure, evidence_field="codebook",
              fault=Fault("forced_collisions", force_collisions, into="adapter", config=_pq_table))
