"""audit.json: what the adaptation gained and what it cost. Every field is described in
docs/audit.md (generated from these models: `Audit.model_json_schema()`)."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field, create_model

from retable.domain import DomainCheck
from retable.evals.checks import CHECKS
from retable.evals.checks.base import Finding, Level
from retable.evals.checks.collisions import Codebook
from retable.evals.checks.held_out import HeldOut
from retable.evals.checks.loss import LossEvidence
from retable.evals.drift import Drift
from retable.evals.faithfulness import JudgeSummary
from retable.records import DroppedPair, Pair, RoundLog, StageUsage

SCHEMA_VERSION = 3  # audit.json's schema, and the audit stage's version

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
    train_queries_by_format: dict[str, int] = Field(default_factory=dict, description="training queries per source: LLM "
                                                                                      "formats and pseudo-query kinds")
    teacher_weight: float | None = Field(None, description="BM25's fixed share of the teacher's fused score, "
                                                           "also the hybrid search's (None: a weight-free rule)")
    teacher_chosen_on: str | None = Field(None, description="prior or setting (llm_queries or default in runs before rules)")
    fusion: str | None = Field(None, description="how the teacher and hybrid search fuse BM25 with the dense scores (retrieval/fusion.py)")
    strengths_tried: list[float] = Field(default_factory=list, description="the strengths the validation loss compared")
    strength_interval: list[float] | None = Field(None, description="the best strength's per-query validation loss "
                                                                    "minus strength 1's: mean and paired 95% interval")
    lowest_epoch: int | None = Field(None, description="the epoch of lowest validation loss; it ships only where epoch_interval is below 0")
    epoch_interval: list[float] | None = Field(None, description="the lowest-loss epoch's per-query validation loss minus the "
                                                                "untuned table's: mean and paired 95% interval")
    llm_query_evidence: dict | None = Field(None, description="MRR@10 of fixed BM25 shares and of the rule on the "
                                                              "run's LLM queries, and the best share minus the rule")


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
    loss: LossEvidence | None = Field(None, description="the shipped adapter against the frozen encoder on "
                                                        "held-out pseudo-queries (None: the run has none)")
    codebook: Codebook
    tuned: Tuned
    encoder: EncoderProof
    cost_by_stage: dict[str, StageUsage]
    usd_by_stage: dict[str, float] | None = Field(None, description="from price_per_million_tokens in the run config, when given")
    seconds_by_stage: dict[str, float]


def pair_counts(kept: list[Pair], dropped: list[DroppedPair]) -> dict:
    return {
        "kept": len(kept),
        "dropped_by_reason": dict(Counter(d.reason for d in dropped)),
        "kept_by_format": dict(Counter(p.format for p in kept)),
    }


def with_check_evidence(base: type[Audit], checks=CHECKS) -> type[Audit]:
    """Audit with a field for each registered check's own evidence that it does not already have (evals/checks/)."""
    extra = {c.field: (c.evidence | None, Field(None, description=(c.evidence.__doc__ or "").strip() or None))
             for c in checks if c.evidence is not None and c.field not in base.model_fields}
    return create_model("Audit", __base__=base, **extra) if extra else base


Audit = with_check_evidence(Audit)
