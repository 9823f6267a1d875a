"""What collision residuals buy: a deliberately coarse quantizer (M=4 sub-spaces × K=16 codes, so
many items share all their codes), a pq table tuned with and without residual vectors for the
colliding items that carry training queries. Needs the runs of benchmarks/table.py.

    .venv/bin/python benchmarks/collisions.py scifact nfcorpus cisi npl

Prints a table and writes benchmarks/results/collisions.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.adapters.collisions import collision_rate  # noqa: E402
from retable.encoder.frozen import Encoder  # noqa: E402
from retable.adapters.quantizer import Quantizer  # noqa: E402
from retable.baselines.train import Space, train_kind  # noqa: E402
from retable.metrics import mrr_at_k  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from retable.baselines.systems import RunPairs  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.runfiles import RunFolder  # noqa: E402
from retable.metrics import evaluate, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.files import read_npy  # noqa: E402


def run_dataset(name: str, m: int, nbits: int, limit: int) -> dict:
    run_dir = ROOT / "runs" / f"bench-{name}"
    data = DATASETS / name
    config = RunConfig(**json.loads((run_dir / "config.json").read_text()))
    rp = RunPairs(run_dir, config)
    quantizer = Quantizer.train(rp.item_emb, m, nbits, config.seed)
    space = Space.build(quantizer, rp.item_emb, rp.query_emb)
    train, val = space.pairs(rp.splits["train"], rp.q_row, rp.i_row), space.pairs(rp.splits["train"] + rp.splits["val"], rp.q_row, rp.i_row)
    all_kept = space.pairs(rp.splits["train"] + rp.splits["val"] + rp.splits["test"], rp.q_row, rp.i_row)
    mass = np.bincount(all_kept.pos, minlength=len(rp.items))
    corpus, queries, qrels = load_beir(data)
    checksum = json.loads((run_dir / "adapter" / "adapter.json").read_text())["encoder_checksum"]
    emb = read_npy(RunFolder(run_dir).corpus_cache(data / "corpus.jsonl", checksum))
    qids = sorted(queries)
    q = Encoder(config.encoder).encode([queries[i] for i in qids])
    ids = [it.id for it in corpus]
    row = {"dataset": name, "m": m, "k": 2**nbits, "collision_rate": collision_rate(space.codes),
           "collision_rate_by_query_mass": collision_rate(space.codes, mass)}
    for label, lim in (("without", 0), ("with", limit)):
        # early stopping on train+val here: the point is what the residuals can fit, not generalisation
        table, result, n = train_kind("pq", quantizer, space, train, val, config, collision_limit=lim)
        train_mrr = mrr_at_k(table.query_vectors(train.q) @ table.item_vectors(space.codes, space.emb).T, train.pos)
        rows = np.array([rp.i_row.get(i, len(rp.items)) for i in ids])
        vecs = table.item_vectors(quantizer.codes(emb), quantizer.rotate(emb), rows)
        metrics = evaluate({i: qrels[i] for i in qids}, to_run(qids, ids, *exact_search(vecs, quantizer.rotate(q), 100)))
        row[label] = {"residual_items": n, "train_mrr@10": train_mrr, **metrics, "parameters": table.n_parameters()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--nbits", type=int, default=4)
    parser.add_argument("--limit", type=int, default=256)
    args = parser.parse_args()
    rows = [run_dataset(n, args.m, args.nbits, args.limit) for n in args.datasets]
    print(f"\n{'dataset':<9} {'coll%':>6} {'mass%':>6} {'resid':>5} {'trainMRR w/o':>12} {'w/':>6} {'nDCG w/o':>9} {'w/':>7}")
    for r in rows:
        a, b = r["without"], r["with"]
        print(f"{r['dataset']:<9} {100 * r['collision_rate']:>6.1f} {100 * r['collision_rate_by_query_mass']:>6.1f} {b['residual_items']:>5} "
              f"{a['train_mrr@10']:>12.3f} {b['train_mrr@10']:>6.3f} {a['ndcg@10']:>9.4f} {b['ndcg@10']:>7.4f}")
    out = ROOT / "benchmarks" / "results" / "collisions.json"
    out.write_text(json.dumps({"command": " ".join(["benchmarks/collisions.py", *sys.argv[1:]]), "runs": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
