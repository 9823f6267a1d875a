"""Planted faults: the audit's own test. Each fault is planted into a copy of a finished run, the
table is re-tuned where the fault is upstream of tuning, and the run is audited again; the audit
must raise a red or amber finding for every fault and no red one for the clean copy. Used by
tests/test_audit_faults.py (fake LLM) and benchmarks/planted_faults.py (real collections)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from retable.adapters import stages as table_stages
from retable.adapters.table import load_table
from retable.config import RunConfig
from retable.evals.audit import Audit
from retable.evals.audit_stage import build_audit, write_judge
from retable.files import read_npy, read_records, write_json, write_npy, write_records
from retable.records import Item, Pair
from retable.runfiles import ROUND_FILES, load_item_emb, load_items, load_queries, load_query_emb

FAULTS = ("clean", "shuffled_pairs", "off_domain_items", "format_removed", "collapsed_table", "forced_collisions")
# the check each fault should trip (others may fire too)
EXPECTED = {"shuffled_pairs": "retriever_agreement", "off_domain_items": "off_domain", "format_removed": "format_coverage",
            "collapsed_table": "collapse", "forced_collisions": "collisions"}
COPY = ["brief.json", "description.txt", "items.jsonl", "queries.jsonl", "item_emb.npy", "query_emb.npy",
        "pairs.kept.jsonl", "pairs.dropped.jsonl", "codes", *ROUND_FILES]


def _copy_run(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in COPY:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        elif (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _shuffle_pairs(dst: Path, rng: random.Random) -> None:
    """Every kept query is paired with another kept pair's item (a derangement of the item ids)."""
    kept = read_records(dst / "pairs.kept.jsonl", Pair)
    ids = [p.item_id for p in kept]
    order = list(range(len(ids)))
    rng.shuffle(order)
    moved = [ids[order[(i + 1) % len(order)]] for i in range(len(order))]
    back = {o: m for o, m in zip(order, moved)}
    write_records(dst / "pairs.kept.jsonl", [p.model_copy(update={"item_id": back[i]}) for i, p in enumerate(kept)])


def _replace_items(dst: Path, foreign: list[Item], foreign_emb: np.ndarray, share: float, rng: random.Random, config: RunConfig) -> None:
    """A `share` of the first round's items, among those without kept pairs, become items of another domain."""
    items = read_records(dst / "items.jsonl", Item)
    emb = read_npy(dst / "item_emb.npy")
    with_pairs = {p.item_id for p in read_records(dst / "pairs.kept.jsonl", Pair)}
    rows = [i for i, it in enumerate(items) if it.id not in with_pairs]
    rng.shuffle(rows)
    n = min(int(round(share * len(items))), len(rows), len(foreign))
    picks = rng.sample(range(len(foreign)), n)
    for row, f in zip(rows[:n], picks):
        items[row] = foreign[f].model_copy(update={"id": items[row].id})
        emb[row] = foreign_emb[f]
    write_records(dst / "items.jsonl", items)
    write_npy(dst / "item_emb.npy", emb)
    table_stages.build_codes(dst, load_items(dst), load_item_emb(dst), config)


def _collapse_table(dst: Path, rng: np.random.Generator) -> None:
    """Pull every code vector to its sub-space's mean and add noise as large as what is left: the
    item vectors crowd together and their order is mostly noise."""
    path = dst / "adapter/table.safetensors"
    table = load_table(path)
    if table.kind not in ("pq", "vq"):
        raise ValueError(f"collapse is planted into pq or vq tables, not {table.kind}")
    with torch.no_grad():
        w = table.weight
        mean = w.mean(dim=-2, keepdim=True)
        kept = 0.05 * (w - mean)
        noise = torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype) * kept.std()
        w.copy_(mean + kept + noise)
    table.save(path)


def _force_collisions(dst: Path, share: float) -> None:
    """The most popular items (most kept queries) get the codes of the most popular one."""
    items = load_items(dst)
    row = {it.id: i for i, it in enumerate(items)}
    mass = np.bincount([row[p.item_id] for p in read_records(dst / "pairs.kept.jsonl", Pair)], minlength=len(items))
    popular = np.argsort(-mass, kind="stable")[: max(3, int(round(share * int((mass > 0).sum()))))]
    codes = read_npy(dst / "adapter/codes.npy")
    codes[popular] = codes[popular[0]]
    write_npy(dst / "adapter/codes.npy", codes)


def plant(src: Path, dst: Path, fault: str, config: RunConfig, encoder, *, seed: int, client=None, prompts=None,
          foreign: tuple[list[Item], np.ndarray] | None = None) -> Audit:
    """Copy the run `src` to `dst`, plant `fault`, re-tune, re-judge (with `client`, else no judge)
    and audit. The config's seed is replaced by `seed`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
    _copy_run(src, dst)
    cfg = config.model_copy(update={"seed": seed})
    rng = random.Random(seed)
    if fault == "shuffled_pairs":
        _shuffle_pairs(dst, rng)
    if fault == "off_domain_items":
        if foreign is None:
            raise ValueError("off_domain_items needs foreign items and their embeddings")
        _replace_items(dst, *foreign, share=0.25, rng=rng, config=cfg)
    items, queries = load_items(dst), load_queries(dst)
    kept = read_records(dst / "pairs.kept.jsonl", Pair)
    tune_cfg = cfg
    if fault == "format_removed":  # tuned without one format, and nothing in the config says so
        tune_cfg = cfg.model_copy(update={"holdout_formats": [sorted({p.format for p in kept})[-1]]})
    table_stages.tune(dst, items, queries, load_item_emb(dst), load_query_emb(dst), kept, encoder, tune_cfg)
    if fault == "collapsed_table":
        _collapse_table(dst, np.random.default_rng(seed))
    if fault == "forced_collisions":
        _force_collisions(dst, share=0.2)
    if client is not None:
        write_judge(dst, client, prompts, cfg)
    else:
        write_json(dst / "judge.json", None)
    return build_audit(dst, cfg, encoder, cost={}, seconds={}, log=lambda m: None)
