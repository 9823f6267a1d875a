"""`retable adapt`, `retable generate` and `retable audit`: each a list of stages (commands/stages.py), run by
one runner (`retable.stage.run_stages`). This module opens and checks the run folder and wires the shared
parts (LLM client, encoder, executor) into a Context; `retable index` and `retable eval` reuse it."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Callable

from retable.adapters.stages import MIN_ITEMS
from retable.commands.stages import adapt_stages, audit_stages, generate_stages, index_stages
from retable.config import RunConfig
from retable.errors import UserError
from retable.executor import make_executor
from retable.files import check_corpus
from retable.llm import LLM, LLMClient, UsageLog
from retable.llm.cache import CallCache
from retable.prompts import Prompts
from retable.runfiles import (ADAPTER_META, CONFIG, DESCRIPTION, GENERATED, INDEX_RECORD, INDEXED, ITEMS, KEPT, LLM_CACHE, LOCK, MANIFEST, QUERIES,
                              REPORT_HTML, SPLITS, TUNE, RunFolder, in_adapter)
from retable.runlock import locked_run
from retable.runstate import RunState
from retable.stage import Context, run_stages

# what `retable adapt`'s audit reads of RUN/indexed/ once `retable index` ran (absent before: keyed as absent)
BY_INDEX = frozenset(f"{INDEXED}/{w}" for w in {w for s in index_stages(False) + index_stages(True) for w in s.writes} | {INDEX_RECORD})


RUN_MARKERS = (MANIFEST, LLM_CACHE, LOCK)  # a folder holding one of these is a retable run (perhaps an unfinished one)


def prepare_run_dir(run_dir: Path) -> bool:
    """Make the run folder, or check an existing one is a run: a folder of the user's is never written into.
    True when this call made the folder."""
    try:
        made = not run_dir.exists()
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"--out {run_dir} exists and is a file — name a folder for the run")
        if run_dir.is_dir() and not any((run_dir / m).exists() for m in RUN_MARKERS) and any(run_dir.iterdir()):
            raise UserError(f"--out {run_dir} is a folder with files that is not a retable run — name a new or empty folder "
                            "(or a run folder, to resume it); nothing in it was changed")
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
        return made
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            long = next((part for part in run_dir.parts if len(part.encode()) > 255), run_dir.name)
            raise UserError(f"--out has a name of {len(long.encode())} bytes ({long[:24]}…), longer than this file system allows "
                            "(255 bytes a name) — choose a shorter --out") from None
        raise UserError(f"cannot write the run folder {run_dir} ({exc.strerror}) — choose a writable --out") from None


def open_context(run_dir: Path, config: RunConfig, make_llm: Callable[[], LLM], *, prompts: Prompts | None = None, log=print,
                 description: str | None = None, corpus: Path | None = None, probe: Path | None = None,
                 parent: RunFolder | None = None) -> tuple[Context, CallCache]:
    """The Context stages share; the LLM and the encoder are made on first use."""
    usage = UsageLog()
    cache = CallCache(run_dir / LLM_CACHE)
    executor = make_executor(config.executor)

    def make_client() -> LLMClient:
        return LLMClient(make_llm(), cache, temperature=config.temperature, max_tokens=config.max_tokens, max_retries=config.max_retries,
                         usage=usage, budget_tokens=config.budget_tokens, concurrency=config.concurrency, executor=executor)

    def make_encoder():
        from retable.encoder.frozen import Encoder

        return executor.wrap_encoder(Encoder(config.encoder, config.encoder_backend))

    ctx = Context(run=RunFolder(run_dir), config=config, state=RunState(run_dir, usage, log), prompts=prompts or Prompts(), make_client=make_client,
                  make_encoder=make_encoder, executor=executor, log=log, description=description, corpus=corpus, probe=probe,
                  parent=parent)
    return ctx, cache


def run_adapt(description: str, run_dir: Path, config: RunConfig, llm: LLM, *, corpus: Path | None = None,
              prompts: Prompts | None = None, log: Callable[[str], None] = print, generate_only: bool = False) -> Path:
    """Run every stage; return the path of report.html. With `generate_only`, stop after the data
    (brief, items, queries, the agent's rounds) and return the exported pairs file."""
    if corpus is not None:  # bad input fails before any LLM call
        n_items = check_corpus(corpus, strict=config.strict, log=log)
        if n_items < MIN_ITEMS and not generate_only:
            raise UserError(f"corpus {corpus} has {n_items} item{'s' if n_items != 1 else ''} — at least {MIN_ITEMS} are needed to train a "
                            "quantizer; give a larger --corpus, or use `retable generate` for the pairs alone")
    new, paid = prepare_run_dir(run_dir), True
    try:
        with locked_run(run_dir):
            ctx, cache = open_context(run_dir, config, lambda: llm, prompts=prompts, log=log, description=description, corpus=corpus)
            ctx.run.write_config(config)
            ctx.run.write_description(description)  # `retable audit` reads it back
            ctx.run.write_prompts_dir(ctx.prompts.override_dir)  # and renders its judge with the same templates
            try:
                stages = generate_stages(corpus is not None) if generate_only else adapt_stages(corpus is not None)
                run_stages(stages, ctx, given=frozenset({DESCRIPTION}) | BY_INDEX)
            finally:
                if hasattr(llm, "stats"):  # a pool of endpoints: calls, failures and resting state of each
                    ctx.run.write_endpoints(llm.stats())
                paid = len(cache) > 0 or bool(ctx.state.stages)
                cache.close()
    except UserError:
        if new and not paid:  # a folder this command made holds nothing anyone paid for (a junk --model, say): leave no trace
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return ctx.run.path(GENERATED if generate_only else REPORT_HTML)


NEEDED = [CONFIG, ITEMS, QUERIES, KEPT, SPLITS, TUNE, *in_adapter(ADAPTER_META)]


def finished_run_config(run_dir: Path) -> RunConfig:
    """The config of a finished run, or a UserError saying what is missing."""
    run = RunFolder(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} not found — pass the --out folder of a `retable adapt` run")
    missing = [n for n in NEEDED if not run.has(n)]
    if missing:
        raise UserError(f"{run_dir} is not a finished run (no {missing[0]}) — rerun `retable adapt` with --out {run_dir} to finish it")
    try:
        return RunConfig.model_validate(run.config_json())
    except (ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"{run_dir}/{CONFIG} is not a config this retable reads ({str(exc).splitlines()[0]}) — rerun `retable adapt`") from None


def run_audit(run_dir: Path, *, probe: Path | None = None, judge_pairs: int | None = None, api_key: str | None = None, prompts: Path | None = None,
              log=print) -> tuple[Path, str]:
    """`retable audit RUN_DIR`: redo the judge (skipped when current: no LLM is loaded), the audit and the
    report of a finished run, with the run's own settings and templates (or `prompts`); --probe adds real queries."""
    from retable.llm.factory import make_llm

    config = finished_run_config(run_dir)
    if probe is not None and not (probe / "corpus.jsonl").is_file():
        raise UserError(f"--probe {probe} has no corpus.jsonl — pass a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    if judge_pairs is not None:
        config = config.model_copy(update={"judge_pairs": judge_pairs})
    run = RunFolder(run_dir)
    prompts = prompts or run.prompts_dir()
    if prompts is not None and not prompts.is_dir():
        raise UserError(f"the run's templates folder {prompts} is gone — pass --prompts DIR with the templates the run used")
    with locked_run(run_dir):
        ctx, cache = open_context(run_dir, config, lambda: make_llm(config, api_key), prompts=Prompts(prompts) if prompts else None, log=log,
                                  description=run.description(), probe=probe)
        try:
            finished = frozenset(w for s in adapt_stages(False) for w in s.writes)  # a finished run holds what adapt wrote
            run_stages(audit_stages(), ctx, force=frozenset({"audit", "report"}), given=finished | {DESCRIPTION} | BY_INDEX)
        finally:
            cache.close()
    return ctx.run.path(REPORT_HTML), json.loads(ctx.run.audit_json())["verdict"]
