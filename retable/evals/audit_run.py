"""`retable audit RUN_DIR`: redo the judge (cached LLM calls), the audit and the report of a
finished run, with the run's own settings; --probe adds real queries."""

from __future__ import annotations

import json
from pathlib import Path

from retable.agent.llm import LLMClient, UsageLog
from retable.agent.llm.cache import CallCache
from retable.agent.prompts import Prompts
from retable.agent.runstate import RunState
from retable.config import RunConfig
from retable.errors import UserError
from retable.evals import audit_stage

NEEDED = ["config.json", "items.jsonl", "queries.jsonl", "pairs.kept.jsonl", "splits.json", "tune.json", "adapter/adapter.json"]


def _check_run(run_dir: Path) -> RunConfig:
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} not found — pass the --out folder of a `retable adapt` run")
    missing = [n for n in NEEDED if not (run_dir / n).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a finished run (no {missing[0]}) — rerun `retable adapt` with --out {run_dir} to finish it")
    try:
        return RunConfig.model_validate(json.loads((run_dir / "config.json").read_text()))
    except ValueError as exc:
        raise UserError(f"{run_dir}/config.json is not a config this retable reads ({str(exc).splitlines()[0]}) — rerun `retable adapt`") from None


def audit_run(run_dir: Path, *, probe: Path | None = None, judge_pairs: int | None = None, api_key: str | None = None, log=print) -> tuple[Path, str]:
    config = _check_run(run_dir)
    if probe is not None and not (probe / "corpus.jsonl").is_file():
        raise UserError(f"--probe {probe} has no corpus.jsonl — pass a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    if judge_pairs is not None:
        config = config.model_copy(update={"judge_pairs": judge_pairs})
    from retable.adapters.encoder import Encoder
    from retable.agent.llm.factory import make_llm

    usage = UsageLog()
    state = RunState(run_dir, usage, log)
    prompts = Prompts()
    cache = CallCache(run_dir / "llm_cache.sqlite")

    def judge():
        client = LLMClient(make_llm(config, api_key), cache, temperature=config.temperature, max_tokens=config.max_tokens,
                           max_retries=config.max_retries, usage=usage)
        audit_stage.write_judge(run_dir, client, prompts, config)
    # skipped when the run's own judge stage is current (same key, judge.json unchanged): no LLM is loaded
    state.run("judge", audit_stage.judge_key(state.stages.get("filter", {}).get("key"), config, prompts), ["judge.json"], judge)
    encoder = Encoder(config.encoder)
    audit = audit_stage.write_audit(run_dir, config, encoder, state.usage_by_stage(), state.seconds_by_stage(), probe=probe, log=log)
    audit_stage.write_report(run_dir)
    cache.close()
    return run_dir / "report.html", audit.verdict
