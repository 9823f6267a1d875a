"""Items that left the domain: far from the items most similar to the description and the brief's
subtopics. Shared by the filter (which drops such synthetic items' pairs) and the audit (which reports them)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel


class DomainCheck(BaseModel):
    anchors: list[str]  # the description, then the brief's subtopics
    similarity_to_seeds: list[float]  # per item, cosine to the nearest anchor's seed centroid
    threshold: float
    off_domain: list[str]  # item ids
    share: float
    seeds_to_description: float  # how close the description's own seeds are to it


def domain_check(item_ids: list[str], item_emb: np.ndarray, anchors: list[str], anchor_emb: np.ndarray, seed_share: float,
                 ratio: float) -> DomainCheck:
    """Each anchor (the description, each subtopic of the brief) takes the items most similar to it
    as its seeds; an item's domain score is its cosine to the nearest seed centroid, and it is
    off-domain below `ratio` × the seeds' own median score. Relative, because a one-sentence
    description is far from every long item in absolute terms; per anchor, so a domain with
    distinct subtopics is not mistaken for one topic plus outliers."""
    n_seeds = max(3, int(round(seed_share * len(item_ids) / len(anchors))))
    centres, seed_rows = [], []
    for a in anchor_emb:
        rows = np.argsort(-(item_emb @ a), kind="stable")[:n_seeds]
        c = item_emb[rows].mean(axis=0)
        centres.append(c / (np.linalg.norm(c) or 1.0))
        seed_rows.append(rows)
    centres = np.stack(centres)
    score = (item_emb @ centres.T).max(axis=1)
    seeds = np.unique(np.concatenate(seed_rows))
    threshold = float(ratio * np.median(score[seeds]))
    off = score < threshold
    return DomainCheck(anchors=anchors, similarity_to_seeds=[round(float(s), 4) for s in score], threshold=threshold,
                       off_domain=[i for i, o in zip(item_ids, off) if o], share=float(off.mean()),
                       seeds_to_description=float(centres[0] @ anchor_emb[0]))
