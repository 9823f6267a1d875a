"""faiss product quantization of item embeddings: training, codes, and the centroids that
initialise the table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retable.errors import UserError


def choose_nbits(n_items: int, wanted: int) -> int:
    """Bits per code, lowered so that each sub-space has at least 8 training points per centroid.

    >>> choose_nbits(5000, 8), choose_nbits(100, 8), choose_nbits(3, 8)
    (8, 3, 1)
    """
    return max(1, min(wanted, int(math.floor(math.log2(max(n_items, 2) / 8))) if n_items >= 16 else 1))


def train_pq(embeddings: np.ndarray, m: int, nbits: int, seed: int):
    import faiss

    n, d = embeddings.shape
    if d % m:
        raise UserError(f"pq_m={m} does not divide the encoder dimension {d} — pick a divisor such as 8, 16, 24, 32 or 48")
    if n < 2:
        raise UserError(f"{n} item(s) is too few to train a quantizer — give at least 16 items")
    index = faiss.IndexPQ(d, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.pq.cp.seed = seed
    index.pq.cp.niter = 25
    index.pq.cp.min_points_per_centroid = 1  # choose_nbits already keeps enough points; silences the warning
    index.train(np.ascontiguousarray(embeddings, dtype=np.float32))
    return index


def centroids(index) -> np.ndarray:
    """The codebooks as an (M, K, d/M) array."""
    import faiss

    pq = index.pq
    return faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub).copy()


def packed_codes(index, embeddings: np.ndarray) -> np.ndarray:
    """faiss' own code bytes (n, code_size)."""
    return index.sa_encode(np.ascontiguousarray(embeddings, dtype=np.float32))


def unpack_codes(packed: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """faiss packs the M codes of nbits each little-endian into bytes; return them as (n, M) int64."""
    if nbits == 8:
        return packed[:, :m].astype(np.int64)
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, : m * nbits].reshape(len(packed), m, nbits)
    return (bits.astype(np.int64) << np.arange(nbits, dtype=np.int64)).sum(axis=2)


def item_codes(index, embeddings: np.ndarray) -> np.ndarray:
    """(n, M) integer codes of new or old items: no retraining needed."""
    return unpack_codes(packed_codes(index, embeddings), index.pq.M, index.pq.nbits)


def reconstruct(index, embeddings: np.ndarray) -> np.ndarray:
    """faiss' reconstruction of the items' codes (the `frozen_pq` vectors)."""
    return index.sa_decode(packed_codes(index, embeddings))


def save_quantizer(index, path: Path) -> None:
    import faiss

    from retable.files import atomic_write_bytes

    atomic_write_bytes(path, faiss.serialize_index(index).tobytes())


def load_quantizer(path: Path):
    import faiss

    return faiss.deserialize_index(np.fromfile(str(path), dtype=np.uint8))
