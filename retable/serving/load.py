"""`load_adapter`: an adapter folder (or a run folder's shipped one) opened for search, with its encoder, its
items in memory or in the LanceDB table written for it."""

from __future__ import annotations

from pathlib import Path

from retable.adapters.artifact import Adapter, AdapterIndex, adapter_folder


def load_adapter(path: str | Path, encoder: str | None = None, ann_threshold: int | None = None, encoder_backend: str | None = None,
                 db: str | Path | None = None) -> AdapterIndex:
    """Open an adapter folder (or a run folder holding adapter/, or indexed/adapter/ once indexed) with its encoder, checked by checksum
    and by the encoder path that made its codes (`encoder_backend`: that one when None; another is refused);
    search is exact up to `ann_threshold` items (RunConfig's default when None). `db`: the item vectors are read from
    a LanceDB folder written for this adapter (`retable export RUN --to lancedb DB`) instead of memory."""
    from retable.encoder.frozen import Encoder

    from retable.runlock import adapter_lock

    folder = adapter_folder(path)
    if db is not None:
        from retable.serving.db import DbIndex

        with adapter_lock(folder, write=False):
            adapter = Adapter(folder)
            return DbIndex(adapter, Encoder(encoder or adapter.meta["encoder"], encoder_backend or adapter.variant), Path(db))
    with adapter_lock(folder, write=False):  # while `retable index` rewrites it, wait for the whole new one
        adapter = Adapter(folder)
        return AdapterIndex(adapter, Encoder(encoder or adapter.meta["encoder"], encoder_backend or adapter.variant), ann_threshold)
