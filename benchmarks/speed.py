"""Encoder and embedded-LLM throughput, each pair of paths side by side in one run.

    .venv/bin/python benchmarks/speed.py scifact nfcorpus cisi npl [--docs 1000] [--llm-items 96] [--parallel 8] [--skip-encoder]

1. Encoding: docs/s of the torch path and the default onnx-int8 path on the first `--docs` SciFact abstracts
   (alternating torch, onnx, torch, onnx: the median of two each), and the mean / lowest cosine between their vectors.
2. frozen_flat nDCG@10 of each path on each named collection (queries and corpus encoded by that path).
3. The embedded LLM (SmolLM2-135M) writing queries for `--llm-items` SciFact items through the queries
   stage's own prompt and client (no cache), each path in a fresh process: sequential with the weights as
   shipped (Q4_1; the path before batching and re-encoding), sequential with the default (fast, Q8_0) weights,
   and batched (llm_parallel=`--parallel`, fast weights); queries per minute, valid replies, and the filter's pass rate of each
   (dense or BM25 top-10 over the `--docs` abstracts, the pipeline's filter_pairs).
Writes benchmarks/results/speed.json (with --skip-encoder: section 3 only, to speed-llm.json; with another
--seed or a subset of --paths, to speed-llm-seed<N>.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"

from retable.encoder.frozen import Encoder  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.metrics import evaluate, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402


def encoding(encoders: dict, texts: list[str]) -> dict:
    for enc in encoders.values():
        enc.encode(texts[:32])  # warm-up: the onnx export (first use) and lazy imports are not timed
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    vectors = {}
    for _ in range(2):
        for name, enc in encoders.items():
            start = time.perf_counter()
            vectors[name] = enc.encode(texts)
            seconds[name].append(time.perf_counter() - start)
    cos = (vectors["torch"] * vectors["onnx-int8"]).sum(1)
    docs_s = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    return {"docs": len(texts), "docs_per_s": docs_s, "speedup": docs_s["onnx-int8"] / docs_s["torch"],
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "seconds": seconds}


def frozen_flat(encoders: dict, name: str) -> dict:
    corpus, queries, qrels = load_beir(DATASETS / name, log=lambda m: None)
    qids = sorted(queries)
    out = {}
    for variant, enc in encoders.items():
        items = enc.encode([it.encode_text() for it in corpus], progress=True)
        q = enc.encode([queries[i] for i in qids])
        scores, rows = exact_search(items, q, 100)
        out[variant] = 100 * evaluate(qrels, to_run(qids, [it.id for it in corpus], scores, rows))["ndcg@10"]
    out["difference"] = out["onnx-int8"] - out["torch"]
    return out


BRIEF = {"subtopics": ["biomedical findings"], "item_kinds": ["abstract"],
         "personas": [{"name": "researcher", "intent": "the evidence for a claim"}, {"name": "clinician", "intent": "what a study found"}]}
# (label, llm_parallel (None: --parallel), llm_weights); the first is the embedded path as it was before batching and re-encoding
LLM_VARIANTS = (("sequential-shipped", 1, "shipped"), ("sequential", 1, "fast"), ("batched", None, "fast"))


def llm_variant(n_items: int, parallel: int, weights: str, corpus_docs: int, seed: int = 7) -> dict:
    """One embedded-LLM path writing queries through the queries stage's own prompt and client (no cache).
    Each runs in a fresh process, as a user's run would: llama.cpp's OpenMP threads left by one path slow
    the next one in the same process (by 10-30% in scratch runs of 24 items)."""
    from retable.agent.queries import write_queries
    from retable.llm import LLMClient
    from retable.llm.embedded import EmbeddedLLM
    from retable.prompts import Prompts
    from retable.records import DomainBrief

    corpus, _, _ = load_beir(DATASETS / "scifact", log=lambda m: None)
    llm = EmbeddedLLM(parallel=parallel, weights=weights)
    llm._load()  # the model's load (and the weights' one-time re-encoding) is not timed
    client = LLMClient(llm, None, temperature=0.7, max_tokens=384, max_retries=2, concurrency=parallel)
    start = time.perf_counter()
    queries = write_queries(client, Prompts(), corpus[:corpus_docs], DomainBrief.model_validate(BRIEF), ["keyword", "question", "claim"], n_items,
                            seed=seed, desc=f"parallel {parallel}")
    seconds = time.perf_counter() - start
    calls = client.usage.total()
    return {"parallel": parallel, "weights": weights, "seconds": seconds, "items": n_items, "queries": [q.model_dump() for q in queries],
            "invalid_calls": calls.invalid, "llm_calls": calls.calls, "completion_tokens": calls.completion_tokens}


def llm_throughput(n_items: int, parallel: int, corpus_docs: int, encoder, seed: int = 7, paths: tuple[str, ...] = ()) -> dict:
    import multiprocessing

    from retable.agent.filter import filter_pairs
    from retable.records import Query

    corpus, _, _ = load_beir(DATASETS / "scifact", log=lambda m: None)
    corpus = corpus[:corpus_docs]
    item_emb = encoder.encode([it.encode_text() for it in corpus])
    out = {}
    spawn = multiprocessing.get_context("spawn")
    for label, n, weights in LLM_VARIANTS:
        if paths and label not in paths:
            continue
        with spawn.Pool(1) as pool:
            r = pool.apply(llm_variant, (n_items, n or parallel, weights, corpus_docs, seed))
        queries = [Query.model_validate(q) for q in r.pop("queries")]
        kept, _ = filter_pairs(queries, corpus, item_emb, encoder.encode([q.text for q in queries]), 10)
        out[label] = {**r, "items_per_min": 60 * n_items / r["seconds"], "queries": len(queries), "queries_per_min": 60 * len(queries) / r["seconds"],
                      "pass_rate": len(kept) / max(1, len(queries))}
    if {"batched", "sequential"} <= out.keys():
        out["speedup"] = out["batched"]["queries_per_min"] / out["sequential"]["queries_per_min"]  # batching alone, same weights
    if {"batched", "sequential-shipped"} <= out.keys():
        out["speedup_vs_shipped"] = out["batched"]["queries_per_min"] / out["sequential-shipped"]["queries_per_min"]  # against the path before both
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus", "cisi", "npl"])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--llm-items", type=int, default=96)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--skip-encoder", action="store_true", help="only the embedded LLM (written to results/speed-llm.json)")
    ap.add_argument("--seed", type=int, default=7, help="the queries stage's seed (which items, and every draw); another seed writes "
                                                        "speed-llm-seed<N>.json")
    ap.add_argument("--paths", nargs="*", default=[], choices=[v[0] for v in LLM_VARIANTS], help="only these LLM paths (default: all)")
    args = ap.parse_args()
    encoders = {"torch": Encoder("all-MiniLM-L6-v2", backend="torch"), "onnx-int8": Encoder("all-MiniLM-L6-v2")}
    result = {} if args.skip_encoder else encoder_section(encoders, args)
    if not args.skip_llm:
        result.update(llm_section(encoders["onnx-int8"], args))
    name = "speed.json" if not args.skip_encoder else "speed-llm.json" if args.seed == 7 and not args.paths else f"speed-llm-seed{args.seed}.json"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def encoder_section(encoders: dict, args) -> dict:
    corpus, _, _ = load_beir(DATASETS / "scifact", log=lambda m: None)
    result = {"encoding": encoding(encoders, [it.encode_text() for it in corpus[: args.docs]])}
    e = result["encoding"]
    print(f"encoding {e['docs']} SciFact abstracts: torch {e['docs_per_s']['torch']:.1f} docs/s, onnx-int8 {e['docs_per_s']['onnx-int8']:.1f} docs/s "
          f"({e['speedup']:.2f}x); cosine mean {e['cosine_mean']:.4f}, lowest {e['cosine_min']:.4f}", flush=True)
    result["frozen_flat"] = {}
    print("\n| nDCG@10 x100 frozen_flat | torch | onnx-int8 | difference |\n|---|---|---|---|")
    for name in args.datasets:
        r = result["frozen_flat"][name] = frozen_flat(encoders, name)
        print(f"| {name} | {r['torch']:.2f} | {r['onnx-int8']:.2f} | {r['difference']:+.2f} |", flush=True)
    return result


def llm_section(encoder, args) -> dict:
    result = {}
    r = result["llm"] = llm_throughput(args.llm_items, args.parallel, args.docs, encoder, args.seed, tuple(args.paths))
    print("\n| embedded LLM | parallel | weights | seconds | queries/min | invalid calls | completion tokens | filter pass rate |\n"
          "|---|---|---|---|---|---|---|---|")
    for label in (v[0] for v in LLM_VARIANTS if v[0] in r):
        x = r[label]
        print(f"| {label} | {x['parallel']} | {x['weights']} | {x['seconds']:.0f} | {x['queries_per_min']:.1f} | {x['invalid_calls']} | "
              f"{x['completion_tokens']} | {x['pass_rate']:.2f} |")
    for key, what in (("speedup", "batched / sequential (same weights)"), ("speedup_vs_shipped", "batched / sequential-shipped")):
        if key in r:
            print(f"{what}: {r[key]:.2f}x queries per minute")
    return result


if __name__ == "__main__":
    main()
