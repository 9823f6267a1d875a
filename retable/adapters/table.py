"""The tunable part of an adapter. Every kind maps (item codes, frozen item embedding) to an item
vector and a (rotated) query embedding to a query vector; scores are inner products.

- `pq`: item = concat of the M rows its codes select (K·d parameters), initialised from the faiss
  centroids, so before tuning it equals faiss' reconstruction exactly.
- `vq`: every code has a full d-dim vector and an item is the mean of its M code vectors (M·K·d);
  initialised to M × the centroid in its sub-space slot, i.e. the same reconstruction.
- `residual`: item = normalize(e + mean of its code vectors), codes vectors start at zero, so before
  tuning it is the frozen encoder; queries get the same treatment through their own codes.
- `pq_residual` (the default): item = normalize(e + its codes' low-rank corrections), zero at start,
  so before tuning it is exactly the frozen encoder; queries get the same through their own codes.
  Under 2% of the encoder's parameters.
- `query_linear`: no codes at all, a d×d matrix on the query side (identity at start): the
  query-adapter baseline that LlamaIndex offers.

Optional collision residuals: one extra vector per listed item row (colliding popular items), added
to the item vector, zero at start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from retable.config import TABLE_KINDS as KINDS



class CodeTable(nn.Module):
    kind = "abstract"
    uses_query_codes = False
    compressed = False  # starts at the quantizer's reconstruction (frozen_pq), not at the frozen encoder
    BASIS: tuple[str, ...] = ()  # parameters that express the corrections rather than being them: a strength does not scale them

    @classmethod
    def untuned(cls, centroids: np.ndarray, dim: int) -> "CodeTable":
        """The table before tuning, for a quantizer with these centroids (M, K, d/M)."""
        raise NotImplementedError

    @staticmethod
    def weight_shape(m: int, k: int, dim: int) -> tuple[int, ...]:
        """The weight's shape for a quantizer of M sub-spaces, K codes, dimension d (a full d per code)."""
        return (m, k, dim)

    def __init__(self):
        super().__init__()
        self.collision = None  # (n_extra, d) parameter
        self.register_buffer("collision_slot", torch.zeros(0, dtype=torch.long))  # item row -> slot or -1

    def base_items(self, codes: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def items(self, codes: torch.Tensor, emb: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        out = self.base_items(codes, emb)
        if self.collision is not None and rows is not None:
            slot = torch.full_like(rows, -1)
            known = rows < len(self.collision_slot)
            slot[known] = self.collision_slot[rows[known]]
            hit = slot >= 0
            out = out.clone()
            out[hit] = out[hit] + self.collision[slot[hit]]
        return out

    def queries(self, q: torch.Tensor, qcodes: torch.Tensor | None = None) -> torch.Tensor:
        return q

    def add_collision_residuals(self, rows: np.ndarray, n_items: int, dim: int) -> None:
        """Give the items at `rows` a free vector each (zero at start), keyed by their row."""
        slot = torch.full((n_items,), -1, dtype=torch.long)
        slot[torch.as_tensor(rows, dtype=torch.long)] = torch.arange(len(rows))
        self.collision_slot = slot
        self.collision = nn.Parameter(torch.zeros(len(rows), dim))

    @torch.no_grad()
    def item_vectors(self, codes: np.ndarray, emb: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        r = torch.arange(len(codes)) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        return self.items(torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(emb), r).numpy()

    @torch.no_grad()
    def query_vectors(self, q: np.ndarray, qcodes: np.ndarray | None = None) -> np.ndarray:
        qc = torch.as_tensor(qcodes, dtype=torch.long) if qcodes is not None else None
        return self.queries(torch.as_tensor(q), qc).numpy()

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"weight": self.weight.detach().contiguous()}
        if self.collision is not None:
            out["collision"] = self.collision.detach().contiguous()
            out["collision_slot"] = self.collision_slot.contiguous()
        return out

    def save(self, path: Path) -> None:
        from safetensors.torch import save

        from retable.files import atomic_write_bytes

        # weights in half precision: the artifact's size halves, scores move by ~1e-4 (tests/test_table.py)
        half = {k: v.half() if v.is_floating_point() else v for k, v in self.tensors().items()}
        atomic_write_bytes(path, save(half, metadata={"kind": self.kind}))


def _gather(weight: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """weight (M, K, x), codes (n, M) -> (n, M, x)."""
    return weight[torch.arange(weight.shape[0]), codes]


class PQTable(CodeTable):
    """Example: with M=2 sub-spaces, K=4 codes and d=6, codes [[1, 3]] give
    concat(weight[0, 1], weight[1, 3]), a 6-dim vector."""

    kind = "pq"
    compressed = True

    @staticmethod
    def weight_shape(m, k, dim):
        return (m, k, dim // m)

    @classmethod
    def untuned(cls, centroids, dim):
        return cls(centroids)

    def __init__(self, centroids: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(centroids, dtype=np.float32)))

    def base_items(self, codes, emb):
        return _gather(self.weight, codes).reshape(codes.shape[0], -1)


class VQTable(CodeTable):
    kind = "vq"
    compressed = True

    @classmethod
    def untuned(cls, centroids, dim):
        return cls.from_centroids(centroids)

    def __init__(self, weight: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(weight, dtype=np.float32)))

    @classmethod
    def from_centroids(cls, centroids: np.ndarray) -> "VQTable":
        m, k, dsub = centroids.shape
        weight = np.zeros((m, k, m * dsub), dtype=np.float32)
        for i in range(m):
            weight[i, :, i * dsub : (i + 1) * dsub] = m * centroids[i]
        return cls(weight)

    def base_items(self, codes, emb):
        return _gather(self.weight, codes).mean(dim=1)


class ResidualTable(CodeTable):
    kind = "residual"
    uses_query_codes = True

    @classmethod
    def untuned(cls, centroids, dim):
        m, k, _ = centroids.shape
        return cls.zeros(m, k, dim)

    def __init__(self, weight: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(weight, dtype=np.float32)))

    @classmethod
    def zeros(cls, m: int, k: int, dim: int) -> "ResidualTable":
        return cls(np.zeros((m, k, dim), dtype=np.float32))

    def base_items(self, codes, emb):
        return F.normalize(emb + _gather(self.weight, codes).mean(dim=1), dim=-1)

    def queries(self, q, qcodes=None):
        return F.normalize(q + _gather(self.weight, qcodes).mean(dim=1), dim=-1)


class PQResidualTable(CodeTable):
    """Each code of each sub-space selects an r-dim correction; an item's corrections are averaged and
    mapped to d dims by a shared r×d projection, added to its frozen embedding, and normalized. Queries
    get the same through their own codes. The corrections start at zero: untuned, it is the frozen encoder.
    M·K·r + r·d parameters (48·256·32 + 32·384 = 405,504 for MiniLM, 1.8% of its weights).

    Example: M=2, K=4, r=3, d=6: codes [[1, 3]] add ((weight[0, 1] + weight[1, 3]) / 2) @ proj to e."""

    kind = "pq_residual"
    uses_query_codes = True
    RANK = 32
    BASIS = ("proj",)

    @staticmethod
    def weight_shape(m, k, dim):
        return (m, k, PQResidualTable.RANK)

    @classmethod
    def untuned(cls, centroids, dim):
        m, k, _ = centroids.shape
        proj = torch.randn(cls.RANK, dim, generator=torch.Generator().manual_seed(0)) / np.sqrt(dim)
        return cls(np.zeros((m, k, cls.RANK), dtype=np.float32), proj.numpy())

    def __init__(self, weight: np.ndarray, proj: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(weight, dtype=np.float32)))
        self.proj = nn.Parameter(torch.tensor(np.asarray(proj, dtype=np.float32)))

    def _delta(self, codes: torch.Tensor) -> torch.Tensor:
        return _gather(self.weight, codes).mean(dim=1) @ self.proj

    def base_items(self, codes, emb):
        return F.normalize(emb + self._delta(codes), dim=-1)

    def queries(self, q, qcodes=None):
        return F.normalize(q + self._delta(qcodes), dim=-1)

    def tensors(self):
        return {**super().tensors(), "proj": self.proj.detach().contiguous()}


