"""What the table can learn from good data: the default table trained on each collection's real
queries (k-fold over the queries with qrels; each fold's queries are scored only by a table that never
saw them), beside frozen_flat on the same queries. It separates the table's capacity from the
quality of the synthetic training data. Needs the run folders of adapt_quality.py (their quantizer
and cached corpus embeddings).

    .venv/bin/python benchmarks/ceiling.py scifact nfcorpus cisi npl --folds 5 --tag=-onnx

The table is tuned as `retable adapt` tunes it (epoch and strength chosen on a validation part of the
fold's training queries), with the run's encoder path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.adapters.distill import DistillSettings, Labelled, distill  # noqa: E402
from retable.encoder.frozen import Encoder  # noqa: E402
from retable.adapters.quantizer import Quantizer  # noqa: E402
from retable.adapters.table import new_table  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.metrics import per_query_ndcg, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.files import read_npy  # noqa: E402
from retable.runfiles import QUANTIZER, RunFolder  # noqa: E402

CANDIDATES = 30


def _labels(q, qcodes, qids, qrels, row, frozen_rows) -> Labelled:
    """Each query's judged items (teacher score = its grade) and the frozen top-30 others (score 0)."""
    width = CANDIDATES + max(len(qrels[i]) for i in qids)
    rows = np.full((len(qids), width), -1, dtype=np.int64)
    scores = np.full((len(qids), width), -np.inf, dtype=np.float32)
    pos = np.zeros(len(qids), dtype=np.int64)
    for n, qid in enumerate(qids):
        judged = {row[d]: g for d, g in qrels[qid].items() if d in row and g > 0}
        others = [r for r in frozen_rows[n] if r not in judged][:CANDIDATES]
        cand = list(judged) + others
        rows[n, :len(cand)] = cand
        scores[n, :len(cand)] = [judged.get(r, 0) / max(judged.values()) for r in cand]
        pos[n] = max(judged, key=judged.get)
    return Labelled(q, qcodes, rows, scores, pos)


def run_dataset(name: str, folds: int, tag: str) -> dict:
    run, data = RunFolder(ROOT / "runs" / f"quality-{name}{tag}"), DATASETS / name
    config = RunConfig(**run.config_json())
    quantizer, encoder = Quantizer.load(run.path(QUANTIZER)), Encoder(config.encoder, config.encoder_backend)
    corpus, queries, qrels = load_beir(data, log=lambda m: None)
    emb = read_npy(run.corpus_cache(data / "corpus.jsonl", encoder.identity()))
    ids = [it.id for it in corpus]
    row = {d: i for i, d in enumerate(ids)}
    qids = sorted(q for q in queries if any(d in row and g > 0 for d, g in qrels[q].items()))
    q_emb = encoder.encode([queries[i] for i in qids])
    codes, remb, rq, rqc = quantizer.codes(emb), quantizer.rotate(emb), quantizer.rotate(q_emb), quantizer.codes(q_emb)
    judged = {i: qrels[i] for i in qids}
    frozen = to_run(qids, ids, *exact_search(emb, q_emb, 100))
    labels = _labels(rq, rqc, qids, qrels, row, exact_search(emb, q_emb, CANDIDATES + 20)[1])
    fold = np.random.default_rng(config.seed).permutation(len(qids)) % folds
    tuned_run, epochs, strengths = {}, [], []
    for f in range(folds):
        train_idx = np.flatnonzero(fold != f)
        val_mask = np.random.default_rng(f).random(len(train_idx)) < 0.15
        table = new_table(config.table_kind, quantizer.centroids(), quantizer.dim)
        settings = DistillSettings(epochs=config.epochs, patience=config.patience, lr=config.lr, batch_size=config.batch_size, tau=config.tau,
                                   seed=config.seed)
        result = distill(table, codes, remb, labels.take(train_idx[~val_mask]), labels.take(train_idx[val_mask]), settings)
        epochs.append(result.best_epoch)
        strengths.append(result.strength)
        test_idx = np.flatnonzero(fold == f)
        vecs = table.item_vectors(codes, remb)
        tuned_run |= to_run([qids[i] for i in test_idx], ids, *exact_search(vecs, table.query_vectors(rq[test_idx], rqc[test_idx]), 100))
    flat, ceiling = per_query_ndcg(judged, frozen), per_query_ndcg(judged, tuned_run)
    return {"dataset": name, "queries": len(qids), "folds": folds, "best_epochs": epochs, "strengths": strengths,
            "frozen_flat": round(float(flat.mean()) * 100, 2), "real_query_ceiling": round(float(ceiling.mean()) * 100, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--tag", default="", help="the run folders' suffix (runs/quality-<name><tag>), e.g. -onnx")
    args = parser.parse_args()
    rows = [run_dataset(n, args.folds, args.tag) for n in args.datasets]
    print(f"\n{'dataset':<10}{'queries':>8}{'frozen_flat':>13}{'ceiling':>9}  best epochs, strengths")
    for r in rows:
        print(f"{r['dataset']:<10}{r['queries']:>8}{r['frozen_flat']:>13.2f}{r['real_query_ceiling']:>9.2f}  {r['best_epochs']}, {r['strengths']}")
    out = ROOT / "benchmarks" / "results" / "ceiling.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
