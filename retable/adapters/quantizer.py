"""faiss product quantization of item embeddings, plain (PQ) or with a learned rotation (OPQ).

Everything downstream works in the quantizer's space: `rotate` maps encoder vectors (queries)
into it (the identity for PQ), and the table's item vectors live there, so that before tuning
`rotate(q) @ table_vector == q @ faiss_reconstruction` exactly up to float rounding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retable.config import QUANTIZER_KINDS as KINDS
from retable.errors import UserError


def choose_nbits(n_items: int, wanted: int) -> int:
    """Bits per code, lowered so that each sub-space has at least 8 training points per centroid.

    >>> choose_nbits(5000, 8), choose_nbits(100, 8), choose_nbits(3, 8)
    (8, 3, 1)
    """
    return max(1, min(wanted, int(math.floor(math.log2(max(n_items, 2) / 8))) if n_items >= 16 else 1))


def unpack_codes(packed: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """faiss packs the M codes of nbits each little-endian into bytes; return them as (n, M) int64."""
    if nbits == 8:
        return packed[:, :m].astype(np.int64)
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, : m * nbits].reshape(len(packed), m, nbits)
    return (bits.astype(np.int64) << np.arange(nbits, dtype=np.int64)).sum(axis=2)


class Quantizer:
    """A trained faiss IndexPQ, optionally behind an OPQ rotation (IndexPreTransform)."""

    def __init__(self, index):
        import faiss

        self.index = index
        if isinstance(index, faiss.IndexPreTransform):
            self.kind = "opq"
            opq = faiss.downcast_VectorTransform(index.chain.at(0))
            self.rotation = faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)
            self.pq_index = faiss.downcast_index(index.index)
        else:
            self.kind, self.rotation, self.pq_index = "pq", None, index
        pq = self.pq_index.pq
        self.m, self.nbits, self.k, self.dsub, self.dim = pq.M, pq.nbits, pq.ksub, pq.dsub, index.d

    @classmethod
    def train(cls, embeddings: np.ndarray, m: int, nbits: int, seed: int, kind: str = "pq", opq_iterations: int = 10) -> "Quantizer":
        import faiss

        n, d = embeddings.shape
        if kind not in KINDS:
            raise UserError(f"unknown quantizer {kind!r} — use one of {list(KINDS)}")
        if d % m:
            raise UserError(f"pq_m={m} does not divide the encoder dimension {d} — pick a divisor such as 8, 16, 24, 32 or 48")
        if n < 2:
            raise UserError(f"{n} item(s) is too few to train a quantizer — give at least 16 items")
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        pq_index = faiss.IndexPQ(d, m, nbits, faiss.METRIC_INNER_PRODUCT)
        pq_index.pq.cp.seed = seed
        pq_index.pq.cp.niter = 25
        pq_index.pq.cp.min_points_per_centroid = 1  # choose_nbits already keeps enough points; silences the warning
        if kind == "pq":
            pq_index.train(x)
            return cls(pq_index)
        opq = faiss.OPQMatrix(d, m)
        opq.niter = opq_iterations
        inner = faiss.ProductQuantizer(d, m, nbits)  # OPQ's own PQ, with the same K as the final one
        inner.cp.seed = seed
        inner.cp.min_points_per_centroid = 1
        opq.pq = inner
        index = faiss.IndexPreTransform(opq, pq_index)
        index.train(x)
        opq.pq = None  # `inner` is a Python-owned object; the trained matrix no longer needs it
        return cls(index)

    def packed(self, x: np.ndarray) -> np.ndarray:
        return self.index.sa_encode(np.ascontiguousarray(x, dtype=np.float32))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """(n, M) integer codes of new or old items: no retraining needed."""
        return unpack_codes(self.packed(x), self.m, self.nbits)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """faiss' reconstruction of the items' codes, in the encoder's space (the `frozen_pq` vectors)."""
        return self.index.sa_decode(self.packed(x))

    def centroids(self) -> np.ndarray:
        """The codebooks as an (M, K, d/M) array, in the quantizer's (rotated) space."""
        import faiss

        return faiss.vector_to_array(self.pq_index.pq.centroids).reshape(self.m, self.k, self.dsub).copy()

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """Encoder space -> quantizer space (OPQ's rotation; the identity for PQ)."""
        x = np.asarray(x, dtype=np.float32)
        return x if self.rotation is None else np.ascontiguousarray(x @ self.rotation.T, dtype=np.float32)

    def save(self, path: Path) -> None:
        import faiss

        from retable.files import atomic_write_bytes

        atomic_write_bytes(path, faiss.serialize_index(self.index).tobytes())

    @classmethod
    def load(cls, path: Path) -> "Quantizer":
        import faiss

        return cls(faiss.deserialize_index(np.fromfile(str(path), dtype=np.uint8)))