class QueryLinear(CodeTable):
    kind = "query_linear"

    @staticmethod
    def weight_shape(m, k, dim):
        return (dim, dim)

    @classmethod
    def untuned(cls, centroids, dim):
        return cls.identity(dim)

    def __init__(self, weight: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(weight, dtype=np.float32)))

    @classmethod
    def identity(cls, dim: int) -> "QueryLinear":
        return cls(np.eye(dim, dtype=np.float32))

    def base_items(self, codes, emb):
        return emb

    def queries(self, q, qcodes=None):
        return q @ self.weight.T


_BY_KIND = {c.kind: c for c in (PQResidualTable, PQTable, VQTable, ResidualTable, QueryLinear)}  # in the order of config.TABLE_KINDS


def table_class(kind: str) -> type[CodeTable]:
    if kind not in _BY_KIND:
        raise ValueError(f"unknown table kind {kind!r}; choose from {list(KINDS)}")
    return _BY_KIND[kind]


def untuned_ranking(kind: str) -> str:
    """What a table of `kind` serves before any tuning, in words: the audit and the report say it when the untuned table ships."""
    if table_class(kind).compressed:
        return "the quantizer's reconstruction of the frozen encoder (frozen_pq), not the encoder itself"
    return "the frozen encoder's own ranking"


def new_table(kind: str, centroids: np.ndarray, dim: int) -> CodeTable:
    """The untuned table of `kind` for a quantizer with these centroids."""
    return table_class(kind).untuned(centroids, dim)


def load_table(path: Path) -> CodeTable:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        kind = (fh.metadata() or {}).get("kind", "pq")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    cls = _BY_KIND[kind]
    table = cls(tensors["weight"].numpy(), *(tensors[name].numpy() for name in cls.BASIS))  # its other parameters, by name
    if "collision" in tensors:
        table.collision_slot = tensors["collision_slot"]
        table.collision = nn.Parameter(tensors["collision"])
    return table
