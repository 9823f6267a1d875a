"""The one sentence-transformers module of an exported adapter: texts in, the adapter's vectors out.

It runs the frozen encoder on the path the adapter was made with (the export's own int8 ONNX file, or
torch), then the adapter's quantizer and table, through the same code as `load_adapter(...).search`.
`SentenceTransformer(folder, trust_remote_code=True)` loads it (sentence-transformers asks for that flag
before it imports a module class from outside its own package; this one is retable's, installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sentence_transformers.sentence_transformer.modules import InputModule

from retable.encoder.onnx import ONNX_INT8

ENCODER_DIR, ADAPTER_DIR, ONNX_FILE = "encoder", "adapter", "onnx/model_int8.onnx"


class AdaptedEncoder(InputModule):
    config_file_name = "retable_module.json"
    config_keys = ["encoder_variant"]
    save_in_root = True

    def __init__(self, folder: str, encoder_variant: str):
        super().__init__()
        from retable.adapters.artifact import Adapter
        from retable.encoder.frozen import Encoder
        from retable.serving.text_vectors import TextVectors, check_text_function

        root = Path(folder)
        self.folder, self.encoder_variant = root, encoder_variant
        onnx = root / ONNX_FILE if encoder_variant == ONNX_INT8 else None
        adapter = Adapter(root / ADAPTER_DIR, items=False)
        check_text_function(adapter, symmetric=True)
        self.vectors = TextVectors(adapter, Encoder(str(root / ENCODER_DIR), encoder_variant, onnx_path=onnx))
        self.tokenizer = self.vectors.encoder.model.tokenizer  # for callers that count tokens; encoding runs in forward

    @property
    def max_seq_length(self) -> int:
        return self.vectors.encoder.model.max_seq_length

    def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, Any]:
        texts = [str(t) for t in inputs]
        return {"texts": self._prepend_prompt(texts, prompt) if prompt else texts}

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        features["sentence_embedding"] = torch.from_numpy(self.vectors.documents(features["texts"]))
        return features

    def get_embedding_dimension(self) -> int:
        return self.vectors.dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, output_path: str, *args, **kwargs) -> None:
        """This module's settings, and its encoder, ONNX file and adapter copied when saved to another folder
        (`retable.serving.export` lays them out in the first place)."""
        import shutil

        out = Path(output_path)
        for name in (ENCODER_DIR, ADAPTER_DIR, Path(ONNX_FILE).parent.name):
            src = self.folder / name
            if src.is_dir() and src.resolve() != (out / name).resolve():
                shutil.copytree(src, out / name, dirs_exist_ok=True)
        self.save_config(output_path)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "AdaptedEncoder":
        config = cls.load_config(model_name_or_path, subfolder=subfolder)
        return cls(str(Path(model_name_or_path) / subfolder), **config)
