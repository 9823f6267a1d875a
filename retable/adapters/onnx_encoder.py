"""The fast CPU path of the frozen encoder: the packaged sentence-transformers model exported locally to
ONNX (torch.onnx), its BERT blocks fused by onnxruntime's transformer optimizer, its weights quantized to
int8 (onnxruntime dynamic quantization), run by ONNX Runtime. Made once per model, library version and
recipe into the user cache; nothing is downloaded. The pooling and normalization are the model's own
(mean or CLS), read from its sentence-transformers modules, then L2 like the torch path."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from retable.config import ENCODER_BACKENDS
from retable.errors import UserError
from retable.files import fingerprint

BACKENDS = ENCODER_BACKENDS
ONNX_INT8, TORCH = BACKENDS
EXPORT_VERSION = 1  # part of the cache key: raise it when the recipe below changes
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BATCH = 16  # measured on 1,000 SciFact abstracts, 2 cores: 8-32 within noise, 64+ slower (padding)
MIN_COSINE = 0.98  # the export is checked against torch on a few sentences before it is cached
CHECK_TEXTS = ["statins lower the risk of heart attacks", "How do I reset a router?", "Protein folding is studied with cryo-EM and molecular dynamics."]


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retable" / "encoders"


def check_structure(st) -> str:
    """'mean' or 'cls', when the model is a Transformer, a Pooling and optionally a Normalize; else a UserError."""
    names = [type(m).__name__ for m in st]
    mode = getattr(st[1], "pooling_mode", None) if len(names) > 1 else None
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]) or mode not in ("mean", "cls"):
        raise UserError(f"the {ONNX_INT8} encoder path runs Transformer + mean/CLS pooling models; this one is {' + '.join(names)} — use --encoder-backend torch")
    return mode


def _tokens_module(auto_model):
    """The model's transformer as a torch module of the three tokenizer outputs."""
    import torch

    class Tokens(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    return Tokens(auto_model).eval()


def _export(st, folder: Path) -> None:
    """Export, fuse (BERT only) and quantize into `folder`/model.onnx. The tracer's notes on shapes and
    onnxruntime's advice on pre-processing are for model authors: silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            _export_steps(st, folder)
        finally:
            logging.disable(logging.NOTSET)


def _export_steps(st, folder: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    auto = st[0].auto_model
    previous = auto.config._attn_implementation
    raw = folder / "fp32.onnx"
    sample = st[0].tokenizer(["a short sentence", "another one"], padding=True, return_tensors="pt")
    args = tuple(sample.get(k, torch.zeros_like(sample["input_ids"])) for k in INPUTS)
    try:
        auto.set_attn_implementation("eager")  # the plain attention graph is the one onnxruntime fuses
        with torch.no_grad():
            torch.onnx.export(_tokens_module(auto), args, str(raw), input_names=list(INPUTS), output_names=["tokens"], opset_version=17,
                              dynamic_axes={k: {0: "batch", 1: "seq"} for k in (*INPUTS, "tokens")}, dynamo=False)
    finally:
        auto.set_attn_implementation(previous)
    src = raw
    if auto.config.model_type == "bert":
        from onnxruntime.transformers.optimizer import optimize_model

        src = folder / "fused.onnx"
        optimize_model(str(raw), model_type="bert", num_heads=auto.config.num_attention_heads, hidden_size=auto.config.hidden_size).save_model_to_file(str(src))
    # per-channel int8 weights over the full range (reduce_range measured a lower cosine, no faster)
    quantize_dynamic(str(src), str(folder / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                     extra_options={"DefaultTensorType": 1})  # 1 = float: the fused ops' outputs have no inferred type
    for f in (raw, folder / "fused.onnx"):
        f.unlink(missing_ok=True)


class OnnxEncoder:
    """Runs the int8 ONNX export of a loaded SentenceTransformer; `encode` matches its normalized vectors (cosine ≥ 0.99 measured)."""

    def __init__(self, st, weights_checksum: str, dim: int, threads: int):
        import onnxruntime as ort

        self.st, self.dim = st, dim
        self.pooling = check_structure(st)
        self.max_length = st.max_seq_length
        self.tokenizer = st[0].tokenizer
        key = fingerprint([weights_checksum, ort.__version__, EXPORT_VERSION, ONNX_INT8])[:16]
        folder = _cache_root() / key
        path = folder / "model.onnx"
        if not path.is_file():
            self._make(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            raise UserError(f"the cached encoder {path} does not load ({str(exc).splitlines()[0][:120]}) — delete {folder} and it is made again") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.path = path

    def _make(self, folder: Path) -> None:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
        except OSError as exc:
            raise UserError(f"cannot write the encoder cache {folder.parent} ({exc.strerror}) — set XDG_CACHE_HOME to a writable folder, or use --encoder-backend torch") from None
        try:
            try:
                _export(self.st, tmp)
            except Exception as exc:  # torch.onnx / onnxruntime raise their own types for a model they cannot take
                raise UserError(f"cannot export this encoder to ONNX ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}) — use --encoder-backend torch") from None
            self._check(tmp / "model.onnx")
            try:
                os.replace(tmp, folder)  # atomic: another process may have finished first, then its copy stays
            except OSError:
                if not (folder / "model.onnx").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _check(self, path: Path) -> None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ours = self._run(session, [i.name for i in session.get_inputs()], CHECK_TEXTS)
        theirs = self.st.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)
        cos = float(np.min(np.sum(ours * theirs, axis=1)))
        if cos < MIN_COSINE:
            raise UserError(f"the {ONNX_INT8} export of this encoder differs from torch (cosine {cos:.3f} < {MIN_COSINE}) — use --encoder-backend torch")

    def _run(self, session, inputs: list[str], texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feed = {k: (enc[k] if k in enc else np.zeros_like(enc["input_ids"])).astype(np.int64) for k in inputs}
        tokens = session.run(None, feed)[0]
        if self.pooling == "cls":
            out = tokens[:, 0]
        else:
            mask = feed["attention_mask"][..., None].astype(np.float32)
            out = (tokens * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)  # L2 rows, as Encoder.encode promises on either path
        return out.astype(np.float32)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        from tqdm import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in tqdm(range(0, len(texts), BATCH), desc="encode", unit="batch", disable=not progress):
            rows = order[start:start + BATCH]
            out[rows] = self._run(self.session, self.inputs, [texts[i] for i in rows])
        return out
