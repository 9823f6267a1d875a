"""The `judge`, `audit` and `report` stages: run by `retable adapt` after tuning, and again by
`retable audit RUN_DIR`. Everything is read back from the run folder, so an audit can be redone (or
given a --probe) later. The declarations are light; the work imports its libraries when it runs."""

from __future__ import annotations

from retable.runfiles import (ADAPTER, ADAPTER_CODES, ADAPTER_TABLE, AUDIT, BRIEF, DESCRIPTION, DROPPED, INDEX_RECORD, INDEXED, ITEM_EMB, ITEMS,
                              JUDGE, KEPT, PSEUDO, QUERIES, QUERY_EMB, REPORT_HTML, REPORT_MD, ROUND_FILES, SPLITS, TUNE, in_adapter)
from retable.evals.audit import SCHEMA_VERSION
from retable.stage import LLM_FIELDS, Context, Stage

JUDGE_VERSION = 2  # part of the judge stage's key: raise it when the sampling or the test changes


def _judge(ctx: Context) -> None:
    from retable.evals.faithfulness import judge_pairs

    run, c = ctx.run, ctx.config
    summary = judge_pairs(ctx.client, ctx.prompts, run.kept(), run.dropped(), run.items(), c.judge_pairs, c.seed,
                          c.audit.judge_informative) if c.judge_pairs else None
    run.write_judge(summary)


JUDGE_STAGE = Stage("judge", _judge, writes=(JUDGE,), reads=(KEPT, DROPPED, ITEMS, *ROUND_FILES), version=JUDGE_VERSION,
                    config=(*LLM_FIELDS, "seed", "judge_pairs", "audit.judge_informative"), prompts=("judge",))


def _audit(ctx: Context) -> None:
    from retable.evals.audit_build import build_audit

    ctx.run.write_audit(build_audit(ctx, ctx.state.usage_by_stage(), ctx.state.seconds_by_stage()))


AUDIT_STAGE = Stage(
    "audit", _audit, writes=(AUDIT,), version=SCHEMA_VERSION,
    reads=(BRIEF, DESCRIPTION, ITEMS, QUERIES, ITEM_EMB, QUERY_EMB, *ROUND_FILES, KEPT, DROPPED, SPLITS, TUNE, JUDGE,
           *in_adapter(ADAPTER_TABLE, ADAPTER_CODES), PSEUDO, f"{INDEXED}/{INDEX_RECORD}", f"{INDEXED}/{ADAPTER}/{ADAPTER_TABLE}"),
    config=("seed", "val_fraction", "test_fraction", "encoder", "encoder_backend", "filter_top_k", "holdout_formats", "price_per_million_tokens",
            "audit"),
    inputs=lambda ctx: [None if ctx.probe is None else str(ctx.probe)])


def _report(ctx: Context) -> None:
    from retable.evals.audit import Audit
    from retable.evals.report import render_html, render_markdown

    audit = Audit.model_validate_json(ctx.run.audit_json())
    ctx.run.write_report(render_markdown(audit), render_html(audit))


REPORT_STAGE = Stage("report", _report, writes=(REPORT_MD, REPORT_HTML), reads=(AUDIT,))
