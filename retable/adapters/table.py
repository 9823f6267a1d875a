"""The code-indexed table (`pq` kind): an item's vector is the concatenation of the table rows its
M codes select. Initialised from the faiss centroids, so before tuning it equals faiss'
reconstruction exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class PQTable(nn.Module):
    """Example: with M=2 sub-spaces, K=4 codes and d=6, codes [[1, 3]] give
    concat(weight[0, 1], weight[1, 3]), a 6-dim vector."""

    kind = "pq"

    def __init__(self, centroids: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(centroids, dtype=np.float32)))

    @property
    def m(self) -> int:
        return self.weight.shape[0]

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        rows = self.weight[torch.arange(self.m), codes]  # (n, M, d/M)
        return rows.reshape(codes.shape[0], -1)

    @torch.no_grad()
    def vectors(self, codes: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(codes, dtype=torch.long)).numpy()

    def n_parameters(self) -> int:
        return self.weight.numel()

    def save(self, path: Path) -> None:
        from safetensors.torch import save

        from retable.files import atomic_write_bytes

        atomic_write_bytes(path, save({"weight": self.weight.detach().contiguous()}, metadata={"kind": self.kind}))

    @classmethod
    def load(cls, path: Path) -> "PQTable":
        from safetensors.torch import load_file

        return cls(load_file(str(path))["weight"].numpy())
