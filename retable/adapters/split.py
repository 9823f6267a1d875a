"""Split kept pairs by item into train / validation (early stopping) / test (the audit)."""

from __future__ import annotations

import random

from retable.records import Pair


def split_by_item(pairs: list[Pair], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Pair]]:
    """All pairs of one item land in the same split, so held-out numbers measure unseen items.

    >>> from retable.records import Pair
    >>> ps = [Pair(query_id=str(i), query="q", item_id=str(i % 10), format="keyword") for i in range(40)]
    >>> {k: len(v) for k, v in split_by_item(ps, 0.2, 0.2, 0).items()}
    {'train': 24, 'val': 8, 'test': 8}
    """
    items = sorted({p.item_id for p in pairs})
    random.Random(seed).shuffle(items)
    n_val = max(1, round(len(items) * val_fraction)) if len(items) >= 3 else 0
    n_test = max(1, round(len(items) * test_fraction)) if len(items) >= 3 else 0
    where = {it: "val" for it in items[:n_val]} | {it: "test" for it in items[n_val : n_val + n_test]}
    out: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for p in pairs:
        out[where.get(p.item_id, "train")].append(p)
    return out
