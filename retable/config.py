"""The one run configuration. CLI defaults are read from here, so each default lives in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retable.errors import UserError
from retable.thresholds import AuditThresholds

QUERY_FORMATS = ("keyword", "question", "long", "claim", "noisy")
TABLE_KINDS = ("pq_residual", "pq", "vq", "residual", "query_linear")  # adapters/table.py has one class per kind
QUANTIZER_KINDS = ("pq", "opq")
PSEUDO_FORMATS = ("title", "lead", "last", "keyphrase", "span")  # agent/pseudo.py writes one of each per item
LLM_WEIGHTS = ("fast", "shipped")  # llm/requantize.py makes the first; the second is the packaged file
ENCODER_BACKENDS = ("onnx-int8", "torch")  # encoder/onnx.py runs the first; sentence-transformers the second


class Endpoint(BaseModel):
    """One OpenAI-compatible server of a pool (a vLLM or llama.cpp replica)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    concurrency: int | None = Field(None, ge=1, le=256, description="requests in flight at this endpoint (default: the run's concurrency)")


class RunConfig(BaseModel):
    """Every setting of a run. Stages fingerprint the subset they read, so changing one reruns only
    that stage and what comes after it."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(13, description="random seed of every sampling, split and training step")
    encoder: str = Field("all-MiniLM-L6-v2", description="packaged model name or a local sentence-transformers folder")
    encoder_backend: Literal[ENCODER_BACKENDS] = Field(ENCODER_BACKENDS[0],
                                                       description="what runs the frozen encoder: onnx-int8 (ONNX Runtime, int8 weights exported "
                                                                   "locally at first use; about 2-3x faster on CPU) or torch (the reference)")
    llm: Literal["embedded", "openai", "langchain"] = Field("embedded", description="LLM backend: the embedded offline model, an OpenAI-compatible "
                                                                                    "server, or a LangChain chat model")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL (or RETABLE_BASE_URL); several, comma-separated, form a pool of "
                                                   "replicas of one model: requests fan out, `concurrency` each, and fail over")
    model: str | None = Field(None, description="for openai the served model, for langchain provider:model, for embedded a packaged name "
                                                "(smollm2-135m, qwen2.5-coder-0.5b) or a .gguf path")
    llm_parallel: int = Field(1, ge=1, le=32, description="embedded model: sequences decoded together in one llama.cpp batch, sharing their prompts' "
                                                          "common prefix (1: one call at a time, reproducible from an empty cache; 8 measured ~2x "
                                                          "the queries per minute of 1 on 2 cores, docs/speed.md, but the same seed may then give "
                                                          "another reply)")
    llm_weights: Literal[LLM_WEIGHTS] = Field(LLM_WEIGHTS[0], description="embedded model: fast re-encodes smollm2-135m's Q4_1 weights once as Q8_0 "
                                                                          "with llama.cpp's quantizer (cached; prompts decode ~1.6x faster on CPU, "
                                                                          "replies may differ slightly), shipped runs the file as packaged")
    endpoints: list[Endpoint] = Field(default_factory=list, description="several servers of one model: requests fan out, each endpoint with its own "
                                                                        "concurrency, and fail over")
    endpoint_cooldown: float = Field(30.0, ge=0, description="seconds a failed endpoint rests before it gets requests again")
    executor: Literal["local", "ray"] = Field("local", description="ray: generation, encoding and the filter's search as Ray Data pipelines "
                                                                   "(RAY_ADDRESS joins a cluster)")
    ann_threshold: int = Field(250_000, ge=1, description="above this many items, the filter's top-k search "
                                                          "uses faiss IVF-PQ instead of an exact scan")
    llm_timeout: float = Field(120.0, gt=0, description="seconds one remote LLM request may take")
    llm_retries: int = Field(3, ge=0, le=10, description="retries (with backoff) of a remote request on 429, 5xx, timeouts")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="LLM sampling temperature")
    max_tokens: int = Field(384, ge=16, le=8192, description="most tokens one LLM reply may have")
    max_retries: int = Field(2, ge=0, le=10, description="extra tries for an invalid LLM reply")
    n_subtopics: int = Field(8, ge=1, le=50, description="subtopics the brief plans")
    items_per_subtopic: int = Field(6, ge=1, le=50, description="synthetic items per subtopic (description-only mode)")
    query_formats: list[str] = Field(default_factory=lambda: ["keyword", "question"], min_length=2, json_schema_extra={"cli": "--formats"},
                                     description=f"query formats to write, of {', '.join(QUERY_FORMATS)}")
    holdout_formats: list[str] = Field(default_factory=list, description="query formats kept out of tuning, measured by the audit")
    max_query_items: int = Field(100, ge=1, description="items (sampled) that get LLM queries (every item gets pseudo-queries)")
    rounds: int = Field(3, ge=1, le=10, description="agent rounds: after the first, thin subtopics and weak formats get another round")
    min_pairs_per_subtopic: int = Field(8, ge=0, description="kept pairs each subtopic of the brief should reach (description-only mode)")
    min_format_pass: float = Field(0.5, ge=0, le=1, description="filter pass rate each query format should reach")
    round_items: int = Field(12, ge=1, description="new items a later round writes, over its thin subtopics")
    round_queries: int = Field(40, ge=1, description="items a later round writes queries for")
    budget_tokens: int | None = Field(None, ge=1, description="stop cleanly before new LLM tokens would exceed this")
    concurrency: int = Field(4, ge=1, le=64, description="LLM requests in flight at once (remote backends; the embedded model runs one)")
    price_per_million_tokens: dict[Literal["prompt", "completion"], float] | None = Field(
        None, description='e.g. {"prompt": 0.15, "completion": 0.6}: the report gives a cost per stage')
    filter_top_k: int = Field(10, ge=1, description="a pair is kept when its item ranks this high for its query, under the frozen encoder or BM25")
    strict: bool = Field(False, description="refuse a corpus with documents that have neither title "
                                            "nor text (default: skip them, counted in a warning)")
    pseudo_formats: list[Literal[PSEUDO_FORMATS]] = Field(default_factory=lambda: list(PSEUDO_FORMATS),
                                                          description="LLM-free queries every item gets, of "
                                                                      f"{', '.join(PSEUDO_FORMATS)} (none: an empty list)")
    teacher_weight: float | None = Field(None, ge=0, le=1, description="BM25's fixed share of the fused score (teacher and hybrid search); default: "
                                                                       "none, the per-query `peak` rule")
    teacher_candidates: int = Field(30, ge=2, le=200, description="items per training query that the teacher scores and the table learns to order")
    pq_m: int = Field(48, ge=1, description="PQ sub-spaces; must divide the encoder dimension")
    pq_nbits: int = Field(8, ge=1, le=12, description="bits per code (K=2^nbits), lowered for tiny corpora")
    quantizer: Literal[QUANTIZER_KINDS] = Field("pq", description="pq, or opq: a learned rotation before PQ")
    table_kind: Literal[TABLE_KINDS] = Field("pq_residual", description="pq_residual (starts at the frozen encoder, <2% of its size), pq, vq, "
                                                                        "residual or query_linear")
    collision_residuals: int = Field(64, ge=0, description="colliding items with the most query mass that get their own residual vector (pq and vq "
                                                           "tables, where shared codes make items identical)")
    epochs: int = Field(20, ge=1, description="most tuning epochs")
    patience: int = Field(2, ge=1, description="epochs without a better validation score before tuning stops")
    lr: float = Field(1e-3, gt=0, description="learning rate of the table")
    tau: float = Field(0.05, gt=0, description="softmax temperature of the table's scores in tuning")
    batch_size: int = Field(64, ge=2, description="queries per tuning step")
    hard_negatives: int = Field(8, ge=0, description="mined hard negatives per query and epoch (the contrastive tables of eval --baselines)")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of items whose pairs validate tuning")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of items whose pairs the audit holds out")
    judge_pairs: int = Field(8, ge=0, le=500, description="kept pairs the LLM judge reads, plus half as many "
                                                          "dropped pairs and this many controls of each answer")
    audit: AuditThresholds = Field(default_factory=AuditThresholds, description="the audit's thresholds (and the filter's off-domain rule)")

    @field_validator("query_formats", "holdout_formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(QUERY_FORMATS))
        if unknown:
            raise ValueError(f"unknown query formats {unknown}; choose from {list(QUERY_FORMATS)}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _endpoints_need_openai(self) -> "RunConfig":
        if self.endpoints and self.llm != "openai":
            raise ValueError("endpoints are OpenAI-compatible servers — add --llm openai")
        return self

    @model_validator(mode="after")
    def _holdout_leaves_one(self) -> "RunConfig":
        stray = sorted(set(self.holdout_formats) - set(self.query_formats))
        if stray:
            raise ValueError(f"holdout_formats {stray} are not among query_formats {self.query_formats} — add them to --formats")
        if set(self.query_formats) <= set(self.holdout_formats):
            raise ValueError("holdout_formats must leave at least one of query_formats for tuning")
        return self


def default(name: str):
    """The default of one RunConfig field, for CLI option defaults."""
    field = RunConfig.model_fields[name]
    return field.default_factory() if field.default_factory else field.default


def build_config(config_file: Path | None, **overrides) -> RunConfig:
    """Merge a JSON config file (optional) with CLI overrides (None means 'not given')."""
    data: dict = {}
    if config_file is not None:
        try:
            data = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read config {config_file}: {exc} — pass a JSON object of RunConfig fields") from None
        if not isinstance(data, dict):
            raise UserError(f"config {config_file} must hold a JSON object of RunConfig fields")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"invalid setting {where}: {msg}" if where else f"invalid settings: {msg}") from None
