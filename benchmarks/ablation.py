"""What each training-signal source and the teacher add: the run's table retrained (same splits and
settings) without one source, or with another teacher, and measured on the collection's real queries.
Used by adapt_quality.py --ablation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retable.adapters.quantizer import Quantizer
from retable.adapters.split import split_by_item
from retable.adapters.stages import label_embeddings
from retable.adapters.teaching import item_splits, tune_on_labels
from retable.config import PSEUDO_FORMATS, RunConfig
from retable.evals.beir import load_beir
from retable.evals.metrics import evaluate, search, to_run
from retable.files import read_npy
from retable.runfiles import QUANTIZER, Labels, RunFolder
from retable.teacher.fusion import Candidates
from retable.teacher.lexical import Lexical
from retable.teacher.stages import candidates


def _variants(config: RunConfig) -> dict[str, tuple[set[str], float | None]]:
    """name -> (formats left out, teacher weight; None: the run's)."""
    out = {"without LLM queries": (set(config.query_formats), None), "without pseudo-queries": (set(PSEUDO_FORMATS), None)}
    out |= {f"without {f}": ({f}, None) for f in PSEUDO_FORMATS}
    out |= {"teacher: frozen encoder alone": (set(), 0.0), "teacher: BM25 alone": (set(), 1.0)}
    return out


def ablate(run_dir: Path, data: Path) -> dict[str, dict]:
    from retable.adapters.encoder import Encoder

    run = RunFolder(run_dir)
    config = RunConfig(**run.config_json())
    items, labels, teacher = run.items(), run.teacher_labels(), run.teacher()
    quantizer, item_emb, codes = Quantizer.load(run.path(QUANTIZER)), run.item_emb(), run.codes()
    where = item_splits([it.id for it in items], split_by_item(run.kept(), config.val_fraction, config.test_fraction, config.seed),
                        config.val_fraction, config.seed)
    label_emb = label_embeddings(run, labels.query_ids)
    texts = {p.query_id: p.query for p in run.kept()} | {q.id: q.text for q in run.pseudo_queries()}
    lexical = Lexical.build([it.encode_text() for it in items])
    label_cands = candidates(lexical, item_emb, [texts[i] for i in labels.query_ids], label_emb, config.teacher_candidates)

    corpus, queries, qrels = load_beir(data, log=lambda m: None)
    encoder = Encoder(config.encoder)
    emb = read_npy(run.corpus_cache(data / "corpus.jsonl", encoder.checksum()))
    qids = sorted(queries)
    q_emb, judged, ids = encoder.encode([queries[i] for i in qids]), {i: qrels[i] for i in qids}, [it.id for it in corpus]
    eval_lexical = Lexical.build([it.encode_text() for it in corpus]).top([queries[i] for i in qids], 100)
    ecodes, eemb, eq, eqcodes = quantizer.codes(emb), quantizer.rotate(emb), quantizer.rotate(q_emb), quantizer.codes(q_emb)

    row = {it.id: i for i, it in enumerate(items)}
    item_rows = np.array([row.get(i, len(items)) for i in ids])  # the run's items keep their collision residuals
    out = {}
    for name, (exclude, weight) in _variants(config).items():
        lab = labels
        if weight is not None:
            scores, cand_rows = label_cands.ranked(weight, config.teacher_candidates)
            lab = Labels(query_ids=labels.query_ids, formats=labels.formats, pos=labels.pos, rows=cand_rows, scores=scores)
        t = tune_on_labels(config, quantizer, codes, item_emb, lab, label_emb, where, exclude)
        vecs, qv = t.table.item_vectors(ecodes, eemb, item_rows), t.table.query_vectors(eq, eqcodes)
        dense = search(vecs, qv, 100)
        hybrid = Candidates.build(dense, eval_lexical, vecs, qv).ranked(teacher.weight, 100)
        out[name] = {"adapted": round(evaluate(judged, to_run(qids, ids, *dense))["ndcg@10"] * 100, 2),
                     "adapted_hybrid": round(evaluate(judged, to_run(qids, ids, *hybrid))["ndcg@10"] * 100, 2),
                     "best_epoch": t.result.best_epoch, "train_queries": t.train_queries}
        print(name, json.dumps(out[name]), flush=True)
    return out
