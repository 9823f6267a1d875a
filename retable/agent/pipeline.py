"""`retable adapt`: the stages top to bottom. Each stage writes into the run folder and is skipped
when its fingerprint (settings + upstream fingerprints) and output files are unchanged."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Callable

from retable.agent.brief import make_brief
from retable.agent.items import synthesize_items
from retable.agent.llm import LLM, LLMClient, UsageLog
from retable.agent.llm.cache import CallCache
from retable.agent.prompts import Prompts
from retable.agent.queries import QUERIES_VERSION, write_queries
from retable.agent.rounds import ROUNDS_VERSION, Generated, agent_rounds
from retable.agent.runstate import RunState
from retable.config import RunConfig
from retable.errors import UserError
from retable.executor import make_executor
from retable.files import (atomic_write_text, check_corpus, encode_to_npy, fingerprint, iter_corpus, read_npy, read_records, sha256_file,
                           write_json, write_npy, write_records)
from retable.records import DomainBrief, Item, Pair, Query
from retable.runfiles import ROUND_FILES, load_item_emb, load_items, load_queries, load_query_emb
from retable.search_index import top_k_rows


def prepare_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is a file — name a folder for the run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write the run folder {run_dir} ({exc.strerror}) — choose a writable --out") from None


class _Lazy:
    """The encoder, loaded only when a stage that needs it runs; with the Ray executor its `encode`
    runs on Ray's workers."""

    def __init__(self, name: str, executor=None):
        self.name, self.executor, self._enc = name, executor, None

    def get(self):
        if self._enc is None:
            from retable.adapters.encoder import Encoder

            self._enc = Encoder(self.name)
            if self.executor is not None:
                from retable.executor.ray_data import RayEncoder

                self._enc = RayEncoder(self._enc, self.executor)
        return self._enc


GENERATED = "generated_pairs.jsonl"


