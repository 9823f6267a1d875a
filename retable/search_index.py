"""Inner-product search over item vectors: exact (faiss IndexFlatIP) up to `ann_threshold` items,
faiss IVF-PQ above it, where an exact scan of every query against every item stops being cheap."""

from __future__ import annotations

import math

import numpy as np

ANN_THRESHOLD = 250_000  # items; RunConfig.ann_threshold overrides it for a run
ANN_NPROBE = 32


def _pq_m(d: int) -> int:
    """The most PQ sub-spaces, at most 48, that divide the dimension (48 for MiniLM's 384)."""
    return max(m for m in range(1, min(d, 48) + 1) if d % m == 0)


def build(vecs: np.ndarray, *, ann_threshold: int = ANN_THRESHOLD, nprobe: int = ANN_NPROBE, seed: int = 0, chunk: int = 65_536):
    """A faiss index of `vecs` (rows in order). Above the threshold: IVF with about 4·sqrt(n) lists,
    trained on at most 64 points a list, vectors stored as PQ codes; `nprobe` lists are searched."""
    import faiss

    n, d = vecs.shape
    if n <= ann_threshold:
        index = faiss.IndexFlatIP(d)
        index.add(np.ascontiguousarray(vecs, dtype=np.float32))
        return index
    nlist = int(4 * math.sqrt(n))
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, _pq_m(d), 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)
    index.train(np.ascontiguousarray(vecs[np.sort(sample)], dtype=np.float32))
    for start in range(0, n, chunk):  # a memory-mapped array is read a chunk at a time
        index.add(np.ascontiguousarray(vecs[start:start + chunk], dtype=np.float32))
    index.nprobe = nprobe
    return index


def top_k(vecs: np.ndarray, queries: np.ndarray, k: int, *, ann_threshold: int = ANN_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (n_queries, min(k, n_items)); an approximate search may leave rows -1."""
    k = min(k, len(vecs))
    if len(queries) == 0:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    index = build(vecs, ann_threshold=ann_threshold)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def top_k_rows(vecs: np.ndarray, queries: np.ndarray, k: int, *, ann_threshold: int = ANN_THRESHOLD) -> np.ndarray:
    """Only the rows of `top_k` (the filter's signature)."""
    return top_k(vecs, queries, k, ann_threshold=ann_threshold)[1]
