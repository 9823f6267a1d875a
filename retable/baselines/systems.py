"""The comparison systems of `retable eval --baselines`, all trained contrastively on the run's own
kept pairs and splits: every table kind, the query-side linear adapter and full fine-tuning."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from retable.adapters.artifact import Adapter, artifact_bytes, write_adapter
from retable.adapters.table import KINDS
from retable.baselines.train import Space, train_kind
from retable.config import RunConfig
from retable.metrics import evaluate, to_run
from retable.retrieval.dense import exact_search
from retable.records import Item
from retable.runfiles import RunFolder

FINETUNE_MAX_EPOCHS = 3  # each epoch costs ~9 s per batch of 32 on 2 cores


class RunPairs:
    """A run's items, queries, kept pairs and splits, ready to train any table kind on."""

    def __init__(self, run_dir: Path, config: RunConfig):
        run = RunFolder(run_dir)
        self.items, self.queries = run.items(), run.queries()
        self.item_emb, self.query_emb = run.item_emb(), run.query_emb()
        by_id = {p.query_id: p for p in run.kept()}
        self.splits = {name: [by_id[q] for q in ids] for name, ids in run.splits().model_dump().items()}
        self.q_row = {q.id: i for i, q in enumerate(self.queries)}
        self.i_row = {it.id: i for i, it in enumerate(self.items)}
        self.config = config


def table_system(kind: str, rp: RunPairs, adapter: Adapter, corpus_ids: list[str], corpus_emb: np.ndarray,
                 q_emb: np.ndarray, qids: list[str], judged: dict) -> dict:
    quantizer = adapter.quantizer
    space = Space.build(quantizer, rp.item_emb, rp.query_emb, codes=adapter.codes)
    train, val = space.pairs(rp.splits["train"], rp.q_row, rp.i_row), space.pairs(rp.splits["val"], rp.q_row, rp.i_row)
    table, result, _ = train_kind(kind, quantizer, space, train, val, rp.config, collision_limit=rp.config.collision_residuals)
    with tempfile.TemporaryDirectory() as tmp:
        write_adapter(Path(tmp), encoder_name=rp.config.encoder, encoder_checksum=adapter.meta["encoder_checksum"], encoder_variant=adapter.variant,
                      quantizer=quantizer,
                      table=table, codes=space.codes, item_ids=[it.id for it in rp.items], item_emb=rp.item_emb)
        trained = Adapter(Path(tmp))
        size = artifact_bytes(Path(tmp))
        vectors = trained.item_vectors(corpus_emb, corpus_ids)
        queries = trained.query_vectors(q_emb)
    run = to_run(qids, corpus_ids, *exact_search(vectors, queries, 100))
    return {**evaluate(judged, run), "trainable_parameters": table.n_parameters(), "train_seconds": round(result.seconds, 2),
            "artifact_bytes": size, "best_epoch": result.best_epoch,
            "train_loss": [round(h["loss"], 6) for h in result.history[1:]],
            "val_mrr@10": [round(result.initial_val_mrr, 6), round(result.best_val_mrr, 6)]}


def finetune_system(rp: RunPairs, encoder, corpus: list[Item], query_texts: list[str], qids: list[str], judged: dict, epochs: int) -> dict:
    from retable.baselines.finetune import finetune_encoder

    items = {it.id: it for it in rp.items}
    pairs = [(p.query, items[p.item_id].encode_text()) for p in rp.splits["train"]]
    model, seconds = finetune_encoder(str(encoder.path), pairs, epochs=epochs, batch_size=rp.config.batch_size, seed=rp.config.seed)
    kwargs = dict(normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    corpus_emb = model.encode([it.encode_text() for it in corpus], show_progress_bar=True, **kwargs)
    q = model.encode(query_texts, **kwargs)
    run = to_run(qids, [it.id for it in corpus], *exact_search(corpus_emb, q, 100))
    n_params = sum(p.numel() for p in model.parameters())
    return {**evaluate(judged, run), "trainable_parameters": n_params, "train_seconds": round(seconds, 2),
            "artifact_bytes": sum(p.numel() * p.element_size() for p in model.parameters()), "epochs": epochs}


def baseline_systems(run_dir: Path, adapter: Adapter, encoder, corpus: list[Item], corpus_emb: np.ndarray,
                     query_texts: list[str], q_emb: np.ndarray, qids: list[str], judged: dict, log=print) -> dict[str, dict]:
    config = RunConfig(**RunFolder(run_dir).config_json())
    rp = RunPairs(run_dir, config)
    corpus_ids = [it.id for it in corpus]
    out = {}
    for kind in KINDS:
        log(f"baseline: {kind} table")
        name = kind if kind == "query_linear" else f"adapted_{kind}"
        out[name] = table_system(kind, rp, adapter, corpus_ids, corpus_emb, q_emb, qids, judged)
    epochs = max(1, min(FINETUNE_MAX_EPOCHS, len(RunFolder(run_dir).tune().history) - 1))
    log(f"baseline: full fine-tuning, {epochs} epoch(s)")
    out["full_finetune"] = finetune_system(rp, encoder, corpus, query_texts, qids, judged, epochs)
    return out
