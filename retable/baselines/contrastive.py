"""Contrastive tuning of the code table on the kept synthetic pairs. The encoder is never touched:
queries and items arrive as fixed embeddings / codes."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from retable.adapters.table import CodeTable
from retable.metrics import mrr_at_k


def contrastive_loss(queries: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """Softmax cross-entropy of each query over a shared candidate set (its positive, the other
    queries' positives, and mined hard negatives).

    queries (B, d), candidates (C, d), targets (B,) index of each query's positive in candidates.
    """
    logits = queries @ candidates.T / tau
    return F.cross_entropy(logits, targets)


@dataclass
class TuneResult:
    best_epoch: int
    best_val_mrr: float
    initial_val_mrr: float
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class PairSet:
    """Queries (rotated into the quantizer's space), their codes, and the row of each positive item."""

    q: np.ndarray
    qcodes: np.ndarray
    pos: np.ndarray


def _mine_hard(table: CodeTable, q_t, qc_t, pos_t, codes_t, emb_t, rows_t, n: int) -> torch.Tensor:
    """For each query, the highest-scoring items under the current table that are not its positive."""
    with torch.no_grad():
        scores = table.queries(q_t, qc_t) @ table.items(codes_t, emb_t, rows_t).T
        scores[torch.arange(len(pos_t)), pos_t] = float("-inf")
        return scores.topk(min(n, scores.shape[1] - 1), dim=1).indices


def _epoch(table: CodeTable, opt, q_t, qc_t, pos_t, codes_t, emb_t, hard, batches, tau: float) -> float:
    """One pass over the batches; the summed loss. Candidates: the batch's positives and their hard negatives."""
    total = 0.0
    for b in batches:
        ids = pos_t[b] if hard is None else torch.cat([pos_t[b], hard[b].reshape(-1)])
        cand, inverse = torch.unique(ids, return_inverse=True)
        loss = contrastive_loss(table.queries(q_t[b], qc_t[b]), table.items(codes_t[cand], emb_t[cand], cand), inverse[: len(b)], tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total


def tune_table(
    table: CodeTable,
    codes: np.ndarray,
    emb: np.ndarray,
    train: PairSet,
    val: PairSet,
    *,
    epochs: int,
    patience: int,
    lr: float,
    tau: float,
    batch_size: int,
    hard_negatives: int,
    seed: int,
    progress=None,
) -> TuneResult:
    """Tune `table` in place on `train`; keep the epoch with the best validation MRR@10
    (epoch 0 = untuned). `codes` and `emb` are every item's codes and (rotated) frozen embedding."""
    gen = torch.Generator().manual_seed(seed)
    codes_t = torch.as_tensor(codes, dtype=torch.long)
    emb_t = torch.as_tensor(emb)
    rows_t = torch.arange(len(codes_t))
    q_t = torch.as_tensor(train.q)
    qc_t = torch.as_tensor(train.qcodes, dtype=torch.long)
    pos_t = torch.as_tensor(train.pos, dtype=torch.long)
    opt = torch.optim.Adam(table.parameters(), lr=lr)

    def val_mrr() -> float:
        return mrr_at_k(table.query_vectors(val.q, val.qcodes) @ table.item_vectors(codes, emb).T, val.pos)

    start = time.perf_counter()
    best = initial = val_mrr()
    best_state, best_epoch, stale = copy.deepcopy(table.state_dict()), 0, 0
    history = [{"epoch": 0, "loss": None, "val_mrr@10": initial}]
    for epoch in range(1, epochs + 1):
        hard = _mine_hard(table, q_t, qc_t, pos_t, codes_t, emb_t, rows_t, hard_negatives) if hard_negatives else None
        total = _epoch(table, opt, q_t, qc_t, pos_t, codes_t, emb_t, hard, torch.randperm(len(q_t), generator=gen).split(batch_size), tau)
        rec = val_mrr()
        history.append({"epoch": epoch, "loss": total / len(q_t), "val_mrr@10": rec})
        if progress is not None:
            progress(epoch, history[-1])
        if rec > best:
            best, best_epoch, stale = rec, epoch, 0
            best_state = copy.deepcopy(table.state_dict())
        else:
            stale += 1
            if stale >= patience:
                break
    table.load_state_dict(best_state)
    return TuneResult(best_epoch, best, initial, time.perf_counter() - start, history)
