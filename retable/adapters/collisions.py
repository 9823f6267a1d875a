"""Items whose M codes are all equal collide: the table cannot tell them apart. Monolith's lesson
is that collisions hurt most on popular items, so we find the colliding items that carry the most
query mass and give them a residual vector of their own (see CodeTable.add_collision_residuals)."""

from __future__ import annotations

import numpy as np


def collision_mask(codes: np.ndarray) -> np.ndarray:
    """True for every item whose code tuple is shared with at least one other item."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] > 1


def collision_rate(codes: np.ndarray, mass: np.ndarray | None = None) -> float:
    """Share of items that collide; with `mass`, the share of query mass on colliding items."""
    mask = collision_mask(codes)
    if mass is None:
        return float(mask.mean()) if len(mask) else 0.0
    total = float(mass.sum())
    return float(mass[mask].sum() / total) if total else 0.0


def colliding_heads(codes: np.ndarray, mass: np.ndarray, limit: int) -> np.ndarray:
    """Rows of the colliding items with query mass, most mass first, at most `limit`.

    >>> codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2]])
    >>> colliding_heads(codes, np.array([0, 5, 9, 2]), limit=5).tolist()
    [1, 3]
    """
    rows = np.flatnonzero(collision_mask(codes) & (mass > 0))
    return rows[np.argsort(-mass[rows], kind="stable")][:limit]
