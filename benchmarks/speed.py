"""Encoder and embedded-LLM throughput, each pair of paths side by side in one run.

    .venv/bin/python benchmarks/speed.py scifact nfcorpus cisi npl [--docs 1000] [--llm-items 48] [--parallel 8]

1. Encoding: docs/s of the torch path and the default onnx-int8 path on the first `--docs` SciFact abstracts
   (alternating torch, onnx, torch, onnx: the median of two each), and the mean / lowest cosine between their vectors.
2. frozen_flat nDCG@10 of each path on each named collection (queries and corpus encoded by that path).
3. The embedded LLM (SmolLM2-135M) writing queries for `--llm-items` SciFact items through the queries stage's
   own prompt and client (no cache): sequential (llm_parallel=1) vs batched (llm_parallel=`--parallel`);
   queries per minute, valid replies, and the filter's pass rate of each (dense or BM25 top-10 over the
   `--docs` abstracts, the pipeline's filter_pairs).
Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"

from retable.adapters.encoder import Encoder  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.evals.metrics import evaluate, search, to_run  # noqa: E402


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
        scores, rows = search(items, q, 100)
        out[variant] = 100 * evaluate(qrels, to_run(qids, [it.id for it in corpus], scores, rows))["ndcg@10"]
    out["difference"] = out["onnx-int8"] - out["torch"]
    return out


def llm_throughput(n_items: int, parallel: int, corpus_docs: int, encoder) -> dict:
    from retable.agent.filter import filter_pairs
    from retable.agent.queries import write_queries
    from retable.llm import LLMClient
    from retable.llm.embedded import EmbeddedLLM
    from retable.prompts import Prompts
    from retable.records import DomainBrief, Persona

    corpus, _, _ = load_beir(DATASETS / "scifact", log=lambda m: None)
    corpus = corpus[:corpus_docs]
    brief = DomainBrief(subtopics=["biomedical findings"], item_kinds=["abstract"],
                        personas=[Persona(name="researcher", intent="the evidence for a claim"), Persona(name="clinician", intent="what a study found")])
    formats = ["keyword", "question", "claim"]
    item_emb = encoder.encode([it.encode_text() for it in corpus])
    out = {}
    for label, n in (("sequential", 1), ("batched", parallel)):
        llm = EmbeddedLLM(parallel=n)
        llm._load()  # the model's load is not timed
        client = LLMClient(llm, None, temperature=0.7, max_tokens=384, max_retries=2, concurrency=n)
        start = time.perf_counter()
        queries = write_queries(client, Prompts(), corpus, brief, formats, n_items, seed=7, desc=label)
        seconds = time.perf_counter() - start
        kept, _ = filter_pairs(queries, corpus, item_emb, encoder.encode([q.text for q in queries]), 10)
        calls = client.usage.total()
        out[label] = {"parallel": n, "seconds": seconds, "items": n_items, "items_per_min": 60 * n_items / seconds, "queries": len(queries),
                      "queries_per_min": 60 * len(queries) / seconds, "invalid_calls": calls.invalid, "llm_calls": calls.calls,
                      "completion_tokens": calls.completion_tokens, "pass_rate": len(kept) / max(1, len(queries))}
    out["speedup"] = out["batched"]["queries_per_min"] / out["sequential"]["queries_per_min"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus", "cisi", "npl"])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--llm-items", type=int, default=48)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--skip-llm", action="store_true")
    args = ap.parse_args()
    encoders = {"torch": Encoder("all-MiniLM-L6-v2", backend="torch"), "onnx-int8": Encoder("all-MiniLM-L6-v2")}
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
    if not args.skip_llm:
        r = result["llm"] = llm_throughput(args.llm_items, args.parallel, args.docs, encoders["onnx-int8"])
        print("\n| embedded LLM | parallel | seconds | queries/min | invalid calls | completion tokens | filter pass rate |\n|---|---|---|---|---|---|---|")
        for label in ("sequential", "batched"):
            x = r[label]
            print(f"| {label} | {x['parallel']} | {x['seconds']:.0f} | {x['queries_per_min']:.1f} | {x['invalid_calls']} | {x['completion_tokens']} | {x['pass_rate']:.2f} |")
        print(f"batched / sequential: {r['speedup']:.2f}x queries per minute")
    out = ROOT / "benchmarks" / "results" / "speed.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
