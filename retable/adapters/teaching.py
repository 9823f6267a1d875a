"""The teacher-labelled queries of a run, split for tuning: every query goes where its own item goes.
Items with LLM pairs follow the pairs' split (so the audit's held-out items stay unseen); the others
are drawn into validation with `val_fraction` and into the audit's check with CHECK_FRACTION, by a hash of
the seed and the item id: the pseudo-queries of those items are never tuned on, and the audit's `loss`
check compares the adapted table with the frozen encoder on them."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from retable.adapters.collisions import colliding_heads
from retable.adapters.distill import DistillResult, DistillSettings, Labelled, distill
from retable.adapters.quantizer import Quantizer
from retable.adapters.table import CodeTable, new_table
from retable.config import RunConfig
from retable.errors import UserError
from retable.records import Pair
from retable.runfiles import Labels


CHECK_FRACTION = 0.05  # items without LLM pairs whose pseudo-queries only the audit reads


def _drawn(item_id: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:val:{item_id}".encode()).digest()[:8], "little") / 2**64


def item_splits(item_ids: list[str], pair_splits: dict[str, list[Pair]], val_fraction: float, seed: int) -> np.ndarray:
    """Per item row: "train", "val" or "test"."""
    known = {p.item_id: name for name, ps in pair_splits.items() for p in ps}

    def drawn(i: str) -> str:
        h = _drawn(i, seed)
        return "val" if h < val_fraction else "test" if h < val_fraction + CHECK_FRACTION else "train"

    return np.array([known.get(i) or drawn(i) for i in item_ids])


def run_item_splits(items, kept: list[Pair], config: RunConfig) -> tuple[dict[str, list[Pair]], np.ndarray]:
    """The run's pairs split by item, and each item row's split: what `tune` trained on and what it held out."""
    from retable.adapters.split import split_by_item

    splits = split_by_item(kept, config.val_fraction, config.test_fraction, config.seed)
    return splits, item_splits([it.id for it in items], splits, config.val_fraction, config.seed)


def labelled_sets(labels: Labels, emb: np.ndarray, quantizer: Quantizer, where: np.ndarray,
                  held_formats: set[str]) -> tuple[dict[str, Labelled], dict[str, int]]:
    """`emb` rows follow the labels. The train and val sets in the quantizer's space (held-out formats
    left out), and how many training queries each format gave."""
    split = where[labels.pos]
    usable = ~np.isin(labels.formats, sorted(held_formats)) if held_formats else np.ones(len(split), dtype=bool)
    every = Labelled(quantizer.rotate(emb), quantizer.codes(emb), labels.rows, labels.scores, labels.pos)
    train = (split == "train") & usable
    counts = Counter(str(f) for f in labels.formats[train])
    return {name: every.take(np.flatnonzero((split == name) & usable)) for name in ("train", "val")}, dict(counts)


@dataclass
class TunedTable:
    table: CodeTable
    result: DistillResult
    train_queries: int
    val_queries: int
    by_format: dict[str, int]
    train_mass: np.ndarray  # training queries per item row
    collision_residuals: int


def tune_on_labels(config: RunConfig, quantizer: Quantizer, codes: np.ndarray, item_emb: np.ndarray, labels: Labels, label_emb: np.ndarray,
                   where: np.ndarray, exclude: set[str], progress=None) -> TunedTable:
    """A table of `config.table_kind`, tuned on the teacher's labels (formats in `exclude` left out)."""
    sets, by_format = labelled_sets(labels, label_emb, quantizer, where, exclude)
    train, val = sets["train"], sets["val"]
    if len(train) < 4 or not len(val):
        raise UserError(f"only {len(train)} training and {len(val)} validation queries — too few to tune; give more items or raise max_query_items")
    table = new_table(config.table_kind, quantizer.centroids(), quantizer.dim)
    mass = np.bincount(train.pos, minlength=len(codes))
    # only where shared codes make items identical: the other kinds keep each item's frozen embedding
    heads = colliding_heads(codes, mass, config.collision_residuals) if config.collision_residuals and table.compressed else []
    if len(heads):
        table.add_collision_residuals(np.asarray(heads), len(codes), quantizer.dim)
    settings = DistillSettings(epochs=config.epochs, patience=config.patience, lr=config.lr, batch_size=config.batch_size, tau=config.tau,
                               seed=config.seed)
    result = distill(table, codes, quantizer.rotate(item_emb), train, val, settings, progress=progress)
    return TunedTable(table, result, len(train), len(val), by_format, mass, len(heads))
