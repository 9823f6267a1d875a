"""What each training-signal source and the teacher add: the run's table retrained (same splits and
settings) without one source, or with another teacher, and measured on the collection's real queries
(the table alone, and fused with BM25 by the run's rule: what search serves). Used by adapt_quality.py
--ablation; `RetrainSetup` is shared with tune_probes.py. Alone, on finished adapt_quality run folders:

    .venv/bin/python benchmarks/ablation.py scifact nfcorpus cisi npl --tag=-peak --variants "teacher: BM25 share 0.5"

writes benchmarks/results/ablation<tag>.json (--out names another file). The table trained only on the
queries whose item BM25 misses (its partner in the hybrid):

    .venv/bin/python benchmarks/ablation.py cisi nfcorpus scifact npl --tag=-peak --out ablation-bm25-misses \
        --variants "as shipped" "only queries BM25 does not rank first" "only queries BM25 does not rank in its top 3"
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retable.adapters.quantizer import Quantizer
from retable.adapters.split import split_by_item
from retable.adapters.stages import label_embeddings
from retable.adapters.teaching import item_splits, tune_on_labels
from retable.config import PSEUDO_FORMATS, RunConfig
from retable.evals.beir import load_beir
from retable.metrics import evaluate, to_run
from retable.retrieval.dense import exact_search
from retable.files import read_cached_npy, write_npy
from retable.runfiles import QUANTIZER, Labels, RunFolder
from retable.retrieval.fusion import Candidates
from retable.retrieval.lexical import Lexical


@dataclass
class RetrainSetup:
    """A finished run's training inputs, and the collection's real queries to measure a retrained table on."""

    run: RunFolder
    config: RunConfig
    labels: Labels
    label_emb: np.ndarray
    quantizer: Quantizer
    item_emb: np.ndarray
    codes: np.ndarray
    where: np.ndarray  # each item row's split
    fusion: object  # the run's Fusion (retrieval/fusion.py): also what search serves
    _eval: dict

    @classmethod
    def load(cls, run_dir: Path, data: Path) -> "RetrainSetup":
        from retable.encoder.frozen import Encoder

        run = RunFolder(run_dir)
        config = RunConfig(**run.config_json())
        items, labels = run.items(), run.teacher_labels()
        quantizer = Quantizer.load(run.path(QUANTIZER))
        where = item_splits([it.id for it in items], split_by_item(run.kept(), config.val_fraction, config.test_fraction, config.seed),
                            config.val_fraction, config.seed)
        corpus, queries, qrels = load_beir(data, log=lambda m: None)
        encoder = Encoder(config.encoder, config.encoder_backend)
        cache = run.corpus_cache(data / "corpus.jsonl", encoder.identity())
        emb = read_cached_npy(cache, len(corpus))
        if emb is None:  # a run made before the encoder's vectors changed (VECTORS_VERSION): encoded once more
            emb = encoder.encode([it.encode_text() for it in corpus], progress=True)
            write_npy(cache, emb)
        qids, ids = sorted(queries), [it.id for it in corpus]
        q_emb = encoder.encode([queries[i] for i in qids])
        row = {it.id: i for i, it in enumerate(items)}
        ev = {"qids": qids, "ids": ids, "judged": {i: qrels[i] for i in qids},
              "lexical": Lexical.build([it.encode_text() for it in corpus]).top([queries[i] for i in qids], 100),
              "codes": quantizer.codes(emb), "emb": quantizer.rotate(emb), "q": quantizer.rotate(q_emb), "qcodes": quantizer.codes(q_emb),
              "item_rows": np.array([row.get(i, len(items)) for i in ids])}  # the run's items keep their collision residuals
        return cls(run, config, labels, label_embeddings(run, labels.query_ids), quantizer, run.item_emb(), run.codes(), where,
                   run.teacher().fusion(), ev)

    def measure(self, table) -> dict[str, float]:
        """nDCG@10 ×100 of the table alone and fused with BM25 by the run's rule, on the real queries."""
        ev = self._eval
        vecs, qv = table.item_vectors(ev["codes"], ev["emb"], ev["item_rows"]), table.query_vectors(ev["q"], ev["qcodes"])
        dense = exact_search(vecs, qv, 100)
        hybrid = self.fusion.ranked(Candidates.build(dense, ev["lexical"], vecs, qv), 100)
        return {"adapted": round(evaluate(ev["judged"], to_run(ev["qids"], ev["ids"], *dense))["ndcg@10"] * 100, 2),
                "adapted_hybrid": round(evaluate(ev["judged"], to_run(ev["qids"], ev["ids"], *hybrid))["ndcg@10"] * 100, 2)}


