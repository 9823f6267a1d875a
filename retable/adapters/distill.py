"""Tuning a table on a teacher's scores: for each training query, the student's softmax over the
teacher's candidates is pulled toward the teacher's (listwise KL), beside a cross-entropy term on the
query's own item, with the table's weights decayed toward zero (the frozen encoder). The epoch is
chosen by the same loss on validation queries (other items' queries, labelled by the teacher, never
by the student's own ranking); epoch 0, the untuned table, is the prior: a tuned epoch ships only when its
per-query validation losses are below the untuned table's by a paired interval that excludes 0. Then the strength:
the chosen epoch's move away from the untuned table, scaled by each of STRENGTHS, is scored by the same
validation loss (an epoch is a coarse step: most runs stop after one or two), and another scale than 1
ships only when its per-query validation losses are below strength 1's by a paired interval that
excludes 0. Scales above 1 are tried only when validation stopped the tuning: when the epoch cap did,
they would stand in for the epochs the cap forbade."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from retable.adapters.table import CodeTable


@dataclass
class Labelled:
    """Queries (rotated into the quantizer's space) with the teacher's candidates and scores."""

    q: np.ndarray  # (n, d)
    qcodes: np.ndarray  # (n, M)
    rows: np.ndarray  # (n, C) candidate item rows, −1 pads
    teacher: np.ndarray  # (n, C) teacher scores, −inf at pads
    pos: np.ndarray  # (n,) the row of the item each query was written from

    def take(self, idx: np.ndarray) -> "Labelled":
        return Labelled(self.q[idx], self.qcodes[idx], self.rows[idx], self.teacher[idx], self.pos[idx])

    def __len__(self) -> int:
        return len(self.q)


STRENGTHS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # scales of the chosen epoch's correction tried on validation


@dataclass
class DistillSettings:
    epochs: int = 20
    patience: int = 2
    lr: float = 1e-3
    batch_size: int = 64
    tau: float = 0.05  # student softmax temperature
    teacher_tau: float = 0.1  # teacher softmax temperature (its fused scores are 0..1)
    contrastive: float = 0.5  # weight of the own-item term
    weight_decay: float = 1e-4  # pull of the table toward zero (the frozen encoder)
    seed: int = 13
    strengths: tuple[float, ...] = STRENGTHS


@dataclass
class DistillResult:
    best_epoch: int
    initial_val_loss: float
    best_val_loss: float
    initial_val_mrr: float  # own item's MRR@10 among all items, validation queries
    best_val_mrr: float
    seconds: float
    history: list[dict] = field(default_factory=list)
    strength: float = 1.0  # the chosen epoch's correction was scaled by this
    val_loss_by_strength: dict[str, float] = field(default_factory=dict)
    strength_interval: list[float] | None = None  # the best strength's per-query loss minus strength 1's: mean, paired 95% interval
    lowest_epoch: int = 0  # the epoch of lowest validation loss (it ships only where epoch_interval is below 0)
    epoch_interval: list[float] | None = None  # its per-query validation loss minus the untuned table's: mean, paired 95% interval


def own_item_mrr(table: CodeTable, codes: np.ndarray, emb: np.ndarray, val: Labelled, k: int = 10) -> float:
    """MRR@k of each validation query's own item among all items, under the table."""
    if not len(val):
        return 0.0
    scores = table.query_vectors(val.q, val.qcodes) @ table.item_vectors(codes, emb).T
    own = scores[np.arange(len(val)), val.pos]
    rank = (scores > own[:, None]).sum(axis=1)
    return float(np.where(rank < k, 1.0 / (rank + 1), 0.0).mean())


def _query_terms(table: CodeTable, b: Labelled, codes_t, emb_t, s: DistillSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per query: the listwise KL term, the own-item cross-entropy term, and whether its own item is a candidate."""
    rows = torch.as_tensor(np.where(b.rows >= 0, b.rows, 0), dtype=torch.long)
    valid = torch.as_tensor(b.rows >= 0)
    n, c = rows.shape
    flat = rows.reshape(-1)
    items = table.items(codes_t[flat], emb_t[flat], flat).reshape(n, c, -1)
    q = table.queries(torch.as_tensor(b.q), torch.as_tensor(b.qcodes, dtype=torch.long))
    logits = torch.einsum("ncd,nd->nc", items, q) / s.tau
    logits = logits.masked_fill(~valid, float("-inf"))
    target = torch.softmax(torch.as_tensor(b.teacher) / s.teacher_tau, dim=1)
    log_p = torch.log_softmax(logits, dim=1)
    kl = -(target * log_p.masked_fill(~valid, 0.0)).sum(dim=1)
    own = torch.as_tensor(b.rows == b.pos[:, None])
    return kl, -log_p.masked_fill(~own, 0.0).sum(dim=1), own.any(dim=1)


def _batch_loss(table: CodeTable, b: Labelled, codes_t, emb_t, s: DistillSettings) -> torch.Tensor:
    kl, ce, has = _query_terms(table, b, codes_t, emb_t, s)
    return kl.mean() + s.contrastive * (ce[has].mean() if bool(has.any()) else kl.new_zeros(()))


def _query_losses(table: CodeTable, val: Labelled, codes_t, emb_t, s: DistillSettings) -> np.ndarray:
    """Each validation query's own loss (KL plus its own-item term), for paired comparisons."""
    with torch.no_grad():
        kl, ce, has = _query_terms(table, val, codes_t, emb_t, s)
        return (kl + s.contrastive * torch.where(has, ce, torch.zeros_like(ce))).numpy().astype(np.float64)


def _val_loss(table: CodeTable, val: Labelled, codes_t, emb_t, s: DistillSettings) -> float:
    with torch.no_grad():
        return float(_batch_loss(table, val, codes_t, emb_t, s)) if len(val) else 0.0


def distill(table: CodeTable, codes: np.ndarray, emb: np.ndarray, train: Labelled, val: Labelled, settings: DistillSettings,
            progress=None) -> DistillResult:
    """Tune `table` in place; keep the epoch with the lowest loss on the validation queries' teacher
    labels (epoch 0, the untuned table, included); stop after `patience` epochs without a better one.
    Reproducible: the same inputs give the same table bytes (a resumed run equals an uninterrupted one)."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # the table's gathers accumulate gradients in a fixed order
    try:
        return _distill(table, codes, emb, train, val, settings, progress)
    finally:
        torch.use_deterministic_algorithms(was)


def _distill(table, codes, emb, train, val, settings, progress) -> DistillResult:
    gen = torch.Generator().manual_seed(settings.seed)
    codes_t, emb_t = torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(emb)
    opt = torch.optim.AdamW(table.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    start = time.perf_counter()
    best = initial = _val_loss(table, val, codes_t, emb_t, settings)
    initial_mrr = best_mrr = own_item_mrr(table, codes, emb, val)
    start_state = copy.deepcopy(table.state_dict())
    best_state, best_epoch, stale = start_state, 0, 0
    history = [{"epoch": 0, "loss": None, "val_loss": initial, "val_mrr@10": initial_mrr}]
    for epoch in range(1, settings.epochs + 1):
        total = 0.0
        for idx in torch.randperm(len(train), generator=gen).split(settings.batch_size):
            loss = _batch_loss(table, train.take(idx.numpy()), codes_t, emb_t, settings)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        score, mrr = _val_loss(table, val, codes_t, emb_t, settings), own_item_mrr(table, codes, emb, val)
        history.append({"epoch": epoch, "loss": total / max(len(train), 1), "val_loss": score, "val_mrr@10": mrr})
        if progress is not None:
            progress(epoch, history[-1])
        if score < best - 1e-6:
            best, best_mrr, best_epoch, stale, best_state = score, mrr, epoch, 0, copy.deepcopy(table.state_dict())
        else:
            stale += 1
            if stale >= settings.patience:
                break
    stopped_by_validation = stale >= settings.patience
    strength, by_strength, interval = 1.0, {}, None
    lowest_epoch, epoch_interval = best_epoch, None
    if best_epoch:
        epoch_interval = _paired(table, best_state, start_state, val, codes_t, emb_t, settings)
        if epoch_interval[2] >= 0:  # a move within the validation queries' noise: the untuned table ships
            best, best_mrr, best_epoch, best_state = initial, initial_mrr, 0, start_state
    if best_epoch:
        strengths = [a for a in settings.strengths if a <= 1.0 or stopped_by_validation]
        strength, best, by_strength, interval = choose_strength(table, start_state, best_state, val, codes_t, emb_t, settings, strengths)
        best_mrr = own_item_mrr(table, codes, emb, val)
    else:
        table.load_state_dict(best_state)
    return DistillResult(best_epoch, initial, best, initial_mrr, best_mrr, time.perf_counter() - start, history, strength, by_strength,
                         _rounded(interval), lowest_epoch, _rounded(epoch_interval))


def _paired(table, state: dict, baseline: dict, val: Labelled, codes_t, emb_t, settings) -> list[float]:
    """Per-query validation loss under `state` minus under `baseline`: mean and paired 95% interval."""
    losses = []
    for s in (state, baseline):
        table.load_state_dict(s)
        losses.append(_query_losses(table, val, codes_t, emb_t, settings))
    table.load_state_dict(state)
    return _difference(*losses)


def _difference(a: np.ndarray, b: np.ndarray) -> list[float]:
    """mean(a − b) over paired per-query losses and its 95% interval."""
    from retable.metrics import paired_interval

    return [float((a - b).mean()), *paired_interval(a, b)] if len(a) else [0.0, 0.0, 0.0]


def _rounded(interval: list[float] | None) -> list[float] | None:
    return None if interval is None else [round(x, 6) for x in interval]


def scaled_state(table: CodeTable, start: dict, tuned: dict, strength: float) -> dict:
    """`start` + strength × (`tuned` − `start`) for the table's corrections; its basis parameters (a
    projection the corrections are expressed in) and integer buffers stay as tuned."""
    return {k: start[k] + strength * (v - start[k]) if v.is_floating_point() and k not in table.BASIS else v for k, v in tuned.items()}


def choose_strength(table, start_state, tuned_state, val, codes_t, emb_t, settings, strengths) -> tuple[float, float, dict[str, float], list[float]]:
    """Loads a strength and returns it, its validation loss, every strength's loss, and the paired 95%
    interval of the best one's per-query loss minus strength 1's. The best leaves 1 (the epoch as trained)
    only when that whole interval is below 0: the validation queries are pseudo-queries, so a move
    within their noise is no evidence."""
    per_query = {}
    for a in sorted(set(strengths) | {1.0}):
        table.load_state_dict(scaled_state(table, start_state, tuned_state, a))
        per_query[a] = _query_losses(table, val, codes_t, emb_t, settings)
    losses = {a: _mean_loss(v) for a, v in per_query.items()}
    best = min(losses, key=lambda a: (losses[a] - (1e-6 if a == 1.0 else 0.0), abs(a - 1.0)))
    interval = _difference(per_query[best], per_query[1.0])
    chosen = best if interval[2] < 0 else 1.0
    table.load_state_dict(scaled_state(table, start_state, tuned_state, chosen))
    table_loss = _val_loss(table, val, codes_t, emb_t, settings)
    return chosen, table_loss, {str(a): round(v, 6) for a, v in losses.items()}, interval


def _mean_loss(v: np.ndarray) -> float:
    return float(v.mean()) if len(v) else 0.0
