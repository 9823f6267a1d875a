"""Scale: how time and peak memory grow with the corpus, the Ray executor against the local one, LLM
throughput with one endpoint against three, and exact search against IVF-PQ.

1. Corpus mode on cheap synthetic items (random sentences from a small biomedical vocabulary, not LLM
   output), queries from the tests' scripted fake LLM: each size runs `retable adapt`'s pipeline in a
   fresh process; the manifest gives each stage's seconds and the process's peak RSS after it.
2. `--executor ray` (local Ray, 2 CPUs) against `local` on the smallest corpus, generation only:
   the pairs files compared byte for byte.
3. Endpoint fan-out: the same LLM jobs through 1 and through 3 endpoints (concurrency 1 each), once on
   fake servers that take a fixed time per answer (latency-bound, like a remote API), once on real
   llama.cpp servers of SmolLM2 with one thread each (compute-bound, on this machine's cores).
4. Exact search against IVF-PQ on the four BEIR collections of ../shared/datasets in one index: overlap of
   the top 10, nDCG@10 per collection, time per query and index size.

    .venv/bin/python benchmarks/scale.py [--sizes 10000 100000] [--parts scale ray endpoints ann]

Writes benchmarks/results/scale.json and prints a table per part.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))

DESCRIPTION = "Biomedical research abstracts. Users type short scientific claims and want the supporting abstracts."
VOCAB = ("protein gene cell trial cohort patient dose effect risk diet sleep brain heart blood vaccine virus tumour therapy enzyme "
         "receptor insulin liver kidney lung infection antibody inflammation mutation pathway placebo outcome mortality exposure "
         "biomarker plasma neuron muscle bone skin microbiome metabolism obesity diabetes cancer stroke").split()
STAGES = ("embed_items", "codes", "tune")


def write_corpus(path: Path, n: int, seed: int = 0, words: int = 20) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(VOCAB), size=(n, words))
    with path.open("w") as fh:
        for i, row in enumerate(picks):
            fh.write(json.dumps({"id": f"d{i}", "title": f"{VOCAB[row[0]]} {VOCAB[row[1]]} study {i}",
                                 "text": " ".join(VOCAB[j] for j in row)}) + "\n")


def fake_llm():
    from fakes import Responder

    from retable.llm.fake import FakeLLM

    return FakeLLM(Responder(), pass_seed=True)


CONFIG = dict(max_query_items=400, rounds=1, epochs=10, patience=3, judge_pairs=0)


def child(corpus: Path, out: Path) -> None:
    """One size, in its own process so that peak RSS is this size's alone."""
    from retable.commands.run import run_adapt
    from retable.config import RunConfig

    start = time.perf_counter()
    run_adapt(DESCRIPTION, out, RunConfig(**CONFIG), fake_llm(), corpus=corpus, log=lambda m: print(m, file=sys.stderr))
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    print(json.dumps({"wall_s": time.perf_counter() - start,
                      "stages": {k: {"seconds": v["seconds"], "peak_rss_mb": v.get("peak_rss_mb")} for k, v in stages.items()}}))


