"""`retable eval`: nDCG@10 and Recall@100 on a BEIR collection for bm25, frozen_flat (the encoder,
exact search: what a user runs without retable), frozen_pq (faiss' reconstruction of the codes),
adapted (the run's tuned table), adapted_hybrid (BM25 fused with the table by the adapter's rule: what
`retable search` serves) and frozen_hybrid (BM25 fused with the frozen encoder by the same rule: the same
search with no tuning, so adapted_hybrid − frozen_hybrid is the table's own share);
with `baselines`, also every other table kind, the query-linear adapter and full fine-tuning,
contrastively tuned on the run's kept pairs. The served adapter is evaluated: after `retable index`, the
indexed one; otherwise the collection's items get codes from the adapter's quantizer and nothing is
retrained for them (the `eval` command indexes a description-only run's collection first: commands/evaluate.py)."""

from __future__ import annotations

from pathlib import Path

from retable.adapters.artifact import Adapter, artifact_bytes, read_fusion
from retable.evals.beir import load_beir
from retable.metrics import evaluate, to_run
from retable.retrieval.dense import exact_search
from retable.encoder.cache import embed_items
from retable.runfiles import RunFolder

DEPTH = 100  # items ranked per query (Recall@100; each retriever's top this many are fused)


def evaluate_run(run_dir: Path, dataset: Path, *, baselines: bool = False, log=print, runs: dict | None = None,
                 collection: tuple | None = None) -> dict[str, dict]:
    """Metrics per system; `runs`, when given, receives each system's ranking (query id -> item id -> score);
    `collection`, when given, is `load_beir(dataset)` already read."""
    from retable.encoder.frozen import Encoder
    from retable.retrieval.fusion import Candidates
    from retable.retrieval.lexical import Lexical

    run = RunFolder(run_dir)
    adapter = Adapter(run.shipped_adapter())  # a folder without an adapter fails before the collection is read
    corpus, queries, qrels = collection or load_beir(dataset, log=log)
    encoder = Encoder(adapter.meta["encoder"], adapter.variant)
    adapter.check_encoder(encoder)

    def corpus_texts() -> list[str]:  # called only when the cache does not hold the items
        log(f"encoding {len(corpus)} items of {dataset.name} (cached for later evals)")
        return [it.encode_text() for it in corpus]

    item_emb = embed_items(encoder, corpus_texts, len(corpus), run.corpus_cache(dataset / "corpus.jsonl", encoder.identity()))
    qids = sorted(queries)
    query_texts = [queries[q] for q in qids]
    q_emb = encoder.encode(query_texts)
    ids = [it.id for it in corpus]
    judged = {q: qrels[q] for q in qids}
    vecs, qvecs = adapter.item_vectors(item_emb, ids), adapter.query_vectors(q_emb)
    lexical = Lexical.build([it.encode_text() for it in corpus])
    lexical_top = lexical.top(query_texts, DEPTH)
    tops = {
        "bm25": (lexical_top, 0, None),
        "frozen_flat": (exact_search(item_emb, q_emb, DEPTH), 0, None),
        "frozen_pq": (exact_search(adapter.quantizer.reconstruct(item_emb), q_emb, DEPTH), 0, None),
        "adapted": (exact_search(vecs, qvecs, DEPTH), adapter.table.n_parameters(), artifact_bytes(adapter.folder)),
    }
    fusion = read_fusion(adapter)  # checked as search checks it
    if fusion is not None:
        tops["frozen_hybrid"] = (fusion.ranked(Candidates.build(tops["frozen_flat"][0], lexical_top, item_emb, q_emb), DEPTH), 0, None)
        fused = fusion.ranked(Candidates.build(tops["adapted"][0], lexical_top, vecs, qvecs), DEPTH)
        tops["adapted_hybrid"] = (fused, adapter.table.n_parameters(), artifact_bytes(adapter.folder))
    results = {}
    for name, (top, params, size) in tops.items():
        run = to_run(qids, ids, *top)
        if runs is not None:
            runs[name] = run
        results[name] = {**evaluate(judged, run), "trainable_parameters": params, "artifact_bytes": size}
    if fusion is not None:
        for name in ("frozen_hybrid", "adapted_hybrid"):
            results[name].update(hybrid_rule=fusion.rule, hybrid_weight=fusion.weight)
    if baselines:
        from retable.baselines.systems import baseline_systems

        results.update(baseline_systems(run_dir, adapter, encoder, corpus, item_emb, query_texts, q_emb, qids, judged, log=log))
    return results
