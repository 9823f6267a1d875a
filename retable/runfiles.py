"""Reading a run's generated data: the first round's files plus what the agent's later rounds added
(round_*.jsonl / round_*.npy, written by the filter stage). Every reader downstream of the filter
goes through here, so rows of items and embeddings always line up."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retable.files import read_npy, read_records
from retable.records import Item, Query

ROUND_FILES = ["round_items.jsonl", "round_queries.jsonl", "round_item_emb.npy", "round_query_emb.npy", "rounds.json"]


def _both(run_dir: Path, name: str, round_name: str, reader):
    base = reader(run_dir / name)
    extra = run_dir / round_name
    return base, (reader(extra) if extra.is_file() else None)


def load_items(run_dir: Path) -> list[Item]:
    base, extra = _both(run_dir, "items.jsonl", "round_items.jsonl", lambda p: read_records(p, Item))
    return base + (extra or [])


def load_queries(run_dir: Path) -> list[Query]:
    base, extra = _both(run_dir, "queries.jsonl", "round_queries.jsonl", lambda p: read_records(p, Query))
    return base + (extra or [])


def _stack(base: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    return base if extra is None or not len(extra) else np.vstack([base, extra.reshape(-1, base.shape[1])])


def load_item_emb(run_dir: Path) -> np.ndarray:
    return _stack(*_both(run_dir, "item_emb.npy", "round_item_emb.npy", read_npy))


def load_query_emb(run_dir: Path) -> np.ndarray:
    return _stack(*_both(run_dir, "query_emb.npy", "round_query_emb.npy", read_npy))
