"""`retable adapt`: the stages top to bottom. Each stage writes into the run folder and is skipped
when its fingerprint (settings + upstream fingerprints) and output files are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from retable.agent.brief import make_brief
from retable.agent.filter import filter_pairs
from retable.agent.items import synthesize_items
from retable.agent.llm import LLM, LLMClient, UsageLog
from retable.agent.llm.cache import CallCache
from retable.agent.prompts import Prompts
from retable.agent.queries import write_queries
from retable.agent.runstate import RunState
from retable.config import RunConfig
from retable.errors import UserError
from retable.files import atomic_write_text, fingerprint, load_corpus, read_npy, read_records, sha256_file, write_json, write_npy, write_records
from retable.records import DomainBrief, Item, Pair, Query


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
    """The encoder, loaded only when a stage that needs it runs."""

    def __init__(self, name: str):
        self.name, self._enc = name, None

    def get(self):
        if self._enc is None:
            from retable.adapters.encoder import Encoder

            self._enc = Encoder(self.name)
        return self._enc


def run_adapt(description: str, run_dir: Path, config: RunConfig, llm: LLM, *, corpus: Path | None = None,
              prompts: Prompts | None = None, log: Callable[[str], None] = print) -> Path:
    """Run every stage; return the path of report.html."""
    prepare_run_dir(run_dir)
    corpus_items = load_corpus(corpus) if corpus is not None else None  # bad input fails before any LLM call
    prompts = prompts or Prompts()
    usage = UsageLog()
    state = RunState(run_dir, usage, log)
    cache = CallCache(run_dir / "llm_cache.sqlite")
    client = LLMClient(llm, cache, temperature=config.temperature, max_tokens=config.max_tokens, max_retries=config.max_retries, usage=usage)
    encoder = _Lazy(config.encoder)
    write_json(run_dir / "config.json", config.model_dump())
    atomic_write_text(run_dir / "description.txt", description)  # `retable audit` reads it back
    llm_id = [llm.backend, llm.model, config.temperature, config.max_tokens, config.max_retries]
    p = lambda name: run_dir / name  # noqa: E731

    k_brief = fingerprint(["brief", description, llm_id, config.subset("seed", "n_subtopics"), prompts.source_hash("brief")])
    state.run("brief", k_brief, ["brief.json"], lambda: write_json(
        p("brief.json"), make_brief(client, prompts, description, config.n_subtopics, config.seed).model_dump()))
    brief = DomainBrief.model_validate_json(p("brief.json").read_text())

    if corpus is not None:
        k_items = fingerprint(["items", "corpus", sha256_file(corpus)])
        state.run("items", k_items, ["items.jsonl"], lambda: write_records(p("items.jsonl"), corpus_items))
    else:
        k_items = fingerprint(["items", k_brief, llm_id, config.subset("seed", "n_subtopics", "items_per_subtopic"), prompts.source_hash("items")])
        state.run("items", k_items, ["items.jsonl"], lambda: write_records(p("items.jsonl"), synthesize_items(
            client, prompts, description, brief, config.n_subtopics * config.items_per_subtopic, config.seed)))
    items = read_records(p("items.jsonl"), Item)
    if len(items) < 16:
        raise UserError(f"only {len(items)} items — at least 16 are needed to train a quantizer; give a larger --corpus or raise items_per_subtopic")

    k_queries = fingerprint(["queries", k_brief, k_items, llm_id, config.subset("seed", "query_formats", "max_query_items"), prompts.source_hash("queries")])
    state.run("queries", k_queries, ["queries.jsonl"], lambda: write_records(p("queries.jsonl"), write_queries(
        client, prompts, items, brief, config.query_formats, config.max_query_items, config.seed)))
    queries = read_records(p("queries.jsonl"), Query)
    if not queries:
        raise UserError("the LLM produced no valid query — rerun with another seed or a stronger --llm (replies are cached)")

    k_embed_items = fingerprint(["embed_items", k_items, config.encoder])

    def embed_items():
        vectors = encoder.get().encode([it.encode_text() for it in items], progress=True)
        write_npy(p("item_emb.npy"), vectors)
        if corpus is not None:  # `retable eval` on the same corpus file reuses these
            from retable.evals.evaluate import corpus_cache_path

            write_npy(corpus_cache_path(run_dir, corpus, encoder.get().checksum()), vectors)
    state.run("embed_items", k_embed_items, ["item_emb.npy"], embed_items)
    k_embed = fingerprint(["embed_queries", k_embed_items, k_queries])
    state.run("embed_queries", k_embed, ["query_emb.npy"], lambda: write_npy(
        p("query_emb.npy"), encoder.get().encode([q.text for q in queries])))
    item_emb, query_emb = read_npy(p("item_emb.npy")), read_npy(p("query_emb.npy"))

    k_filter = fingerprint(["filter", k_embed, config.filter_top_k])

    def do_filter():
        kept, dropped = filter_pairs(queries, items, item_emb, query_emb, config.filter_top_k)
        write_records(p("pairs.kept.jsonl"), kept)
        write_records(p("pairs.dropped.jsonl"), dropped)
    state.run("filter", k_filter, ["pairs.kept.jsonl", "pairs.dropped.jsonl"], do_filter)
    kept = read_records(p("pairs.kept.jsonl"), Pair)
    if len(kept) < 4:
        raise UserError(f"only {len(kept)} pairs survived the filter — too few to tune; raise max_query_items or filter_top_k")

    from retable.adapters import stages as table_stages

    k_codes = fingerprint(["codes", k_embed_items, config.subset("pq_m", "pq_nbits", "quantizer", "seed")])
    state.run("codes", k_codes, table_stages.CODES_FILES, lambda: table_stages.build_codes(run_dir, items, item_emb, config))

    k_tune = fingerprint(["tune", k_filter, k_codes, config.encoder, config.subset(
        "seed", "table_kind", "holdout_formats", "collision_residuals", "epochs", "patience", "lr", "tau", "batch_size", "hard_negatives", "val_fraction", "test_fraction")])
    state.run("tune", k_tune, table_stages.TUNE_FILES,
              lambda: table_stages.tune(run_dir, items, queries, item_emb, query_emb, kept, encoder.get(), config))

    from retable.evals import audit_stage
    from retable.evals.audit import SCHEMA_VERSION
    from retable.evals.faithfulness import JUDGE_VERSION

    k_judge = fingerprint(["judge", JUDGE_VERSION, k_filter, llm_id, config.subset("seed", "judge_pairs"), config.audit.judge_informative, prompts.source_hash("judge")])
    state.run("judge", k_judge, ["judge.json"], lambda: audit_stage.write_judge(run_dir, client, prompts, config))
    k_audit = fingerprint(["audit", SCHEMA_VERSION, k_tune, k_judge, description, config.filter_top_k, config.audit.model_dump()])
    state.run("audit", k_audit, ["audit.json"], lambda: audit_stage.write_audit(
        run_dir, config, encoder.get(), state.usage_by_stage(), state.seconds_by_stage(), log=log))
    state.run("report", fingerprint(["report", k_audit]), audit_stage.REPORT_FILES, lambda: audit_stage.write_report(run_dir))
    cache.close()
    return p("report.html")
