"""The fast CPU path of the frozen encoder: the packaged sentence-transformers model exported locally to
ONNX (torch.onnx), its BERT blocks fused by onnxruntime's transformer optimizer, its weights quantized to
int8 (onnxruntime dynamic quantization), run by ONNX Runtime. Made once per model, library version and
recipe into the user cache; nothing is downloaded. The pooling and normalization are the model's own
(mean or CLS), read from its sentence-transformers modules, then L2 like the torch path."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from retable.config import ENCODER_BACKENDS
from retable.errors import UserError
from retable.files import fingerprint

BACKENDS = ENCODER_BACKENDS
ONNX_INT8, TORCH = BACKENDS
EXPORT_VERSION = 1  # part of the cache key: raise it when a recipe below changes (a new fallback does not change what passed before)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Each text runs alone: int8 activations are quantized per tensor, so in a batch a text's vector would depend
# on its neighbours (measured on 300 SciFact abstracts: cosine 0.993 between batched and alone, 93% of them
# changed a PQ code); alone, it is a function of the text, as an exported model needs. Speed: batches of 16
# and texts alone were within noise on 400 SciFact abstracts, 2 cores (7.9 s vs 7.8-10.0 s).
VECTORS_VERSION = 2  # part of the corpus caches' key (Encoder.identity): 1 encoded in batches
MIN_COSINE = 0.98  # the export is checked against torch on a few sentences before it is cached
# Recipes, tried in order until one holds: every MatMul in int8, then the feed-forward output MatMuls kept in
# float. Measured (min cosine to torch on CHECK_TEXTS and two more): all-MiniLM-L6-v2 holds with all int8;
# all-mpnet-base-v2 gives 0.925-0.941 with all int8, 0.988-0.995 with its 12 FFN output MatMuls in float
# (its FFN activations have a few huge channels, which one int8 scale per tensor crushes).
ALL_INT8, FFN_FLOAT = "all int8", "int8, feed-forward outputs in float"
RECIPES = (ALL_INT8, FFN_FLOAT)
CHECK_TEXTS = ["statins lower the risk of heart attacks", "How do I reset a router?",
               "Protein folding is studied with cryo-EM and molecular dynamics."]


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retable" / "encoders"


def check_structure(st) -> str:
    """'mean' or 'cls', when the model is a Transformer, a Pooling and optionally a Normalize; else a UserError."""
    names = [type(m).__name__ for m in st]
    mode = getattr(st[1], "pooling_mode", None) if len(names) > 1 else None
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]) or mode not in ("mean", "cls"):
        raise UserError(f"the {ONNX_INT8} encoder path runs Transformer + mean/CLS pooling models; this one is {' + '.join(names)} — use "
                        "--encoder-backend torch")
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


def _quiet(fn, *args):
    """The tracer's notes on shapes and onnxruntime's advice on pre-processing are for model authors: silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            return fn(*args)
        finally:
            logging.disable(logging.NOTSET)


def _export_float(st, folder: Path) -> Path:
    """The model's transformer exported to `folder` in float, its BERT blocks fused (BERT only); returns the file."""
    import torch

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
    if auto.config.model_type != "bert":
        return raw
    from onnxruntime.transformers.optimizer import optimize_model

    fused = folder / "fused.onnx"
    optimize_model(str(raw), model_type="bert", num_heads=auto.config.num_attention_heads,
                   hidden_size=auto.config.hidden_size).save_model_to_file(str(fused))
    raw.unlink()
    return fused


