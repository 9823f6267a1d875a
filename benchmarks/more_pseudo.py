"""More pseudo-queries per item (issue 26, item 3): a finished adapt_quality run's table retrained on the
same splits and settings with extra LLM-free queries beside the shipped ones — more random spans (the
`span` rule drawn with other seeds), or the body's middle sentences (`lead` and `last` are its first and
last) — each labelled by the run's own teacher (BM25 fused with the frozen encoder by the run's rule),
and measured on the collection's real queries, alone and fused with BM25 as search serves it.

    .venv/bin/python benchmarks/more_pseudo.py cisi nfcorpus scifact npl --tag=-peak

writes benchmarks/results/more_pseudo<tag>.json."""

from __future__ import annotations

import json
import time

import numpy as np

from ablation import RetrainSetup, retrain_parser
from corpus_mode import DATASETS, ROOT
from retable.encoder.frozen import Encoder
from retable.adapters.teaching import tune_on_labels
from retable.agent.pseudo import _SENTENCE_END, LEAD_WORDS, pseudo_queries
from retable.records import Query
from retable.runfiles import Labels
from retable.retrieval.lexical import Lexical
from retable.teacher.stages import candidates

MIDDLE_SENTENCES = 4


def extra_spans(items, seed: int, n: int) -> list[Query]:
    """`n` more spans per item, drawn with seeds other than the run's."""
    out = []
    for j in range(1, n + 1):
        out += [Query(id=f"{q.id}-{j}", item_id=q.item_id, text=q.text, format="span") for q in pseudo_queries(items, seed + 1000 * j, ("span",))]
    return out


def middle_sentences(items) -> list[Query]:
    """Up to MIDDLE_SENTENCES sentences between each body's first and last, cut to LEAD_WORDS words."""
    out = []
    for it in items:
        parts = _SENTENCE_END.split(it.text.strip())[1:-1]
        step = max(1, len(parts) // MIDDLE_SENTENCES)
        for i, s in enumerate(parts[::step][:MIDDLE_SENTENCES]):
            words = s.split()[:LEAD_WORDS]
            if len(words) >= 4:
                out.append(Query(id=f"p-middle{i}-{it.id}", item_id=it.id, text=" ".join(words), format="middle"))
    return out


def with_extra(s: RetrainSetup, encoder: Encoder, lexical: Lexical, extra: list[Query]) -> tuple[Labels, np.ndarray]:
    """The shipped labels and their embeddings with `extra` appended, labelled by the run's teacher."""
    k, row = s.config.teacher_candidates, {it.id: i for i, it in enumerate(s.run.items())}
    emb = encoder.encode([q.text for q in extra], progress=len(extra) > 2000)
    scores, rows = s.fusion.ranked(candidates(lexical, s.item_emb, [q.text for q in extra], emb, k), k)
    lab = s.labels
    out = Labels(query_ids=np.concatenate([lab.query_ids, [q.id for q in extra]]), formats=np.concatenate([lab.formats, [q.format for q in extra]]),
                 pos=np.concatenate([lab.pos, np.array([row[q.item_id] for q in extra], dtype=np.int64)]), rows=np.vstack([lab.rows, rows]),
                 scores=np.vstack([lab.scores, scores]))
    return out, np.vstack([s.label_emb, emb])


def run_dataset(name: str, tag: str) -> dict:
    s = RetrainSetup.load(ROOT / "runs" / f"quality-{name}{tag}", DATASETS / name)
    encoder = Encoder(s.config.encoder, s.config.encoder_backend)
    items = s.run.items()
    lexical = Lexical.build([it.encode_text() for it in items])
    variants = {"as shipped": None, "+2 spans per item": extra_spans(items, s.config.seed, 2),
                "+4 spans per item": extra_spans(items, s.config.seed, 4), "+ up to 4 middle sentences per item": middle_sentences(items)}
    out = {}
    for vname, extra in variants.items():
        start = time.perf_counter()
        if extra is not None and not extra:
            out[vname] = {"extra_queries": 0}  # the rule found none (bodies without sentence ends)
            continue
        lab, emb = (s.labels, s.label_emb) if extra is None else with_extra(s, encoder, lexical, extra)
        t = tune_on_labels(s.config, s.quantizer, s.codes, s.item_emb, lab, emb, s.where, set())
        out[vname] = {**s.measure(t.table), "best_epoch": t.result.best_epoch, "strength": t.result.strength, "train_queries": t.train_queries,
                      "extra_queries": len(extra or []), "seconds": round(time.perf_counter() - start, 1)}
        print(name, vname, json.dumps(out[vname]), flush=True)
    return out


def main() -> None:
    import sys

    parser = retrain_parser(__doc__)
    args = parser.parse_args()
    out = {}
    for name in args.datasets:
        out[name] = run_dataset(name, args.tag)
        path = ROOT / "benchmarks" / "results" / f"more_pseudo{args.tag}.json"
        path.write_text(json.dumps({"command": " ".join(sys.argv), "by_dataset": out}, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
