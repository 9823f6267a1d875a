"""Train one table kind contrastively on a run's kept pairs (mined hard negatives, no teacher): the
comparison tables of `retable eval --baselines` and the older benchmarks, so every such method sees
the same pairs, splits and settings. `retable adapt` tunes on the teacher's labels (teaching.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retable.adapters.collisions import colliding_heads
from retable.adapters.quantizer import Quantizer
from retable.adapters.table import CodeTable, new_table
from retable.baselines.contrastive import PairSet, TuneResult, tune_table
from retable.config import RunConfig
from retable.records import Pair


@dataclass
class Space:
    """A run's items and queries in the quantizer's space."""

    codes: np.ndarray  # (n_items, M)
    emb: np.ndarray  # rotated item embeddings
    q: np.ndarray  # rotated query embeddings, rows follow the run's queries
    qcodes: np.ndarray

    @classmethod
    def build(cls, quantizer: Quantizer, item_emb: np.ndarray, query_emb: np.ndarray, codes: np.ndarray | None = None) -> "Space":
        return cls(
            codes=quantizer.codes(item_emb) if codes is None else codes,
            emb=quantizer.rotate(item_emb),
            q=quantizer.rotate(query_emb),
            qcodes=quantizer.codes(query_emb),
        )

    def pairs(self, pairs: list[Pair], q_row: dict[str, int], i_row: dict[str, int]) -> PairSet:
        rows = [q_row[p.query_id] for p in pairs]
        return PairSet(self.q[rows].reshape(len(rows), self.q.shape[1]), self.qcodes[rows].reshape(len(rows), self.qcodes.shape[1]),
                       np.array([i_row[p.item_id] for p in pairs], dtype=np.int64))


def train_kind(kind: str, quantizer: Quantizer, space: Space, train: PairSet, val: PairSet, config: RunConfig,
               collision_limit: int = 0, progress=None) -> tuple[CodeTable, TuneResult, int]:
    """Returns the tuned table, its tuning record, and how many colliding items got a residual."""
    table = new_table(kind, quantizer.centroids(), quantizer.dim)
    heads = np.zeros(0, dtype=np.int64)
    if collision_limit and kind != "query_linear":
        mass = np.bincount(train.pos, minlength=len(space.codes))
        heads = colliding_heads(space.codes, mass, collision_limit)
        if len(heads):
            table.add_collision_residuals(heads, len(space.codes), quantizer.dim)
    result = tune_table(
        table, space.codes, space.emb, train, val,
        epochs=config.epochs, patience=config.patience, lr=config.lr, tau=config.tau, batch_size=config.batch_size,
        hard_negatives=config.hard_negatives, seed=config.seed, progress=progress,
    )
    return table, result, len(heads)