def ffn_outputs(path: Path, intermediate_size: int) -> list[str]:
    """The MatMuls that take a feed-forward block's wide activation back to the hidden size (weights of
    intermediate_size rows): the activations whose few very large channels int8 per-tensor scales crush."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and shapes.get(n.input[1], (0,))[0] == intermediate_size]


def _quantize(src: Path, dst: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel int8 weights over the full range (reduce_range measured a lower cosine, no faster)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False, nodes_to_exclude=exclude,
                     extra_options={"DefaultTensorType": 1})  # 1 = float: the fused ops' outputs have no inferred type


class OnnxEncoder:
    """Runs the int8 ONNX export of a loaded SentenceTransformer; `encode` matches its normalized vectors (cosine ≥ 0.99 measured)."""

    def __init__(self, st, weights_checksum: str, dim: int, threads: int, path: Path | None = None):
        import onnxruntime as ort

        self.st, self.dim = st, dim
        self.pooling = check_structure(st)
        self.max_length = st.max_seq_length
        self.tokenizer = st[0].tokenizer
        if path is None:  # `path`: an export's own copy (retable export), else the user cache, made at first use
            folder = _cache_root() / fingerprint([weights_checksum, ort.__version__, EXPORT_VERSION, ONNX_INT8])[:16]
            path = folder / "model.onnx"
            if not path.is_file():
                self._make(folder)
        folder = path.parent
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            raise UserError(f"the cached encoder {path} does not load ({str(exc).splitlines()[0][:120]}) — "
                            f"delete {folder} and it is made again") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.path = path

    def _make(self, folder: Path) -> None:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
        except OSError as exc:
            raise UserError(f"cannot write the encoder cache {folder.parent} ({exc.strerror}) — set XDG_CACHE_HOME to a writable folder, or use "
                            "--encoder-backend torch") from None
        try:
            self._build(tmp)
            try:
                os.replace(tmp, folder)  # atomic: another process may have finished first, then its copy stays
            except OSError:
                if not (folder / "model.onnx").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _build(self, tmp: Path) -> None:
        """`tmp`/model.onnx by the first recipe whose vectors hold against torch (RECIPES); recipe.json says which."""
        from retable.files import write_json

        cosines = {}
        try:
            src = _quiet(_export_float, self.st, tmp)
            for recipe in RECIPES:
                exclude = ffn_outputs(src, self.st[0].auto_model.config.intermediate_size) if recipe == FFN_FLOAT else []
                if recipe == FFN_FLOAT and not exclude:
                    continue
                _quiet(_quantize, src, tmp / "model.onnx", exclude)
                cosines[recipe] = self._cosine(tmp / "model.onnx")
                if cosines[recipe] >= MIN_COSINE:
                    write_json(tmp / "recipe.json", {"recipe": recipe, "float_matmuls": exclude, "min_cosine": round(cosines[recipe], 4)})
                    if recipe != ALL_INT8:
                        print(f"note: this encoder's {ONNX_INT8} path keeps {len(exclude)} feed-forward MatMuls in float (all int8: cosine "
                              f"{cosines[ALL_INT8]:.3f} to torch; now {cosines[recipe]:.3f}); made once, cached", file=sys.stderr)
                    src.unlink()
                    return
        except Exception as exc:  # torch.onnx / onnxruntime raise their own types for a model they cannot take
            raise UserError(f"cannot export this encoder to ONNX ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120]}) — use --encoder-backend torch") from None
        tried = ", ".join(f"{r}: cosine {c:.3f}" for r, c in cosines.items())
        raise UserError(f"the {ONNX_INT8} export of this encoder differs from torch ({tried}; < {MIN_COSINE}) — use --encoder-backend torch")

    def _cosine(self, path: Path) -> float:
        """The lowest cosine between this file's vectors and torch's on CHECK_TEXTS."""
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ours = np.vstack([self._run(session, [i.name for i in session.get_inputs()], [t]) for t in CHECK_TEXTS])
        theirs = self.st.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)
        return float(np.min(np.sum(ours * theirs, axis=1)))

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
        """One text at a time (see VECTORS_VERSION): a text's vector does not depend on what is encoded beside it."""
        from tqdm import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in tqdm(range(len(texts)), desc="encode", unit="text", disable=not progress, mininterval=1.0):
            out[i] = self._run(self.session, self.inputs, [texts[i]])[0]
        return out
