"""The audit's thresholds: each finding in the verdict names the threshold it crossed. Set them in
the run config under "audit" (e.g. {"audit": {"slice_drop_red": 0.2}}).

The defaults were calibrated on clean runs over SciFact, NFCorpus, CISI and NPL and on the planted
faults in benchmarks/planted_faults.py (see docs/audit.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_pairs: int = Field(8, ge=1, description="fewer held-out or judged pairs than this: the number is shown but judges nothing")
    slice_drop_amber: float = Field(0.05, ge=0, description="MRR@10 points a query-format slice may lose against the untuned table")
    slice_drop_red: float = Field(0.15, ge=0)
    retriever_agreement_amber: float = Field(0.9, ge=0, le=1, description="share of kept pairs whose item is in the frozen top k of its query")
    retriever_agreement_red: float = Field(0.7, ge=0, le=1)
    judge_informative: float = Field(0.25, ge=0, le=1, description="judge 'yes' rate on matching controls minus "
                                                                   "on mismatched ones needed to trust the judge")
    judge_yes_amber: float = Field(0.7, ge=0, le=1, description="share of kept pairs the (informative) judge finds answerable")
    judge_yes_red: float = Field(0.5, ge=0, le=1)
    unsupported_facts_amber: float = Field(0.3, ge=0, le=1, description="share of kept queries naming numbers or names their item lacks")
    domain_seed_share: float = Field(0.2, gt=0, le=1, description="items most similar to the description that define the domain")
    domain_ratio: float = Field(0.3, gt=0, le=1, description="an item is off-domain below this share of the domain seeds' own median similarity")
    off_domain_amber: float = Field(0.10, ge=0, le=1, description="share of items off-domain")
    off_domain_red: float = Field(0.18, ge=0, le=1)
    overlap_amber: float = Field(0.5, ge=0, le=1, description="overlap@10 of the untuned and adapted rankings on held-out queries")
    overlap_red: float = Field(0.2, ge=0, le=1)
    spread_amber: float = Field(0.6, ge=0, description="spread of adapted item vectors relative to the "
                                                       "untuned table's (1 = unchanged, 0 = collapsed)")
    spread_red: float = Field(0.3, ge=0)
    collision_mass_amber: float = Field(0.05, ge=0, le=1, description="share of query mass on items the adapter cannot tell apart")
    collision_mass_red: float = Field(0.2, ge=0, le=1)
    loss_red: float = Field(0.01, ge=0, description="MRR@10 the shipped adapter may lose against the frozen encoder on held-out pseudo-queries; "
                                                    "more, with the 95% interval below 0, is red")
    probe_drop_amber: float = Field(0.01, ge=0, description="nDCG@10 the adapter may lose on --probe queries")
    probe_drop_red: float = Field(0.03, ge=0)
    served_drop_red: float = Field(0.01, ge=0, description="nDCG@10 the hybrid search that ships may lose on --probe queries against the better of "
                                                           "BM25 and the frozen encoder (any loss is amber)")
