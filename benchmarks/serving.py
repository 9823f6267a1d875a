"""Serving paths: nDCG@10 of every way the adapter reaches users against retable's own search, and
queries/s of the in-memory path against the LanceDB path.

1. quality: for each collection, a copy of its finished corpus-mode run (runs/quality-<name>-<tag>, from
   adapt_quality.py --tag <tag>) is indexed again over its own corpus with `retable index --keep-codes`
   (the same quantizer and tuned table; the items re-encoded by today's encoder path, as a fresh run would
   store them). Then the collection's real queries through: retable's search (dense, hybrid), the
   sentence-transformers export (SentenceTransformer.encode, inner products), LangChain's
   InMemoryVectorStore with RetableEmbeddings, LlamaIndex's VectorStoreIndex with RetableEmbedding, the
   RetableRetriever (hybrid), and the LanceDB path (dense, hybrid). Each path embeds the corpus itself.
2. speed: the SciFact adapter's items tiled to 10k and 100k (ids and texts suffixed, vectors repeated:
   search cost depends on the count, not on where the vectors came from); one query at a time (encoding
   included), dense and hybrid, in memory and from LanceDB, alternated in one process, median of 3 rounds.

    .venv/bin/python benchmarks/serving.py scifact nfcorpus cisi npl [--tag peak] [--sizes 10000 100000]

Writes benchmarks/results/serving.json and prints a table per part.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.serving.load import load_adapter  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.metrics import evaluate  # noqa: E402

K = 10
QUIET = lambda m: None  # noqa: E731


def _ndcg(qrels, ranked: dict[str, list[tuple[str, float]]]) -> float:
    run = {q: {i: float(len(hits) - r) for r, (i, _) in enumerate(hits)} for q, hits in ranked.items()}  # rank order, ties kept as ranked
    return round(100 * evaluate(qrels, run)["ndcg@10"], 2)


def _top(vecs: np.ndarray, ids: list[str], q: np.ndarray) -> list[tuple[str, float]]:
    scores = vecs @ q
    rows = np.argsort(-scores, kind="stable")[:K]
    return [(ids[r], float(scores[r])) for r in rows]


def quality(name: str, tag: str, work: Path) -> dict:
    from langchain_core.vectorstores import InMemoryVectorStore
    from llama_index.core import Document, Settings, VectorStoreIndex
    from sentence_transformers import SentenceTransformer

    from retable.commands.index import index_run
    from retable.serving.export import export
    from retable.serving.langchain import RetableEmbeddings, RetableRetriever
    from retable.serving.llamaindex import RetableEmbedding

    data, source = DATASETS / name, ROOT / "runs" / f"quality-{name}-{tag}"
    run = work / f"serving-{name}"
    if not (run / "indexed" / "adapter" / "adapter.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(source, run, ignore=shutil.ignore_patterns("eval_cache", "indexed", "*.lock"))
        t = time.perf_counter()
        index_run(run, data / "corpus.jsonl", keep_codes=True, log=QUIET)
        print(f"{name}: indexed again in {time.perf_counter() - t:.0f} s", flush=True)
    items, queries, qrels = load_beir(data, log=QUIET)
    qids = [q for q in queries if q in qrels]
    native = load_adapter(run)
    texts = native.texts(native.ids)
    seconds, ranked = {}, {}

    def timed(path, fn):
        t = time.perf_counter()
        ranked[path] = fn()
        seconds[path] = round(time.perf_counter() - t, 1)
        print(f"  {name} {path}: {_ndcg(qrels, ranked[path])} ({seconds[path]} s)", flush=True)

    timed("retable dense", lambda: {q: native.search(queries[q], K, hybrid=False) for q in qids})
    timed("retable hybrid", lambda: {q: native.search(queries[q], K) for q in qids})

    def st_path():
        model = SentenceTransformer(str(export(run, "sentence-transformers", work / f"st-{name}", log=QUIET)), device="cpu", trust_remote_code=True)
        vecs, qv = model.encode(texts, batch_size=32), model.encode([queries[q] for q in qids])
        return {q: _top(vecs, native.ids, v) for q, v in zip(qids, qv)}

    def langchain_path():
        store = InMemoryVectorStore(RetableEmbeddings(str(run)))
        store.add_texts(texts, ids=native.ids)
        return {q: [(d.id, s) for d, s in store.similarity_search_with_score(queries[q], k=K)] for q in qids}

    def llamaindex_path():
        Settings.llm = None
        index = VectorStoreIndex.from_documents([Document(text=t, id_=i) for i, t in zip(native.ids, texts)], embed_model=RetableEmbedding(str(run)))
        retriever = index.as_retriever(similarity_top_k=K)
        return {q: [(n.node.ref_doc_id, n.score) for n in retriever.retrieve(queries[q])] for q in qids}

    def retriever_path():
        retriever = RetableRetriever(path=str(run), k=K)
        return {q: [(d.id, d.metadata["score"]) for d in retriever.invoke(queries[q])] for q in qids}

    db = export(run, "lancedb", work / f"db-{name}", log=QUIET)
    on_disk = load_adapter(run, db=db)
    timed("sentence-transformers export", st_path)
    timed("LangChain InMemoryVectorStore", langchain_path)
    timed("LlamaIndex VectorStoreIndex", llamaindex_path)
    timed("LangChain RetableRetriever (hybrid)", retriever_path)
    timed("LanceDB dense", lambda: {q: on_disk.search(queries[q], K, hybrid=False) for q in qids})
    timed("LanceDB hybrid", lambda: {q: on_disk.search(queries[q], K) for q in qids})
    reference = {path: ("retable hybrid" if "hybrid" in path else "retable dense") for path in ranked}
    same = {path: round(float(np.mean([[i for i, _ in ranked[path][q]] == [i for i, _ in ranked[reference[path]][q]] for q in qids])),
                        4) for path in ranked}
    return {"queries": len(qids), "items": len(native.ids), "ndcg@10": {p: _ndcg(qrels, r) for p, r in ranked.items()},
            "same_top10_as_native": same, "seconds": seconds}


def _tiled(run: Path, n: int, work: Path) -> Path:
    """An adapter folder of `n` items: the run's shipped adapter's items repeated (ids and texts suffixed)."""
    from retable.adapters.artifact import Adapter
    from retable.files import write_json
    from retable.runfiles import (ADAPTER_CODES, ADAPTER_IDS, ADAPTER_ITEM_EMB, ADAPTER_LEXICAL, ADAPTER_META, ADAPTER_QUANTIZER, ADAPTER_TABLE,
                                  RunFolder)
    from retable.retrieval.lexical import Lexical

    folder = work / f"tiled-{n}"
    if (folder / ADAPTER_META).is_file():
        return folder
    src = RunFolder(run).shipped_adapter()
    base = Adapter(src)
    texts = load_adapter(run).texts(base.item_ids)
    reps = -(-n // len(base.item_ids))
    folder.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_QUANTIZER, ADAPTER_TABLE):
        shutil.copy2(src / name, folder / name)
    np.save(folder / ADAPTER_CODES, np.tile(np.load(src / ADAPTER_CODES), (reps, 1))[:n])
    np.save(folder / ADAPTER_ITEM_EMB, np.tile(np.load(src / ADAPTER_ITEM_EMB), (reps, 1))[:n])
    write_json(folder / ADAPTER_IDS, [f"{i}~{r}" for r in range(reps) for i in base.item_ids][:n])
    Lexical.build([f"{t} copy{r}" for r in range(reps) for t in texts][:n]).save(folder / ADAPTER_LEXICAL)
    write_json(folder / ADAPTER_META, {**base.meta, "n_items": n})
    return folder


def speed(sizes: list[int], work: Path, tag: str, n_queries: int = 100, rounds: int = 3) -> dict:
    from retable.evals.beir import load_queries
    from retable.serving.export import write_db

    run = ROOT / "runs" / f"quality-scifact-{tag}"
    queries = list(load_queries(DATASETS / "scifact" / "queries.jsonl").values())[:n_queries]
    out = {}
    for n in sizes:
        folder = _tiled(run, n, work)
        memory = load_adapter(folder)
        t = time.perf_counter()
        write_db(folder, work / f"db-tiled-{n}", log=QUIET)
        write_s = time.perf_counter() - t
        disk = load_adapter(folder, db=work / f"db-tiled-{n}")
        row, rates = {"write_db_s": round(write_s, 1)}, {}
        modes = [(f"{label} {'hybrid' if hybrid else 'dense'} q/s", index, hybrid) for label,
                 index in (("memory", memory), ("lancedb", disk)) for hybrid in (False, True)]
        for _, index, hybrid in modes:
            index.search(queries[0], K, hybrid=hybrid)  # first search builds what it builds
        for _ in range(rounds):  # the modes alternate, rounds apart: this machine is shared and noisy
            for label, index, hybrid in modes:
                t = time.perf_counter()
                for q in queries:
                    index.search(q, K, hybrid=hybrid)
                rates.setdefault(label, []).append(len(queries) / (time.perf_counter() - t))
        row.update({label: round(float(np.median(r)), 1) for label, r in rates.items()})
        out[str(n)] = row
        print(f"{n:>7} items: {row}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collections", nargs="*", default=["scifact", "nfcorpus", "cisi", "npl"])
    parser.add_argument("--tag", default="peak", help="the adapt_quality.py runs to serve (runs/quality-<name>-<tag>)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--parts", nargs="*", default=["quality", "speed"], choices=["quality", "speed"])
    args = parser.parse_args()
    work = ROOT / "runs" / "serving"
    work.mkdir(parents=True, exist_ok=True)
    path = ROOT / "benchmarks" / "results" / "serving.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if "quality" in args.parts:
        results.setdefault("quality", {})
        for name in args.collections:
            results["quality"][name] = quality(name, args.tag, work)
            path.write_text(json.dumps(results, indent=2) + "\n")
        paths = list(next(iter(results["quality"].values()))["ndcg@10"])
        print(f"\n{'path':<38}" + "".join(f"{n:>10}" for n in results["quality"]))
        for p in paths:
            print(f"{p:<38}" + "".join(f"{r['ndcg@10'][p]:>10.2f}" for r in results["quality"].values()))
    if "speed" in args.parts:
        results["speed"] = speed(args.sizes, work, args.tag)
        path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
