"""The adapter as a function of text: the frozen encoder, the item's or query's own PQ codes, the
table's correction. For the default table (pq_residual, and residual) items and queries go through the
same function, so the adapter can travel as one embedding model; other kinds score the two sides
differently, and a table with collision residuals gives listed items a vector their text alone cannot give."""

from __future__ import annotations

import numpy as np

from retable.adapters.artifact import Adapter
from retable.errors import UserError

SYMMETRIC = ("pq_residual", "residual")  # items and queries through the same function of their text


def check_text_function(adapter: Adapter, *, symmetric: bool) -> None:
    """A one-line UserError when the adapter's vectors are not a function of the text alone (or, with
    `symmetric`, when items and queries are not treated alike)."""
    table = adapter.table
    if table.collision is not None:
        raise UserError(f"adapter {adapter.folder} gives {len(table.collision)} colliding items a vector of their own, which their text "
                        f"alone cannot reproduce — adapt with --collision-residuals 0 (or --table-kind pq_residual) to serve it outside retable")
    if symmetric and table.kind not in SYMMETRIC:
        raise UserError(f"a {table.kind} table turns items and queries into vectors differently, so it is no single embedding model — "
                        f"adapt with --table-kind pq_residual (the default) to export it")


class TextVectors:
    """`documents(texts)` and `queries(texts)`: the adapter's vectors of texts (L2-normalized rows for the
    symmetric kinds), exactly as `load_adapter(...).search` computes them from the same frozen embeddings."""

    def __init__(self, adapter: Adapter, encoder):
        adapter.check_encoder(encoder)
        check_text_function(adapter, symmetric=False)
        self.adapter, self.encoder = adapter, encoder
        self.dim = adapter.quantizer.dim

    def documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.adapter.item_vectors(self.encoder.encode(list(texts)))

    def queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.adapter.query_vectors(self.encoder.encode(list(texts)))


def load_text_vectors(path, encoder_backend: str | None = None) -> TextVectors:
    """TextVectors of an adapter folder or run folder (its shipped adapter), with the encoder it was made with."""
    from retable.adapters.artifact import adapter_folder
    from retable.encoder.frozen import Encoder
    from retable.runlock import adapter_lock

    folder = adapter_folder(path)
    with adapter_lock(folder, write=False):
        adapter = Adapter(folder, items=False)
    return TextVectors(adapter, Encoder(adapter.meta["encoder"], encoder_backend or adapter.variant))
