"""Planted faults: the audit's own test. Each fault is planted into a copy of a finished run, the
table is re-tuned where the fault is upstream of tuning, and the run is audited again; the audit
must raise a red or amber finding for every fault and no red one for the clean copy. Used by
tests/test_audit_faults.py (fake LLM) and benchmarks/planted_faults.py (real collections)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np

from retable.adapters.stages import CODES_STAGE, TUNE_STAGE
from retable.config import RunConfig
from retable.evals.audit import Audit
from retable.evals.audit_build import build_audit
from retable.evals.checks import CHECKS
from retable.evals.stages import JUDGE_STAGE
from retable.executor import LocalExecutor
from retable.llm import UsageLog
from retable.prompts import Prompts
from retable.records import Item
from retable.runfiles import (BRIEF, CODES, DESCRIPTION, DROPPED, ITEM_EMB, ITEMS, KEPT, PSEUDO, PSEUDO_EMB, QUANTIZER, QUERIES, QUERY_EMB,
                              ROUND_FILES, RunFolder)
from retable.runstate import RunState
from retable.stage import Context
from retable.agent.stages import PSEUDO_STAGE
from retable.teacher.stages import TEACHER_STAGE

PLANTED = {check.fault.name: check for check in CHECKS if check.fault is not None}  # each check's own fault (retable/evals/checks/)
FAULTS = ("clean", *PLANTED)
EXPECTED = {fault: check.name for fault, check in PLANTED.items()}  # the check each fault should trip (others may fire too)
REDO = {"codes": CODES_STAGE, "pseudo": PSEUDO_STAGE}  # stages a data fault may need redone before the teacher labels it
COPY = [BRIEF, DESCRIPTION, ITEMS, QUERIES, ITEM_EMB, QUERY_EMB, KEPT, DROPPED, QUANTIZER, CODES, PSEUDO, PSEUDO_EMB, *ROUND_FILES]


def _copy_run(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in COPY:
        if (src / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)


def plant(src: Path, dst: Path, fault: str, config: RunConfig, encoder, *, seed: int, client=None, prompts=None,
          foreign: tuple[list[Item], np.ndarray] | None = None) -> Audit:
    """Copy the run `src` to `dst`, plant `fault` (a check's own, evals/checks/), re-tune, re-judge (with `client`,
    else no judge) and audit. The config's seed is replaced by `seed`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
    _copy_run(src, dst)
    fault_ = PLANTED.get(fault)
    cfg = config.model_copy(update={"seed": seed})
    if fault_ is not None and fault_.fault.config is not None:
        cfg = cfg.model_copy(update=fault_.fault.config(cfg))
    ctx = Context(run=RunFolder(dst), config=cfg, state=RunState(dst, UsageLog(), lambda m: None), prompts=prompts or Prompts(),
                  make_client=lambda: client, make_encoder=lambda: encoder, executor=LocalExecutor(), log=lambda m: None)
    f = None if fault_ is None else fault_.fault
    if f is not None and f.into == "data":
        f.plant(ctx.run, random.Random(seed), foreign)
        for name in f.redo:
            REDO[name].run(ctx)
    if f is not None and f.tune_with is not None:  # tuned with this, and nothing in the config says so
        ctx.config = cfg.model_copy(update=f.tune_with(ctx.run))
    TEACHER_STAGE.run(ctx)  # the teacher labels the planted data
    TUNE_STAGE.run(ctx)
    ctx.config = cfg
    if f is not None and f.into == "adapter":
        f.plant(ctx.run, seed)
    if client is not None:
        JUDGE_STAGE.run(ctx)
    else:
        ctx.run.write_judge(None)
    return build_audit(ctx, cost={}, seconds={})