def part_scale(sizes: list[int], work: Path) -> dict:
    rows = {}
    for n in sizes:
        corpus = work / f"corpus-{n}.jsonl"
        write_corpus(corpus, n)
        r = subprocess.run([sys.executable, __file__, "--child", str(corpus), str(work / f"run-{n}")], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        rows[n] = json.loads(r.stdout.strip().splitlines()[-1])
        s = rows[n]["stages"]
        print(f"{n:>8,} items: " + "  ".join(f"{k} {s[k]['seconds']:.1f} s / {s[k]['peak_rss_mb']:,.0f} MB" for k in STAGES)
              + f"  (all stages {rows[n]['wall_s']:.0f} s)", flush=True)
    lo, hi = min(sizes), max(sizes)
    ratios = {k: {"time": rows[hi]["stages"][k]["seconds"] / rows[lo]["stages"][k]["seconds"],
                  "peak_rss": rows[hi]["stages"][k]["peak_rss_mb"] / rows[lo]["stages"][k]["peak_rss_mb"]} for k in STAGES}
    print(f"\n{'stage':<12} {'time ' + str(hi // lo) + 'x items':>16} {'peak RSS':>10}")
    for k, r in ratios.items():
        print(f"{k:<12} {r['time']:>15.2f}x {r['peak_rss']:>9.2f}x")
    return {"config": CONFIG, "sizes": rows, "ratios": {"items": hi / lo, **ratios}}


def part_ray(n: int, work: Path) -> dict:
    import numpy as np
    import ray

    from retable.commands.run import run_adapt
    from retable.config import RunConfig

    corpus = work / f"corpus-{n}.jsonl"
    if not corpus.exists():
        write_corpus(corpus, n)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = {}
    for executor in ("local", "ray"):
        start = time.perf_counter()
        path = run_adapt(DESCRIPTION, work / f"gen-{executor}", RunConfig(**CONFIG, executor=executor), fake_llm(), corpus=corpus,
                         log=lambda m: None, generate_only=True)
        stages = json.loads((work / f"gen-{executor}" / "manifest.json").read_text())["stages"]
        out[executor] = {"wall_s": time.perf_counter() - start, "pairs": len(path.read_text().splitlines()),
                         "stage_seconds": {k: v["seconds"] for k, v in stages.items()}}
    ray.shutdown()
    same = {name: filecmp.cmp(work / "gen-local" / name, work / "gen-ray" / name, shallow=False)
            for name in ("generated_pairs.jsonl", "pairs.kept.jsonl", "pairs.dropped.jsonl", "queries.jsonl")}
    dropped = [(work / f"gen-{e}" / "pairs.dropped.jsonl").read_text().splitlines() for e in ("local", "ray")]
    emb_diff = float(np.abs(np.load(work / "gen-local/item_emb.npy") - np.load(work / "gen-ray/item_emb.npy")).max())
    differ = sum(a != b for a, b in zip(*dropped))
    print(f"\nray vs local on {n:,} items: kept pairs {out['local']['pairs']} vs {out['ray']['pairs']}, files identical: {same}; "
          f"{differ} of {len(dropped[0])} dropped pairs record another rank (item vectors differ by at most {emb_diff:.1e}); "
          f"wall {out['local']['wall_s']:.0f} s vs {out['ray']['wall_s']:.0f} s")
    return {"items": n, "identical": same, "dropped_rows_differing": differ, "dropped_rows": len(dropped[0]),
            "max_abs_item_vector_difference": emb_diff, **out}


def _throughput(llm, jobs: int) -> dict:
    from retable.llm import LLMClient
    from retable.prompts import Prompts
    from retable.agent.queries import write_queries
    from retable.records import DomainBrief, Item, Persona

    items = [Item(id=f"d{i}", title=f"study {i}", text=f"This study {i} measured {VOCAB[i % len(VOCAB)]} "
                                                       f"and {VOCAB[(3 * i) % len(VOCAB)]} in adults.")
             for i in range(jobs)]
    brief = DomainBrief(subtopics=["biomedicine"], item_kinds=["abstract"], vocabulary=["trial"],
                        personas=[Persona(name="clinician", intent="find evidence")])
    client = LLMClient(llm, None, temperature=0.7, max_tokens=96, max_retries=0, concurrency=1)
    start = time.perf_counter()
    queries = write_queries(client, Prompts(), items, brief, ["keyword", "question"], jobs, seed=1)
    seconds = time.perf_counter() - start
    u = client.usage.current()
    return {"calls": u.calls, "seconds": seconds, "calls_per_s": u.calls / seconds, "completion_tokens_per_s": u.completion_tokens / seconds,
            "valid_queries": len(queries)}


def part_endpoints(work: Path, jobs: int, latency: float) -> dict:
    from fake_server import FakeOpenAI

    from llama_servers import llama_servers
    from retable.llm.openai_compat import OpenAICompatLLM
    from retable.llm.pool import EndpointPool

    def pool(urls, model):
        return EndpointPool([(OpenAICompatLLM(model, u, "local", timeout=300, max_retries=0), 1) for u in urls])

    out = {}
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        for s in (a, b, c):
            s.delay = latency
        out["fake_latency_bound"] = {str(n): _throughput(pool([a.url, b.url, c.url][:n], "fake"), jobs) for n in (1, 3)}
    with llama_servers(3, work, n_threads=1) as urls:
        out["llama_cpp_smollm2"] = {str(n): _throughput(pool(urls[:n], "smollm2"), jobs) for n in (1, 3)}
    print(f"\n{'endpoints':<22} {'1: calls/s':>11} {'3: calls/s':>11} {'speed-up':>9}")
    for name, r in out.items():
        out[name]["speedup"] = r["3"]["calls_per_s"] / r["1"]["calls_per_s"]
        print(f"{name:<22} {r['1']['calls_per_s']:>11.2f} {r['3']['calls_per_s']:>11.2f} {out[name]['speedup']:>8.2f}x")
    return {"jobs": jobs, "fake_latency_s": latency, "cores": os.cpu_count(), **out}


def _ann_timing(n: int, d: int, queries: int) -> dict:
    """Search time per query, top 10, exact against IVF-PQ at a size above the default threshold."""
    import numpy as np

    from retable.retrieval.dense import build, search

    rng = np.random.default_rng(0)
    items = rng.normal(size=(n, d)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    q = items[rng.choice(n, queries, replace=False)]
    out = {"items": n, "queries": queries}
    for name, threshold in (("flat", n), ("ivf_pq", 0)):
        start = time.perf_counter()
        index = build(items, ann_threshold=threshold)
        out[f"{name}_build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        search(index, items, q, 10)
        out[f"{name}_ms_per_query"] = 1000 * (time.perf_counter() - start) / queries
    return out


def part_ann(datasets: Path, cache: Path) -> dict:
    """Exact search against IVF-PQ on the four collections' corpora in one index (real MiniLM vectors):
    overlap of the top 10 and each collection's nDCG@10 with its own judged queries."""
    import faiss
    import numpy as np

    from retable.encoder.frozen import Encoder
    from retable.evals.beir import load_beir
    from retable.runfiles import RunFolder
    from retable.metrics import evaluate, rows_overlap, to_run
    from retable.files import encode_to_npy
    from retable.retrieval.dense import ANN_NPROBE, RERANK, build, search

    encoder = Encoder("all-MiniLM-L6-v2")
    checksum = encoder.checksum()
    vectors, ids, sets = [], [], {}
    for folder in sorted(d for d in datasets.iterdir() if (d / "corpus.jsonl").is_file()):
        corpus, queries, qrels = load_beir(folder)
        path = RunFolder(cache).corpus_cache(folder / "corpus.jsonl", checksum)
        vectors.append(np.load(path) if path.is_file() else np.asarray(encode_to_npy(encoder, [it.encode_text() for it in corpus], path)))
        ids += [f"{folder.name}/{it.id}" for it in corpus]
        qids = sorted(queries)
        sets[folder.name] = (qids, encoder.encode([queries[q] for q in qids]),
                             {q: {f"{folder.name}/{d}": r for d, r in qrels[q].items()} for q in qids})
    items = np.vstack(vectors)
    indexes, out = {}, {"items": len(items), "datasets": {}}
    for name, threshold in (("flat", len(items)), ("ivf_pq", 0)):
        start = time.perf_counter()
        indexes[name] = build(items, ann_threshold=threshold)
        out[f"{name}_build_s"] = time.perf_counter() - start
        out[f"{name}_bytes"] = int(faiss.serialize_index(indexes[name]).size)
    all_q = np.vstack([q for _, q, _ in sets.values()])
    found = {}
    for name, index in indexes.items():
        start = time.perf_counter()
        found[name] = search(index, items, all_q, 100)
        out[f"{name}_ms_per_query"] = 1000 * (time.perf_counter() - start) / len(all_q)
    ivf = indexes["ivf_pq"]
    out["overlap_at_10_by_nprobe"] = {}
    for nprobe in (32, 64, 128):  # top 10 searched directly, candidates re-scored
        ivf.nprobe = nprobe
        rows = search(ivf, items, all_q, 10)[1]
        out["overlap_at_10_by_nprobe"][nprobe] = rows_overlap(rows, found["flat"][1])
    ivf.nprobe = ANN_NPROBE
    _, raw = ivf.search(all_q, 10)
    out["ivf_pq_without_rescoring_overlap_at_10"] = rows_overlap(raw, found["flat"][1])
    out["rerank_factor"] = RERANK
    out["ivf_pq_overlap_at_10"] = rows_overlap(found["flat"][1], found["ivf_pq"][1])
    start = 0
    for name, (qids, q, judged) in sets.items():
        rows = slice(start, start + len(qids))
        start += len(qids)
        out["datasets"][name] = {system: evaluate(judged, to_run(qids, ids, f[0][rows], f[1][rows]))["ndcg@10"] for system, f in found.items()}
    print(f"\n{out['items']:,} items (four collections in one index): IVF-PQ, candidates re-scored, keeps {out['ivf_pq_overlap_at_10']:.1%} "
          f"of the exact top 10 ({out['ivf_pq_without_rescoring_overlap_at_10']:.1%} without re-scoring); "
          f"{out['flat_ms_per_query']:.2f} vs {out['ivf_pq_ms_per_query']:.2f} ms a query; index {out['flat_bytes'] / 1e6:.1f} vs "
          f"{out['ivf_pq_bytes'] / 1e6:.1f} MB")
    print("overlap with the exact top 10 by lists probed: " + ", ".join(f"{n} {v:.1%}" for n, v in out["overlap_at_10_by_nprobe"].items()))
    out["timing_at_threshold"] = _ann_timing(300_000, items.shape[1], queries=1000)
    t = out["timing_at_threshold"]
    print(f"{t['items']:,} random vectors (timing only): exact {t['flat_ms_per_query']:.2f} vs IVF-PQ {t['ivf_pq_ms_per_query']:.2f} ms a query (top "
          f"10), IVF-PQ built in {t['ivf_pq_build_s']:.0f} s")
    print(f"{'collection':<10} {'exact nDCG@10':>14} {'IVF-PQ':>8}")
    for name, r in out["datasets"].items():
        print(f"{name:<10} {r['flat']:>14.4f} {r['ivf_pq']:>8.4f}")
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return child(Path(sys.argv[2]), Path(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--parts", nargs="+", default=["scale", "ray", "endpoints", "ann"], choices=["scale", "ray", "endpoints", "ann"])
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets", help="BEIR folders for the ann part")
    ap.add_argument("--jobs", type=int, default=24, help="LLM jobs per endpoint measurement")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds a fake server takes per answer")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    command = " ".join([".venv/bin/python benchmarks/scale.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="retable-scale-") as tmp:
        work = Path(tmp)
        if "scale" in args.parts:
            results["scale"] = {**part_scale(args.sizes, work), "command": command}
        if "ray" in args.parts:
            results["ray"] = {**part_ray(min(args.sizes), work), "command": command}
        if "endpoints" in args.parts:
            results["endpoints"] = {**part_endpoints(work, args.jobs, args.latency), "command": command}
        if "ann" in args.parts:  # corpus vectors are cached under runs/ (gitignored) for reruns
            results["ann"] = {**part_ann(args.datasets, ROOT / "runs" / "ann-cache"), "command": command}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
