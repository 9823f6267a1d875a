"""`retable export RUN --to FORMAT DIR`: the adapter as a sentence-transformers model folder, or its items'
vectors as a LanceDB table. Built beside DIR and renamed onto it when whole and checked; a DIR that holds
something else is refused, one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from retable.errors import UserError
from retable.files import check_out, replacing_folder

FORMATS = ("sentence-transformers", "lancedb")
CHECK_TEXTS = ("statins and the risk of breast cancer", "How do I reset my router?", "protein folding by cryo-EM")
MAX_DIFF = 1e-5  # the exported model's vectors against retable's own, on CHECK_TEXTS (both run the same files)


def export(run_dir: Path, fmt: str, out: Path, log=print) -> Path:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} — use one of {list(FORMATS)}")
    if fmt == "lancedb":
        return write_db(run_dir, out, log=log)
    return to_sentence_transformers(run_dir, out, log=log)


def to_sentence_transformers(run_dir: Path, out: Path, log=print) -> Path:
    """A folder `SentenceTransformer(out, trust_remote_code=True)` loads; its `encode` gives the adapter's vectors
    (items and queries alike). It holds the frozen encoder, its int8 ONNX file when the adapter was made on
    that path, and the adapter's learned files (no items)."""
    from sentence_transformers import SentenceTransformer

    from retable.adapters.artifact import LEARNED, Adapter, adapter_folder
    from retable.encoder.frozen import Encoder
    from retable.encoder.onnx import ONNX_INT8
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


def write_db(run_dir: Path, out: Path, log=print) -> Path:
    """Writes the shipped adapter's item vectors, ids and texts into a new LanceDB folder `out` (an earlier
    one for any adapter is replaced, once the new one is whole), with a full-text index on the text."""
    import pyarrow as pa

    from retable.files import check_out, replacing_folder, write_json
    from retable.serving.db import DB_FORMAT, DB_META, DB_TABLE, WRITE_BATCH, _lancedb, adapter_checksum
    from retable.serving.load import load_adapter

    out = Path(out)
    check_out(out, DB_META)
    lancedb = _lancedb()
    index = load_adapter(run_dir)
    folder = index.adapter.folder
    n, dim = index._vectors.shape
    with replacing_folder(out, "database") as tmp:
        table = None
        texts = index.texts(index.ids)
        for start in range(0, n, WRITE_BATCH):
            stop = min(n, start + WRITE_BATCH)
            batch = pa.table({
                "row": pa.array(np.arange(start, stop), pa.int64()),
                "id": pa.array(index.ids[start:stop], pa.string()),
                "text": pa.array(texts[start:stop], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(index._vectors[start:stop], dtype=np.float32).ravel()),
                                                            dim),
            })
            if table is None:
                table = lancedb.connect(str(tmp)).create_table(DB_TABLE, data=batch)
            else:
                table.add(batch)
        if index.hybrid:
            from lancedb.index import FTS

            table.create_index("text", config=FTS())  # English stems and stop words, as retable's BM25 has
        write_json(tmp / DB_META, {"format": DB_FORMAT, "adapter": str(folder), "adapter_checksum": adapter_checksum(folder),
                                   "n_items": n, "dim": dim, "table": DB_TABLE, "full_text": index.hybrid})
    log(f"wrote {n} item vectors of {folder} into LanceDB {out} (table {DB_TABLE!r}); search it with retable search RUN --db {out}")
    return out
