"""Damaged copies of a built adapter folder, one fault each: what a truncated download, a hand edit or
a hostile file does to it. Shared by the bad-input matrix and the fuzz test."""

import json
import shutil
from pathlib import Path

import numpy as np


def _meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "adapter.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (folder / "adapter.json").write_text(json.dumps(meta))


def _flat_index(folder: Path) -> None:
    import faiss

    index = faiss.IndexFlatIP(384)
    faiss.write_index(index, str(folder / "quantizer.faiss"))


FAULTS = {
    "adapter.json that is not JSON": lambda f: (f / "adapter.json").write_text("{not json"),
    "adapter.json that is a JSON list": lambda f: (f / "adapter.json").write_text("[1, 2]"),
    "adapter.json without the encoder": lambda f: _meta(f, encoder=None),
    "adapter.json naming an unknown table kind": lambda f: _meta(f, table_kind="hash"),
    "adapter.json with another pq_m": lambda f: _meta(f, pq_m=24),
    "adapter.json with another item count": lambda f: _meta(f, n_items=3),
    "truncated table.safetensors": lambda f: (f / "table.safetensors").write_bytes((f / "table.safetensors").read_bytes()[:100]),
    "empty table.safetensors": lambda f: (f / "table.safetensors").write_bytes(b""),
    "missing table.safetensors": lambda f: (f / "table.safetensors").unlink(),
    "truncated quantizer.faiss": lambda f: (f / "quantizer.faiss").write_bytes((f / "quantizer.faiss").read_bytes()[:64]),
    "empty quantizer.faiss": lambda f: (f / "quantizer.faiss").write_bytes(b""),
    "a flat faiss index as quantizer": _flat_index,
    "codes out of range": lambda f: np.save(f / "codes.npy", np.load(f / "codes.npy").astype(np.int64) + 1000),
    "codes of the wrong shape": lambda f: np.save(f / "codes.npy", np.load(f / "codes.npy")[:, :5]),
    "codes that are NaN": lambda f: np.save(f / "codes.npy", np.full(np.load(f / "codes.npy").shape, np.nan)),
    "item_ids.json shorter than the codes":
        lambda f: (f / "item_ids.json").write_text(json.dumps(json.loads((f / "item_ids.json").read_text())[:-1])),
    "item_ids.json that is not a list": lambda f: (f / "item_ids.json").write_text('{"a": 1}'),
    "adapter.json with a NaN hybrid_weight": lambda f: _meta(f, hybrid_rule="minmax", hybrid_weight=float("nan")),
    "adapter.json with hybrid_weight 5": lambda f: _meta(f, hybrid_rule="minmax", hybrid_weight=5),
    "adapter.json naming an unknown fusion rule": lambda f: _meta(f, hybrid_rule="best"),
    "missing bm25 folder": lambda f: shutil.rmtree(f / "bm25"),
    "truncated bm25 postings":
        lambda f: (f / "bm25" / "indices.csc.index.npy").write_bytes((f / "bm25" / "indices.csc.index.npy").read_bytes()[:200]),
}


def tampered(adapter: Path, dest: Path, fault: str) -> Path:
    """A copy of `adapter` at `dest` with `fault` planted."""
    shutil.copytree(adapter, dest)
    FAULTS[fault](dest)
    return dest
