"""The `audit` and `report` stages of `retable adapt`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retable.adapters.artifact import Adapter
from retable.agent.runstate import RunState
from retable.evals.audit import Audit, held_out_recall, pair_counts
from retable.evals.report import render_markdown
from retable.files import atomic_write_text, read_records, write_json
from retable.records import DroppedPair, Item, Pair, Query


def write_audit(run_dir: Path, corpus_mode: bool, items: list[Item], queries: list[Query], query_emb: np.ndarray,
                item_emb: np.ndarray, state: RunState, encoder, filter_top_k: int) -> None:
    kept = read_records(run_dir / "pairs.kept.jsonl", Pair)
    dropped = read_records(run_dir / "pairs.dropped.jsonl", DroppedPair)
    test_ids = set(json.loads((run_dir / "splits.json").read_text())["test"])
    test = [p for p in kept if p.query_id in test_ids]
    q_row = {q.id: i for i, q in enumerate(queries)}
    i_row = {it.id: i for i, it in enumerate(items)}
    adapter = Adapter(run_dir / "adapter")
    q = query_emb[[q_row[p.query_id] for p in test]].reshape(len(test), -1)
    systems = {
        "frozen_flat": (q, item_emb),
        "frozen_pq": (q, adapter.quantizer.reconstruct(item_emb)),
        "adapted": (adapter.query_vectors(q), adapter.item_vectors(item_emb, adapter.item_ids, adapter.codes)),
    }
    pos = np.array([i_row[p.item_id] for p in test], dtype=np.int64)
    tune = json.loads((run_dir / "tune.json").read_text())
    before, after = tune["encoder_checksum_before"], tune["encoder_checksum_after"]  # around the tuning itself
    audit = Audit(
        mode="corpus" if corpus_mode else "description-only",
        n_items=len(items),
        n_queries=len(queries),
        filter_top_k=filter_top_k,
        **pair_counts(kept, dropped),
        held_out=held_out_recall(test, pos, systems),
        table_kind=adapter.table.kind,
        quantizer=adapter.quantizer.kind,
        collision_rate=tune["collision_rate"],
        collision_rate_by_query_mass=tune["collision_rate_by_query_mass"],
        collision_residuals=tune["collision_residuals"],
        pq_m=adapter.quantizer.m,
        pq_k=adapter.quantizer.k,
        table_parameters=adapter.table.n_parameters(),
        encoder_parameters=encoder.n_parameters(),
        encoder=encoder.name,
        encoder_checksum_before=before,
        encoder_checksum_after=after,
        encoder_unchanged=before == after == encoder.checksum(),
        tuning={k: tune[k] for k in ("best_epoch", "initial_val_mrr", "best_val_mrr", "seconds", "train_pairs", "val_pairs")},
        cost_by_stage=state.usage_by_stage(),
        seconds_by_stage=state.seconds_by_stage(),
    )
    write_json(run_dir / "audit.json", audit.model_dump(mode="json"))


def write_report(run_dir: Path) -> None:
    audit = Audit.model_validate_json((run_dir / "audit.json").read_text())
    atomic_write_text(run_dir / "report.md", render_markdown(audit, run_dir.name))
