"""`retable export RUN --to FORMAT DIR`: the adapter as a sentence-transformers model folder, or its items'
vectors as a LanceDB table. Built beside DIR and renamed onto it when whole and checked; a DIR that holds
something else is refused, one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from retable.errors import UserError
from retable.files import replacing_folder

FORMATS = ("sentence-transformers", "lancedb")
CHECK_TEXTS = ("statins and the risk of breast cancer", "How do I reset my router?", "protein folding by cryo-EM")
MAX_DIFF = 1e-5  # the exported model's vectors against retable's own, on CHECK_TEXTS (both run the same files)


def export(run_dir: Path, fmt: str, out: Path, log=print) -> Path:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} — use one of {list(FORMATS)}")
    if fmt == "lancedb":
        from retable.serving.db import write_db

        return write_db(run_dir, out, log=log)
    return to_sentence_transformers(run_dir, out, log=log)


def check_out(out: Path, marker: str) -> None:
    """`out` may be new, empty, or an earlier export of this kind (it holds `marker`): that one is replaced."""
    if out.is_file() or out.is_symlink():
        raise UserError(f"{out} is a file — give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise UserError(f"{out} is a folder that holds other files — give a new or empty folder (an earlier export there is replaced)")


def to_sentence_transformers(run_dir: Path, out: Path, log=print) -> Path:
    """A folder `SentenceTransformer(out, trust_remote_code=True)` loads; its `encode` gives the adapter's vectors
    (items and queries alike). It holds the frozen encoder, its int8 ONNX file when the adapter was made on
    that path, and the adapter's learned files (no items)."""
    from sentence_transformers import SentenceTransformer

    from retable.adapters.artifact import LEARNED, Adapter, adapter_folder
    from retable.adapters.encoder import Encoder
    from retable.adapters.onnx_encoder import ONNX_INT8
    from retable.runlock import adapter_lock
    from retable.serving.st_module import ADAPTER_DIR, ENCODER_DIR, ONNX_FILE, AdaptedEncoder
    from retable.serving.text_vectors import TextVectors, check_text_function

    out = Path(out)
    check_out(out, AdaptedEncoder.config_file_name)
    folder = adapter_folder(run_dir)
    with adapter_lock(folder, write=False):
        adapter = Adapter(folder, items=False)
        check_text_function(adapter, symmetric=True)
        encoder = Encoder(adapter.meta["encoder"], adapter.variant)
        native = TextVectors(adapter, encoder)
        with replacing_folder(out, "export") as tmp:
            shutil.copytree(encoder.path, tmp / ENCODER_DIR, ignore=shutil.ignore_patterns("onnx", "openvino", "*.onnx", "__pycache__"))
            (tmp / ADAPTER_DIR).mkdir()
            for name in LEARNED:
                shutil.copy2(folder / name, tmp / ADAPTER_DIR / name)
            if adapter.variant == ONNX_INT8:
                (tmp / ONNX_FILE).parent.mkdir(parents=True)
                shutil.copy2(encoder._onnx().path, tmp / ONNX_FILE)
            module = AdaptedEncoder(str(tmp), adapter.variant)
            SentenceTransformer(modules=[module], device="cpu", similarity_fn_name="dot").save(str(tmp))
            model = SentenceTransformer(str(tmp), device="cpu", trust_remote_code=True, local_files_only=True)
            diff = float(np.abs(model.encode(list(CHECK_TEXTS), convert_to_numpy=True) - native.queries(list(CHECK_TEXTS))).max())
            if diff > MAX_DIFF:
                raise UserError(f"the exported model's vectors differ from the adapter's by {diff:.2g} (> {MAX_DIFF}) — nothing was written to {out}")
    log(f"exported {folder} ({adapter.table.kind}, {adapter.variant} encoder) to {out}: SentenceTransformer({str(out)!r}, trust_remote_code=True)")
    return out
