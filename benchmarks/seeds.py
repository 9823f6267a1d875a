"""How much of a table's nDCG@10 change is noise: the run's pq and residual tables retuned with five
tuning seeds, the run's own first (same pairs and splits), and a paired bootstrap 95% interval, over queries, of each
table's difference to its untuned start. Needs the runs of benchmarks/table.py.

    .venv/bin/python benchmarks/seeds.py scifact nfcorpus cisi npl

Prints a table and writes benchmarks/results/seeds.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.adapters.artifact import Adapter  # noqa: E402
from retable.encoder.frozen import Encoder  # noqa: E402
from retable.adapters.table import new_table  # noqa: E402
from retable.baselines.train import Space, train_kind  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from retable.baselines.systems import RunPairs  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.runfiles import RunFolder  # noqa: E402
from retable.metrics import per_query_ndcg, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.files import read_npy  # noqa: E402

OTHER_SEEDS = [0, 1, 2, 3]  # besides the run's own seed, which comes first


def run_dataset(name: str) -> dict:
    run_dir, data = ROOT / "runs" / f"bench-{name}", DATASETS / name
    config = RunConfig(**json.loads((run_dir / "config.json").read_text()))
    rp, adapter = RunPairs(run_dir, config), Adapter(run_dir / "adapter")
    quantizer = adapter.quantizer
    space = Space.build(quantizer, rp.item_emb, rp.query_emb, codes=adapter.codes)
    train, val = space.pairs(rp.splits["train"], rp.q_row, rp.i_row), space.pairs(rp.splits["val"], rp.q_row, rp.i_row)
    corpus, queries, qrels = load_beir(data)
    emb = read_npy(RunFolder(run_dir).corpus_cache(data / "corpus.jsonl", adapter.meta["encoder_checksum"]))
    qids = sorted(queries)
    judged = {q: qrels[q] for q in qids}
    q = Encoder(config.encoder).encode([queries[i] for i in qids])
    ids = [it.id for it in corpus]
    codes, qcodes = quantizer.codes(emb), quantizer.codes(q)

    def ndcg(table) -> np.ndarray:
        vecs = table.item_vectors(codes, quantizer.rotate(emb), adapter.rows(ids))
        return per_query_ndcg(judged, to_run(qids, ids, *exact_search(vecs, table.query_vectors(quantizer.rotate(q), qcodes), 100)))

    row = {"dataset": name, "queries": len(qids), "train_pairs": len(train.pos)}
    for kind in ("pq", "residual"):
        start = ndcg(new_table(kind, quantizer.centroids(), quantizer.dim))
        per_seed = []
        for seed in [config.seed, *OTHER_SEEDS]:
            table, result, _ = train_kind(kind, quantizer, space, train, val, config.model_copy(update={"seed": seed}),
                                          collision_limit=config.collision_residuals)
            per_seed.append((ndcg(table), result.best_epoch))
        means = [float(v.mean()) for v, _ in per_seed]
        diff = per_seed[0][0] - start
        ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=2000, random_state=0, method="percentile").confidence_interval
        row[kind] = {"untuned": float(start.mean()), "per_seed": means, "best_epochs": [e for _, e in per_seed],
                     "mean": float(np.mean(means)), "std": float(np.std(means)),
                     "run_seed_diff": float(diff.mean()), "run_seed_diff_ci95": [float(ci.low), float(ci.high)]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    rows = [run_dataset(n) for n in args.datasets]
    print(f"\n{'dataset':<9} {'kind':<8} {'untuned':>8} {'tuned mean±std (5 seeds)':>26} {'run-seed diff [95% CI]':>28}")
    for r in rows:
        for kind in ("pq", "residual"):
            k = r[kind]
            lo, hi = k["run_seed_diff_ci95"]
            print(f"{r['dataset']:<9} {kind:<8} {k['untuned']:>8.4f} {k['mean']:>17.4f} ± {k['std']:.4f} "
                  f"{k['run_seed_diff']:>+10.4f} [{lo:+.4f}, {hi:+.4f}]")
    out = ROOT / "benchmarks" / "results" / "seeds.json"
    out.write_text(json.dumps({"command": " ".join(["benchmarks/seeds.py", *sys.argv[1:]]), "runs": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
