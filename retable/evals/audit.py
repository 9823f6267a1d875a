"""audit.json: what the adaptation gained and what it cost. Every field is described in
docs/audit.md (generated from these models: `Audit.model_json_schema()`)."""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from retable.metrics import mrr_at_k, recall_at_k
from retable.evals.codebook import Codebook
from retable.evals.drift import Drift
from retable.domain import DomainCheck
from retable.evals.faithfulness import JudgeSummary
from retable.evals.loss import LossEvidence
from retable.records import DroppedPair, Pair, RoundLog, StageUsage

SCHEMA_VERSION = 3  # audit.json's schema, and the audit stage's version

Level = Literal["red", "amber", "green"]


class Finding(BaseModel):
    level: Level
    check: str = Field(description="which check raised it, e.g. format_regression")
    title: str
    evidence: str = Field(description="the measured numbers behind it")
    threshold: str = Field(description="the threshold it was held against, and its config name")


class SliceMetrics(BaseModel):
    """One slice of held-out pairs: recall@10 and MRR@10 per system."""

    n_pairs: int
    recall_at_10: dict[str, float]
    mrr_at_10: dict[str, float]


class HeldOut(BaseModel):
    before: str = Field(description="the system the adapted one is compared with: frozen_flat, the encoder used flat (what a user runs without "
                                    "retable)")
    n_pairs: int = Field(description="test-split pairs (items never tuned on) plus every pair of a format that had no training pairs")
    all: SliceMetrics | None
    by_format: dict[str, SliceMetrics]


class Unsupported(BaseModel):
    n_queries: int
    share: float = Field(description="share of kept queries with a number or name their item lacks")
    examples: list[dict]


class Faithfulness(BaseModel):
    judge: JudgeSummary | None = Field(description="None when judge_pairs is 0")
    retriever_agreement: float
    unsupported: Unsupported
    domain: DomainCheck


class Probe(BaseModel):
    dataset: str
    ndcg_at_10: dict[str, float]
    recall_at_100: dict[str, float]


class Tuned(BaseModel):
    table_kind: str
    quantizer: str
    pq_m: int
    pq_k: int
    table_parameters: int
    encoder_parameters: int
    artifact_bytes: int
    best_epoch: int
    strength: float = Field(1.0, description="the best epoch's correction scaled by this, chosen on the validation loss")
    initial_val_mrr: float
    best_val_mrr: float
    seconds: float
    train_pairs: int
    val_pairs: int
    history: list[dict]
    train_queries_by_format: dict[str, int] = Field(default_factory=dict, description="training queries per source: LLM formats and pseudo-query "
                                                                                      "kinds")
    teacher_weight: float | None = Field(None, description="BM25's fixed share of the teacher's fused score, also the hybrid search's (None: a "
                                                           "weight-free rule)")
    teacher_chosen_on: str | None = Field(None, description="prior or setting (llm_queries or default in runs before rules)")
    fusion: str | None = Field(None, description="how the teacher and hybrid search fuse BM25 with the dense scores (retrieval/fusion.py)")
    strengths_tried: list[float] = Field(default_factory=list, description="the strengths the validation loss compared")
    strength_interval: list[float] | None = Field(None, description="the best strength's per-query validation loss minus strength 1's: mean and "
                                                                    "paired 95% interval")
    llm_query_evidence: dict | None = Field(None, description="MRR@10 of fixed BM25 shares and of the rule on the run's LLM queries, and the best "
                                                              "share minus the rule")


class EncoderProof(BaseModel):
    name: str
    checksum_before: str = Field(description="sha256 of the encoder weights before tuning")
    checksum_after: str = Field(description="after tuning")
    checksum_now: str = Field(description="when the audit ran")
    unchanged: bool


class Audit(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run: str
    mode: Literal["corpus", "description-only"]
    verdict: Level = Field(description="the worst finding's level")
    findings: list[Finding]
    n_items: int
    n_queries: int
    filter_top_k: int
    kept: int
    dropped_by_reason: dict[str, int]
    kept_by_format: dict[str, int]
    train_by_format: dict[str, int]
    holdout_formats: list[str]
    rounds: list[RoundLog] = Field(default_factory=list, description="the agent's rounds: why each ran, what it added, what was kept after it")
    faithfulness: Faithfulness
    held_out: HeldOut
    drift: Drift
    probe: Probe | None
    loss: LossEvidence | None = Field(None, description="the shipped adapter against the frozen encoder on held-out pseudo-queries (None: the run "
                                                        "has none)")
    codebook: Codebook
    tuned: Tuned
    encoder: EncoderProof
    cost_by_stage: dict[str, StageUsage]
    usd_by_stage: dict[str, float] | None = Field(None, description="from price_per_million_tokens in the run config, when given")
    seconds_by_stage: dict[str, float]


def held_out_metrics(test: list[Pair], pos: np.ndarray, systems: dict[str, tuple[np.ndarray, np.ndarray]], before: str) -> HeldOut:
    """Recall@10 and MRR@10 of each system (its query vectors, its item vectors), overall and per format."""
    if not test:
        return HeldOut(before=before, n_pairs=0, all=None, by_format={})

    def metrics(mask: np.ndarray) -> SliceMetrics:
        scores = {name: q[mask] @ vecs.T for name, (q, vecs) in systems.items()}
        return SliceMetrics(
            n_pairs=int(mask.sum()),
            recall_at_10={name: recall_at_k(s, pos[mask]) for name, s in scores.items()},
            mrr_at_10={name: mrr_at_k(s, pos[mask]) for name, s in scores.items()},
        )

    formats = np.array([p.format for p in test])
    return HeldOut(before=before, n_pairs=len(test), all=metrics(np.ones(len(test), dtype=bool)),
                   by_format={f: metrics(formats == f) for f in sorted(set(formats))})


def pair_counts(kept: list[Pair], dropped: list[DroppedPair]) -> dict:
    return {
        "kept": len(kept),
        "dropped_by_reason": dict(Counter(d.reason for d in dropped)),
        "kept_by_format": dict(Counter(p.format for p in kept)),
    }