def export_pairs(run_dir: Path, items: list[Item], queries: list[Query], kept: list[Pair]) -> Path:
    """The kept pairs as JSONL whose first two fields, query and positive, are what sentence-transformers'
    MultipleNegativesRankingLoss trains on; the rest (format, ids, rank, persona) is for people."""
    text = {it.id: it.encode_text() for it in items}
    persona = {q.id: q.persona for q in queries}
    rows = [{"query": p.query, "positive": text[p.item_id], "format": p.format, "item_id": p.item_id, "query_id": p.query_id,
             "rank": p.rank, "persona": persona.get(p.query_id)} for p in kept]
    atomic_write_text(run_dir / GENERATED, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return run_dir / GENERATED


def write_endpoint_stats(run_dir: Path, llm: LLM) -> None:
    """A pool of endpoints: calls, failures and resting state of each, in endpoints.json."""
    if hasattr(llm, "stats"):
        write_json(run_dir / "endpoints.json", llm.stats())


def run_adapt(description: str, run_dir: Path, config: RunConfig, llm: LLM, *, corpus: Path | None = None,
              prompts: Prompts | None = None, log: Callable[[str], None] = print, generate_only: bool = False) -> Path:
    """Run every stage; return the path of report.html. With `generate_only`, stop after the data
    (brief, items, queries, filter and the agent's rounds) and return the exported pairs file."""
    prepare_run_dir(run_dir)
    if corpus is not None:
        check_corpus(corpus)  # bad input fails before any LLM call
    prompts = prompts or Prompts()
    usage = UsageLog()
    state = RunState(run_dir, usage, log)
    cache = CallCache(run_dir / "llm_cache.sqlite")
    executor = make_executor(config.executor)
    client = LLMClient(llm, cache, temperature=config.temperature, max_tokens=config.max_tokens, max_retries=config.max_retries, usage=usage,
                       budget_tokens=config.budget_tokens, concurrency=config.concurrency, executor=executor)
    encoder = _Lazy(config.encoder, executor)
    write_json(run_dir / "config.json", config.model_dump())
    atomic_write_text(run_dir / "description.txt", description)  # `retable audit` reads it back
    llm_id = [llm.backend, llm.model, config.temperature, config.max_tokens, config.max_retries]
    p = lambda name: run_dir / name  # noqa: E731

    k_brief = fingerprint(["brief", description, llm_id, config.subset("seed", "n_subtopics"), prompts.source_hash("brief")])
    if state.stages.get("brief", {}).get("key") == k_brief and p("brief.json").is_file() and not state.is_current("brief", k_brief):
        try:  # the user edited brief.json: keep it, and let the stages after it rerun
            DomainBrief.model_validate_json(p("brief.json").read_text())
            state.accept_edit("brief", k_brief, ["brief.json"])
        except ValueError as exc:
            raise UserError(f"brief.json was edited and is no longer a valid brief ({str(exc).splitlines()[0]}) — fix it or delete it to plan again") from None
    state.run("brief", k_brief, ["brief.json"], lambda: write_json(
        p("brief.json"), make_brief(client, prompts, description, config.n_subtopics, config.seed).model_dump()))
    brief = DomainBrief.model_validate_json(p("brief.json").read_text())
    k_brief = fingerprint([k_brief, sha256_file(p("brief.json"))])  # later stages follow the brief's content

    if corpus is not None:
        k_items = fingerprint(["items", "corpus", sha256_file(corpus)])
        state.run("items", k_items, ["items.jsonl"], lambda: write_records(p("items.jsonl"), iter_corpus(corpus)))
    else:
        k_items = fingerprint(["items", k_brief, llm_id, config.subset("seed", "n_subtopics", "items_per_subtopic"), prompts.source_hash("items")])
        state.run("items", k_items, ["items.jsonl"], lambda: write_records(p("items.jsonl"), synthesize_items(
            client, prompts, description, brief, config.n_subtopics * config.items_per_subtopic, config.seed)))
    items = read_records(p("items.jsonl"), Item)
    if not items:
        raise UserError("the LLM wrote no usable item — rerun with another --seed or a stronger --llm (replies are cached)")

    k_queries = fingerprint(["queries", QUERIES_VERSION, k_brief, k_items, llm_id, config.subset("seed", "query_formats", "max_query_items"), prompts.source_hash("queries")])
    state.run("queries", k_queries, ["queries.jsonl"], lambda: write_records(p("queries.jsonl"), write_queries(
        client, prompts, items, brief, config.query_formats, config.max_query_items, config.seed)))
    queries = read_records(p("queries.jsonl"), Query)
    if not queries:
        raise UserError("the LLM produced no valid query — rerun with another seed or a stronger --llm (replies are cached)")

    k_embed_items = fingerprint(["embed_items", k_items, config.encoder])

    def embed_items():
        encode_to_npy(encoder.get(), [it.encode_text() for it in items], p("item_emb.npy"))
        if corpus is not None:  # `retable eval` on the same corpus file reuses these
            from retable.evals.evaluate import corpus_cache_path

            cached = corpus_cache_path(run_dir, corpus, encoder.get().checksum())
            cached.parent.mkdir(exist_ok=True)
            shutil.copyfile(p("item_emb.npy"), cached)
    state.run("embed_items", k_embed_items, ["item_emb.npy"], embed_items)
    k_embed = fingerprint(["embed_queries", k_embed_items, k_queries])
    state.run("embed_queries", k_embed, ["query_emb.npy"], lambda: write_npy(
        p("query_emb.npy"), encoder.get().encode([q.text for q in queries])))
    item_emb, query_emb = read_npy(p("item_emb.npy")), read_npy(p("query_emb.npy"))

    k_filter = fingerprint(["filter", ROUNDS_VERSION, k_embed, config.filter_top_k, llm_id, prompts.source_hash("items"), prompts.source_hash("queries"), config.subset(
        "seed", "query_formats", "rounds", "min_pairs_per_subtopic", "min_format_pass", "round_items", "round_queries", "budget_tokens")])

    search = functools.partial(executor.search if executor else top_k_rows, ann_threshold=config.ann_threshold)
    if len(items) > config.ann_threshold:  # approximate search can change ranks: part of the filter's fingerprint then
        k_filter = fingerprint([k_filter, "ann", config.ann_threshold])

    def do_filter():
        g = Generated(list(items), list(queries), item_emb, query_emb, search=search)
        history = agent_rounds(g, client=client, prompts=prompts, encoder=encoder.get(), description=description, brief=brief,
                               formats=config.query_formats, rounds=config.rounds, min_pairs_per_subtopic=config.min_pairs_per_subtopic,
                               min_format_pass=config.min_format_pass, items_per_round=config.round_items,
                               queries_per_round=config.round_queries, top_k=config.filter_top_k, seed=config.seed, log=log)
        write_records(p("round_items.jsonl"), g.items[len(items):])
        write_records(p("round_queries.jsonl"), g.queries[len(queries):])
        write_npy(p("round_item_emb.npy"), g.item_emb[len(items):])
        write_npy(p("round_query_emb.npy"), g.query_emb[len(queries):])
        write_json(p("rounds.json"), [h.model_dump() for h in history])
        write_records(p("pairs.kept.jsonl"), g.kept)
        write_records(p("pairs.dropped.jsonl"), g.dropped)
    state.run("filter", k_filter, ["pairs.kept.jsonl", "pairs.dropped.jsonl", *ROUND_FILES], do_filter)
    items, queries = load_items(run_dir), load_queries(run_dir)
    item_emb, query_emb = load_item_emb(run_dir), load_query_emb(run_dir)
    kept = read_records(p("pairs.kept.jsonl"), Pair)
    if len(items) < 16 and not generate_only:
        raise UserError(f"only {len(items)} items — at least 16 are needed to train a quantizer; give a larger --corpus or raise items_per_subtopic")
    write_endpoint_stats(run_dir, llm)
    if generate_only:
        cache.close()
        return export_pairs(run_dir, items, queries, kept)
    if len(kept) < 4:
        raise UserError(f"only {len(kept)} pairs survived the filter — too few to tune; raise max_query_items or filter_top_k")

    from retable.adapters import stages as table_stages

    k_codes = fingerprint(["codes", k_embed_items, k_filter, config.subset("pq_m", "pq_nbits", "quantizer", "seed")])
    state.run("codes", k_codes, table_stages.CODES_FILES, lambda: table_stages.build_codes(run_dir, items, item_emb, config))

    k_tune = fingerprint(["tune", k_filter, k_codes, config.encoder, config.subset(
        "seed", "table_kind", "holdout_formats", "collision_residuals", "epochs", "patience", "lr", "tau", "batch_size", "hard_negatives", "val_fraction", "test_fraction")])
    state.run("tune", k_tune, table_stages.TUNE_FILES,
              lambda: table_stages.tune(run_dir, items, queries, item_emb, query_emb, kept, encoder.get(), config))

    from retable.evals import audit_stage
    from retable.evals.audit import SCHEMA_VERSION

    k_judge = audit_stage.judge_key(k_filter, config, prompts)
    state.run("judge", k_judge, ["judge.json"], lambda: audit_stage.write_judge(run_dir, client, prompts, config))
    k_audit = fingerprint(["audit", SCHEMA_VERSION, k_tune, k_judge, description, config.filter_top_k, config.audit.model_dump()])
    state.run("audit", k_audit, ["audit.json"], lambda: audit_stage.write_audit(
        run_dir, config, encoder.get(), state.usage_by_stage(), state.seconds_by_stage(), log=log))
    state.run("report", fingerprint(["report", k_audit]), audit_stage.REPORT_FILES, lambda: audit_stage.write_report(run_dir))
    cache.close()
    return p("report.html")
