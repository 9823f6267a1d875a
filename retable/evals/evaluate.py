"""`retable eval`: nDCG@10 and Recall@100 on a BEIR collection for frozen_flat (the encoder, exact
search), frozen_pq (faiss' reconstruction of the codes, the untuned table) and adapted (the run's
tuned table); with `baselines`, also BM25, every table kind, the query-linear adapter and full
fine-tuning on the same pairs. The collection's items get codes from the run's quantizer: nothing
is retrained for them."""

from __future__ import annotations

from pathlib import Path

from retable.adapters.artifact import Adapter, artifact_bytes
from retable.evals.beir import load_beir
from retable.evals.metrics import evaluate, search, to_run
from retable.files import read_npy, write_npy
from retable.runfiles import ADAPTER, RunFolder


def evaluate_run(run_dir: Path, dataset: Path, *, baselines: bool = False, log=print) -> dict[str, dict]:
    from retable.adapters.encoder import Encoder

    adapter = Adapter(RunFolder(run_dir).path(ADAPTER))
    corpus, queries, qrels = load_beir(dataset, log=log)
    encoder = Encoder(adapter.meta["encoder"])
    adapter.check_encoder(encoder)
    cache = RunFolder(run_dir).corpus_cache(dataset / "corpus.jsonl", adapter.meta["encoder_checksum"])
    if cache.is_file():
        item_emb = read_npy(cache)
    else:
        log(f"encoding {len(corpus)} items of {dataset.name} (cached for later evals)")
        item_emb = encoder.encode([it.encode_text() for it in corpus], progress=True)
        write_npy(cache, item_emb)
    qids = sorted(queries)
    query_texts = [queries[q] for q in qids]
    q_emb = encoder.encode(query_texts)
    ids = [it.id for it in corpus]
    judged = {q: qrels[q] for q in qids}
    systems = {
        "frozen_flat": (q_emb, item_emb, 0, None),
        "frozen_pq": (q_emb, adapter.quantizer.reconstruct(item_emb), 0, None),
        "adapted": (adapter.query_vectors(q_emb), adapter.item_vectors(item_emb, ids), adapter.table.n_parameters(), artifact_bytes(adapter.folder)),
    }
    results = {
        name: {**evaluate(judged, to_run(qids, ids, *search(vecs, q, 100))), "trainable_parameters": params, "artifact_bytes": size}
        for name, (q, vecs, params, size) in systems.items()
    }
    if baselines:
        from retable.evals.baselines import baseline_systems

        results.update(baseline_systems(run_dir, adapter, encoder, corpus, item_emb, query_texts, q_emb, qids, judged, log=log))
    return results
