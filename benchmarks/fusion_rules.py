"""Which fusion of BM25 and the frozen encoder holds on a collection it was not chosen on? No table, no LLM:
BM25 and the frozen encoder (the run's default path) each rank the collection's items for its real queries,
and every fusion rule in `retable.retrieval.fusion.RULES` (and the convex min-max fusion at fixed weights) is
scored by nDCG@10. Then leave-one-collection-out: a rule (and its one setting) is chosen on three collections'
mean and judged on the fourth; every fold and the worst are printed.

    .venv/bin/python benchmarks/fusion_rules.py scifact nfcorpus cisi npl

Item embeddings are cached in runs/fusion-cache/. Writes benchmarks/results/fusion_rules.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.evals.beir import load_beir  # noqa: E402
from retable.metrics import paired_interval  # noqa: E402
from retable.metrics import per_query_ndcg, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.files import read_npy, write_npy  # noqa: E402
from retable.retrieval.fusion import RULES, Candidates  # noqa: E402

DEPTH = 100
FIXED = tuple(round(0.1 * i, 1) for i in range(0, 11))


def rankings(name: str, backend: str) -> tuple[dict, Candidates, list[str], list[str], tuple, tuple]:
    from retable.encoder.frozen import Encoder
    from retable.config import RunConfig
    from retable.retrieval.lexical import Lexical

    data = DATASETS / name
    corpus, queries, qrels = load_beir(data, log=lambda m: None)
    encoder = Encoder(RunConfig().encoder, backend)
    cache = ROOT / "runs" / "fusion-cache" / f"{name}-{encoder.identity()[:16]}.npy"
    if cache.is_file():
        item_emb = read_npy(cache)
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        item_emb = encoder.encode([it.encode_text() for it in corpus], progress=True)
        write_npy(cache, item_emb)
    qids = sorted(queries)
    texts = [queries[q] for q in qids]
    q_emb = encoder.encode(texts)
    dense, lexical = exact_search(item_emb, q_emb, DEPTH), Lexical.build([it.encode_text() for it in corpus]).top(texts, DEPTH)
    return {q: qrels[q] for q in qids}, Candidates.build(dense, lexical, item_emb, q_emb), qids, [it.id for it in corpus], dense, lexical


def score(judged: dict, qids: list[str], ids: list[str], top: tuple) -> np.ndarray:
    return per_query_ndcg(judged, to_run(qids, ids, *top)) * 100


def systems(name: str, backend: str) -> dict[str, np.ndarray]:
    """Per-query nDCG@10 ×100 of every reference and rule on one collection."""
    judged, cands, qids, ids, dense, lexical = rankings(name, backend)
    out = {"bm25": score(judged, qids, ids, lexical), "frozen_flat": score(judged, qids, ids, dense)}
    for w in FIXED:
        out[f"minmax@{w}"] = score(judged, qids, ids, cands.ranked(w, DEPTH))
    for rule in RULES:
        out[rule] = score(judged, qids, ids, cands.ranked_by(rule, DEPTH))
    return out


def leave_one_out(means: dict[str, dict[str, float]], candidates: list[str]) -> list[dict]:
    """Each fold: the candidate with the best mean on the other collections, judged on the held-out one."""
    folds = []
    for held in means:
        rest = [n for n in means if n != held]
        pick = max(candidates, key=lambda c: (np.mean([means[n][c] for n in rest]), -candidates.index(c)))
        ref = max(means[held]["bm25"], means[held]["frozen_flat"])
        folds.append({"held_out": held, "chosen": pick, "ndcg": round(means[held][pick], 2),
                      "minus_best_reference": round(means[held][pick] - ref, 2),
                      "minus_minmax@0.5": round(means[held][pick] - means[held]["minmax@0.5"], 2)})
    return folds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fusion_rules.json"))
    args = ap.parse_args()
    per_query = {n: systems(n, args.backend) for n in args.datasets}
    means = {n: {s: round(float(v.mean()), 2) for s, v in sysmap.items()} for n, sysmap in per_query.items()}
    names = list(next(iter(means.values())))
    print("| system | " + " | ".join(args.datasets) + " | average | worst minus max(bm25, flat) |")
    print("|---|" + "---|" * (len(args.datasets) + 2))
    for s in names:
        vals = [means[n][s] for n in args.datasets]
        worst = min(means[n][s] - max(means[n]["bm25"], means[n]["frozen_flat"]) for n in args.datasets)
        print(f"| {s} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} | {worst:+.2f} |")
    fused = [s for s in names if s not in ("bm25", "frozen_flat")]
    folds = {"fixed weight": leave_one_out(means, [s for s in fused if s.startswith("minmax@")]),
             "any rule": leave_one_out(means, fused)}
    for family, rows in folds.items():
        print(f"\nleave-one-collection-out, {family}:")
        for r in rows:
            print(f"  held out {r['held_out']}: chose {r['chosen']} on the other three -> {r['ndcg']:.2f} "
                  f"({r['minus_best_reference']:+.2f} vs max(bm25, flat), {r['minus_minmax@0.5']:+.2f} vs minmax@0.5)")
        print(f"  worst fold vs max(bm25, flat): {min(r['minus_best_reference'] for r in rows):+.2f}")
    paired = {}
    print("\nthe prior rule (peak) against the untuned fusion at 0.5 and the better reference, paired 95% intervals over queries:")
    for n, v in per_query.items():
        ref = max(("bm25", "frozen_flat"), key=lambda s: v[s].mean())
        paired[n] = {f"peak - {other}": [round(float((v["peak"] - v[other]).mean()), 2), *(round(x, 2) for x in paired_interval(v["peak"], v[other]))]
                     for other in ("minmax@0.5", ref)}
        print(f"  {n}: " + "; ".join(f"{k} {a:+.2f} [{b:+.2f}, {c:+.2f}]" for k, (a, b, c) in paired[n].items()))
    Path(args.out).write_text(json.dumps({"backend": args.backend, "ndcg@10": means, "leave_one_out": folds, "paired": paired,
                                          "queries": {n: len(v["bm25"]) for n, v in per_query.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
