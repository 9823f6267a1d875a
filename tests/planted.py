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

from retable.adapters.stages import CODES_STAGE, TUNE_STAGE
from retable.adapters.table import PQResidualTable, load_table, table_class
from retable.config import RunConfig
from retable.evals.audit import Audit
from retable.evals.audit_build import build_audit
from retable.evals.stages import JUDGE_STAGE
from retable.executor import LocalExecutor
from retable.files import read_npy, write_npy, write_records
from retable.llm import UsageLog
from retable.prompts import Prompts
from retable.records import Item
from retable.runfiles import (ADAPTER, BRIEF, CODES, DESCRIPTION, DROPPED, ITEM_EMB, ITEMS, KEPT, PSEUDO, PSEUDO_EMB, QUANTIZER, QUERIES, QUERY_EMB,
                              ROUND_FILES, RunFolder)
from retable.runstate import RunState
from retable.stage import Context
from retable.agent.stages import PSEUDO_STAGE
from retable.teacher.stages import TEACHER_STAGE

FAULTS = ("clean", "shuffled_pairs", "off_domain_items", "format_removed", "collapsed_table", "forced_collisions")
# the check each fault should trip (others may fire too)
EXPECTED = {"shuffled_pairs": "retriever_agreement", "off_domain_items": "off_domain", "format_removed": "format_coverage",
            "collapsed_table": "collapse", "forced_collisions": "collisions"}
COPY = [BRIEF, DESCRIPTION, ITEMS, QUERIES, ITEM_EMB, QUERY_EMB, KEPT, DROPPED, QUANTIZER, CODES, PSEUDO, PSEUDO_EMB, *ROUND_FILES]


def _copy_run(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in COPY:
        if (src / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)


def _shuffle_pairs(run: RunFolder, rng: random.Random) -> None:
    """Every kept query is paired with another kept pair's item (a derangement of the item ids)."""
    kept = run.kept()
    ids = [p.item_id for p in kept]
    order = list(range(len(ids)))
    rng.shuffle(order)
    moved = [ids[order[(i + 1) % len(order)]] for i in range(len(order))]
    back = {o: m for o, m in zip(order, moved)}
    write_records(run.path(KEPT), [p.model_copy(update={"item_id": back[i]}) for i, p in enumerate(kept)])


def _replace_items(ctx: Context, foreign: list[Item], foreign_emb: np.ndarray, share: float, rng: random.Random) -> None:
    """A `share` of the first round's items, among those without kept pairs, become items of another domain."""
    run = ctx.run
    items = run.first_items()
    emb = read_npy(run.path(ITEM_EMB))
    with_pairs = {p.item_id for p in run.kept()}
    rows = [i for i, it in enumerate(items) if it.id not in with_pairs]
    rng.shuffle(rows)
    n = min(int(round(share * len(items))), len(rows), len(foreign))
    picks = rng.sample(range(len(foreign)), n)
    for row, f in zip(rows[:n], picks):
        items[row] = foreign[f].model_copy(update={"id": items[row].id})
        emb[row] = foreign_emb[f]
    run.write_items(items)
    run.write_item_emb(emb)
    CODES_STAGE.run(ctx)
    PSEUDO_STAGE.run(ctx)


def _collapse_table(run: RunFolder, rng: np.random.Generator) -> None:
    """Pull every code vector to its sub-space's mean and add noise as large as what is left (pq, vq),
    or make every code's correction one large shared vector (pq_residual): the item vectors crowd
    together and their order is mostly noise."""
    path = run.path(f"{ADAPTER}/table.safetensors")
    table = load_table(path)
    with torch.no_grad():
        w = table.weight
        if isinstance(table, PQResidualTable):  # every code adds one large shared correction: all items point its way
            shared = torch.as_tensor(rng.standard_normal(w.shape[-1]), dtype=w.dtype)
            shared *= 10.0 / float((shared @ table.proj).norm())
            w.copy_(shared + 0.05 * shared.std() * torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype))
        elif table.compressed:
            mean = w.mean(dim=-2, keepdim=True)
            kept = 0.05 * (w - mean)
            noise = torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype) * kept.std()
            w.copy_(mean + kept + noise)
        else:
            raise ValueError(f"collapse is planted into pq, vq or pq_residual tables, not {table.kind}")
    table.save(path)


def _force_collisions(run: RunFolder, share: float) -> None:
    """The most popular items (most kept queries) get the codes of the most popular one."""
    items = run.items()
    row = {it.id: i for i, it in enumerate(items)}
    mass = np.bincount([row[p.item_id] for p in run.kept()], minlength=len(items))
    popular = np.argsort(-mass, kind="stable")[: max(3, int(round(share * int((mass > 0).sum()))))]
    path = run.path(f"{ADAPTER}/codes.npy")
    codes = read_npy(path)
    codes[popular] = codes[popular[0]]
    write_npy(path, codes)


def plant(src: Path, dst: Path, fault: str, config: RunConfig, encoder, *, seed: int, client=None, prompts=None,
          foreign: tuple[list[Item], np.ndarray] | None = None) -> Audit:
    """Copy the run `src` to `dst`, plant `fault`, re-tune, re-judge (with `client`, else no judge)
    and audit. The config's seed is replaced by `seed`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
    _copy_run(src, dst)
    cfg = config.model_copy(update={"seed": seed})
    if fault == "forced_collisions" and not table_class(cfg.table_kind).compressed:
        # shared codes make items indistinct only in a table built from codes alone; pq_residual and residual keep
        # each item's frozen embedding (the same codes only share a correction), so the fault goes into a pq table
        cfg = cfg.model_copy(update={"table_kind": "pq"})
    rng = random.Random(seed)
    ctx = Context(run=RunFolder(dst), config=cfg, state=RunState(dst, UsageLog(), lambda m: None), prompts=prompts or Prompts(),
                  make_client=lambda: client, make_encoder=lambda: encoder, executor=LocalExecutor(), log=lambda m: None)
    if fault == "shuffled_pairs":
        _shuffle_pairs(ctx.run, rng)
    if fault == "off_domain_items":
        if foreign is None:
            raise ValueError("off_domain_items needs foreign items and their embeddings")
        _replace_items(ctx, *foreign, share=0.25, rng=rng)
    if fault == "format_removed":  # tuned without one format, and nothing in the config says so
        ctx.config = cfg.model_copy(update={"holdout_formats": [sorted({p.format for p in ctx.run.kept()})[-1]]})
    TEACHER_STAGE.run(ctx)  # the teacher labels the planted data
    TUNE_STAGE.run(ctx)
    ctx.config = cfg
    if fault == "collapsed_table":
        _collapse_table(ctx.run, np.random.default_rng(seed))
    if fault == "forced_collisions":
        _force_collisions(ctx.run, share=0.2)
    if client is not None:
        JUDGE_STAGE.run(ctx)
    else:
        ctx.run.write_judge(None)
    return build_audit(ctx, cost={}, seconds={})