def retrain_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line the benchmarks that retrain finished runs' tables share: the collections and the run folders' suffix."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="names under ../shared/datasets with a finished runs/quality-<name><tag>")
    parser.add_argument("--tag", default="", help="the run folders' suffix: runs/quality-<name><tag>")
    return parser


def _variants(config: RunConfig) -> dict[str, tuple[set[str], float | None]]:
    """name -> (formats left out, teacher weight; None: the run's)."""
    out = {"without LLM queries": (set(config.query_formats), None), "without pseudo-queries": (set(PSEUDO_FORMATS), None)}
    out |= {f"without {f}": ({f}, None) for f in PSEUDO_FORMATS}
    out |= {"teacher: frozen encoder alone": (set(), 0.0), "teacher: BM25 alone": (set(), 1.0)}
    out |= {f"teacher: BM25 share {w}": (set(), w) for w in (0.3, 0.5)}
    return {"as shipped": (set(), None), **out}


BM25_MISSES = {"only queries BM25 does not rank first": 1, "only queries BM25 does not rank in its top 3": 3}


def subset(labels: Labels, idx: np.ndarray) -> Labels:
    """The labelled queries at `idx`."""
    return Labels(query_ids=labels.query_ids[idx], formats=labels.formats[idx], pos=labels.pos[idx], rows=labels.rows[idx], scores=labels.scores[idx])


def bm25_misses(lexical: Lexical, texts: list[str], pos: np.ndarray, depth: int) -> np.ndarray:
    """Per labelled query: True when BM25 does not rank its own item within `depth`."""
    rows = lexical.top(texts, depth)[1]
    return ~(rows == pos[:, None]).any(axis=1)


def ablate(run_dir: Path, data: Path, variants: list[str] | None = None) -> dict[str, dict]:
    from retable.teacher.stages import candidates

    s = RetrainSetup.load(run_dir, data)
    config, labels = s.config, s.labels
    texts = {p.query_id: p.query for p in s.run.kept()} | {q.id: q.text for q in s.run.pseudo_queries()}
    lexical = Lexical.build([it.encode_text() for it in s.run.items()])
    label_cands = candidates(lexical, s.item_emb, [texts[i] for i in labels.query_ids], s.label_emb, config.teacher_candidates)
    out = {}
    for name, (exclude, weight) in _variants(config).items():
        if variants is not None and name not in variants:
            continue
        lab = labels
        if weight is not None:
            scores, cand_rows = label_cands.ranked(weight, config.teacher_candidates)
            lab = Labels(query_ids=labels.query_ids, formats=labels.formats, pos=labels.pos, rows=cand_rows, scores=scores)
        t = tune_on_labels(config, s.quantizer, s.codes, s.item_emb, lab, s.label_emb, s.where, exclude)
        r = t.result
        out[name] = {**s.measure(t.table), "best_epoch": r.best_epoch, "epoch_interval": r.epoch_interval, "strength": r.strength,
                     "train_queries": t.train_queries}
        print(name, json.dumps(out[name]), flush=True)
    for name, depth in BM25_MISSES.items():  # the table trained only where BM25, its partner in the hybrid, fails
        if variants is not None and name not in variants:
            continue
        idx = np.flatnonzero(bm25_misses(lexical, [texts[i] for i in labels.query_ids], labels.pos, depth))
        t = tune_on_labels(config, s.quantizer, s.codes, s.item_emb, subset(labels, idx), s.label_emb[idx], s.where, set())
        out[name] = {**s.measure(t.table), "best_epoch": t.result.best_epoch, "train_queries": t.train_queries, "labelled": len(idx)}
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from corpus_mode import DATASETS, ROOT

    parser = retrain_parser(__doc__)
    parser.add_argument("--variants", nargs="*", help="names of the variants to retrain (default: all)")
    parser.add_argument("--out", default="ablation", help="the results file's name before the tag (default: ablation)")
    args = parser.parse_args()
    out = {name: ablate(ROOT / "runs" / f"quality-{name}{args.tag}", DATASETS / name, args.variants) for name in args.datasets}
    path = ROOT / "benchmarks" / "results" / f"{args.out}{args.tag}.json"
    path.write_text(json.dumps({"command": " ".join(sys.argv), "by_dataset": out}, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
