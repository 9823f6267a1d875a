"""A teacher that reads every part of each item (issue 26, item 3): the frozen encoder's cosine with an
item's whole text (one vector, cut at the encoder's limit) averaged with its best cosine over the item's
windows of WINDOW words (every STRIDE words, the title before each). On finished adapt_quality run folders
(runs/quality-<name><tag>), whose items are the whole collection:

1. Is it stronger than the student? That ranking on the collection's real queries, alone and fused with
   BM25 by the run's rule, beside the frozen encoder's one vector per item.
2. The run's table retrained (same splits and settings) on its training queries labelled by it — fused
   with BM25 by the run's rule (as the shipped teacher fuses the one vector), or alone — beside the shipped
   labels retrained, each measured on the real queries alone and fused as search serves it.

Window vectors are cached under runs/teacher-cache/.

    .venv/bin/python benchmarks/chunk_teacher.py cisi nfcorpus scifact npl --tag=-peak

writes benchmarks/results/chunk_teacher<tag>.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ablation import RetrainSetup, retrain_parser  # noqa: E402
from corpus_mode import DATASETS, ROOT  # noqa: E402
from teacher_ablation import cached_encode, ndcg  # noqa: E402

from retable.adapters.teaching import tune_on_labels  # noqa: E402
from retable.records import Item  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.retrieval.fusion import Candidates  # noqa: E402
from retable.retrieval.lexical import Lexical  # noqa: E402
from retable.runfiles import Labels  # noqa: E402

WINDOW, STRIDE = 64, 48
BATCH = 256


def windows(item: Item) -> list[str]:
    """The item's body cut into windows of WINDOW words every STRIDE words, the title before each."""
    words, head = item.text.split(), f"{item.title}. " if item.title else ""
    out = []
    for start in range(0, max(1, len(words)), STRIDE):
        out.append(head + " ".join(words[start:start + WINDOW]))
        if start + WINDOW >= len(words):
            break
    return out


class WindowScorer:
    """Per (query, item): (cosine with the item's one vector + its best cosine over the item's windows) / 2."""

    def __init__(self, item_emb: np.ndarray, win_emb: np.ndarray, owner: np.ndarray):
        self.item_emb, self.win_emb = item_emb, win_emb
        order = np.argsort(owner, kind="stable")
        self.order, self.bounds = order, np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1]])

    def matrix(self, q: np.ndarray) -> np.ndarray:
        best = np.maximum.reduceat((q @ self.win_emb.T)[:, self.order], self.bounds, axis=1)
        return (q @ self.item_emb.T + best) / 2

    def ranked(self, q: np.ndarray, k: int, lexical_top=None, fusion=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the best k: by this score alone, or fused with BM25's top k by `fusion`."""
        scores, rows = [], []
        for lo in range(0, len(q), BATCH):
            m = self.matrix(q[lo:lo + BATCH])
            top = np.argsort(-m, axis=1)[:, :k]
            got = (np.take_along_axis(m, top, axis=1), top)
            if fusion is not None:  # the scores enter as vectors: the items' rows of m.T against one-hot queries
                lex = tuple(x[lo:lo + BATCH] for x in lexical_top)
                got = fusion.ranked(Candidates.build(got, lex, np.ascontiguousarray(m.T), np.eye(len(m), dtype=np.float32)), k)
            scores.append(got[0])
            rows.append(got[1])
        return np.vstack(scores).astype(np.float32), np.vstack(rows)


def window_vectors(encoder, items: list[Item], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(every item's window vectors, the item row each belongs to), encoded once and cached."""
    texts, owner = [], []
    for i, it in enumerate(items):
        w = windows(it)
        texts += w
        owner += [i] * len(w)
    return cached_encode(encoder, texts, cache), np.array(owner)


def run_dataset(name: str, tag: str) -> dict:
    from retable.encoder.frozen import Encoder

    s = RetrainSetup.load(ROOT / "runs" / f"quality-{name}{tag}", DATASETS / name)
    config, labels, k, ev = s.config, s.labels, s.config.teacher_candidates, s._eval
    items = s.run.items()
    if [it.id for it in items] != ev["ids"]:
        raise SystemExit(f"{name}: the run's items are not the collection's corpus (corpus mode only)")
    encoder = Encoder(config.encoder, config.encoder_backend)
    cache = ROOT / "runs" / "teacher-cache" / f"{name}{tag}-windows-{WINDOW}-{STRIDE}.npy"
    start = time.perf_counter()
    win_emb, owner = window_vectors(encoder, items, cache)
    label_scorer = WindowScorer(s.item_emb, win_emb, owner)  # the run's own item vectors, as its teacher used
    real_scorer = WindowScorer(ev["emb"], s.quantizer.rotate(win_emb), owner)  # the evaluation's (rotated alike)
    out: dict = {"windows": len(real_scorer.win_emb), "items": len(items), "seconds_windows": round(time.perf_counter() - start, 1)}

    flat = exact_search(ev["emb"], ev["q"], 100)
    win = real_scorer.ranked(ev["q"], 100)
    out["references"] = {"bm25": ndcg(s, ev["lexical"]), "frozen_flat": ndcg(s, flat),
                         "frozen_hybrid": ndcg(s, s.fusion.ranked(Candidates.build(flat, ev["lexical"], ev["emb"], ev["q"]), 100)),
                         "windows_flat": ndcg(s, win), "windows_hybrid": ndcg(s, real_scorer.ranked(ev["q"], 100, ev["lexical"], s.fusion))}
    print(name, json.dumps(out), flush=True)

    texts = {p.query_id: p.query for p in s.run.kept()} | {q.id: q.text for q in s.run.pseudo_queries()}
    start = time.perf_counter()
    lex_top = Lexical.build([it.encode_text() for it in items]).top([texts[i] for i in labels.query_ids], k)
    fused = label_scorer.ranked(s.label_emb, k, lex_top, s.fusion)
    alone = label_scorer.ranked(s.label_emb, k)
    out["seconds_labels"] = round(time.perf_counter() - start, 1)
    variants = {"as shipped (BM25 + one vector)": labels,
                "teacher: BM25 + windows (the run's rule)": Labels(**{**labels.model_dump(), "scores": fused[0], "rows": fused[1]}),
                "teacher: windows alone": Labels(**{**labels.model_dump(), "scores": alone[0], "rows": alone[1]})}
    for vname, lab in variants.items():
        t = tune_on_labels(config, s.quantizer, s.codes, s.item_emb, lab, s.label_emb, s.where, set())
        out[vname] = {**s.measure(t.table), "best_epoch": t.result.best_epoch, "strength": t.result.strength}
        print(name, vname, json.dumps(out[vname]), flush=True)
    return out


def main() -> None:
    args = retrain_parser(__doc__).parse_args()
    out, path = {}, ROOT / "benchmarks" / "results" / f"chunk_teacher{args.tag}.json"
    for name in args.datasets:
        out[name] = run_dataset(name, args.tag)
        path.write_text(json.dumps({"command": " ".join(sys.argv), "window": WINDOW, "stride": STRIDE, "by_dataset": out}, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
