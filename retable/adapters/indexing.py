"""`retable index RUN --corpus FILE`: the step a user takes when the real items arrive.

A description-only run learned from a few dozen synthetic items: a quantizer fitted to them has a
handful of codes per sub-space, meaningless for thousands of real items. So the real items get a run
of their own, `RUN/indexed/`, with the same settings: they are encoded (streaming, reusing `retable
eval`'s cache of the same file), pseudo-queries are cut from them, the teacher labels those with BM25 and
the frozen encoder fused at the BM25 share the parent run chose on its synthetic LLM queries (no real
query is needed), the quantizer is fitted to the real items and the table tuned on those labels. Its
adapter is the one `retable search`, `load_adapter(RUN)` and `retable eval` serve from then on, and the
parent's audit is redone to judge it on the real items' held-out pseudo-queries. Every stage resumes.

`keep_codes=True` skips the refit: the parent's quantizer codes the real items and its table is used as
it is (fast; for an adapter whose codes were fitted on a corpus like this one). The audit says what that
costs."""

from __future__ import annotations

from pathlib import Path

from retable.errors import UserError
from retable.files import check_corpus, copy_file, encode_to_npy, read_cached_npy, sha256_file, write_json, write_npy, write_records
from retable.runfiles import (INDEX_RECORD, ADAPTER, ADAPTER_FILES, ADAPTER_ITEM_EMB, ADAPTER_LEXICAL, ADAPTER_LEXICAL_FILES, ADAPTER_QUANTIZER, ADAPTER_TABLE, CODES,
                              DROPPED, INDEXED, ITEM_EMB, ITEMS, KEPT, PSEUDO, QUANTIZER, QUERIES, QUERY_EMB, SPLITS, TEACHER, RunFolder, Splits)
from retable.stage import Context, Stage, run_stages



def _lines(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def _embed(parent: RunFolder):
    """Encode the real items, or take `retable eval`'s embeddings of the same file from the parent's cache."""

    def run(ctx: Context) -> None:
        cache = parent.corpus_cache(ctx.corpus, ctx.encoder.identity())
        if read_cached_npy(cache, _lines(ctx.run.path(ITEMS))) is not None:
            copy_file(cache, ctx.run.path(ITEM_EMB))
            return
        encode_to_npy(ctx.encoder, [it.encode_text() for it in ctx.run.first_items()], ctx.run.path(ITEM_EMB))
        copy_file(ctx.run.path(ITEM_EMB), cache)

    return Stage("embed_items", run, writes=(ITEM_EMB,), reads=(ITEMS,), config=("encoder", "encoder_backend"))


def _no_llm_pairs(ctx: Context) -> None:
    """The real items have no LLM queries: the later stages read empty pair files."""
    import numpy as np

    ctx.run.write_queries([])
    write_npy(ctx.run.path(QUERY_EMB), np.zeros((0, ctx.encoder.dim), dtype=np.float32))
    write_records(ctx.run.path(KEPT), [])
    write_records(ctx.run.path(DROPPED), [])


NO_LLM_PAIRS = Stage("no_llm_pairs", _no_llm_pairs, writes=(QUERIES, QUERY_EMB, KEPT, DROPPED), config=("encoder", "encoder_backend"))


def _kept(parent: RunFolder) -> list[Stage]:
    """The parent's quantizer codes the real items; its table serves them unchanged."""
    src = parent.path(ADAPTER)

    def parts(ctx: Context) -> list[str]:  # the kept quantizer and table key both stages
        return [sha256_file(src / ADAPTER_QUANTIZER), sha256_file(src / ADAPTER_TABLE)]

    def codes(ctx: Context) -> None:
        from retable.adapters.quantizer import Quantizer

        quantizer = Quantizer.load(src / ADAPTER_QUANTIZER)
        ctx.run.path(QUANTIZER).parent.mkdir(exist_ok=True)
        quantizer.save(ctx.run.path(QUANTIZER))
        ctx.run.write_codes(quantizer.codes(ctx.run.item_emb()))

    def table(ctx: Context) -> None:
        from retable.adapters.artifact import Adapter, write_adapter
        from retable.runlock import adapter_lock
        from retable.teacher.lexical import Lexical

        adapter, items = Adapter(src), ctx.run.items()
        t = adapter.table
        t.collision, t.collision_slot = None, t.collision_slot[:0]  # residuals of the parent's items, not these
        lexical = Lexical.build([it.encode_text() for it in items])
        with adapter_lock(ctx.run.path(ADAPTER), write=True):  # readers see the old adapter or this one, never a mix
            write_adapter(ctx.run.path(ADAPTER), encoder_name=adapter.meta["encoder"], encoder_checksum=adapter.meta["encoder_checksum"],
                          encoder_variant=adapter.variant, quantizer=adapter.quantizer, table=t, codes=ctx.run.codes(), item_ids=[it.id for it in items],
                          item_emb=ctx.run.item_emb(), extra=ctx.run.teacher().fusion().meta())
            lexical.save(ctx.run.path(f"{ADAPTER}/{ADAPTER_LEXICAL}"))
        ctx.run.write_splits(Splits(train=[], val=[], test=[]))

    return [Stage("codes_kept", codes, writes=(QUANTIZER, CODES), reads=(ITEM_EMB,), inputs=parts),
            Stage("tune_kept", table, writes=(*(f"{ADAPTER}/{f}" for f in (*ADAPTER_FILES, ADAPTER_ITEM_EMB, *ADAPTER_LEXICAL_FILES)), SPLITS),
                  optional=(f"{ADAPTER}/{ADAPTER_ITEM_EMB}",), reads=(ITEMS, ITEM_EMB, CODES, TEACHER), inputs=parts)]


def index_stages(parent: RunFolder, keep_codes: bool) -> list[Stage]:
    from retable.adapters.stages import CODES_STAGE, TUNE_STAGE
    from retable.agent.stages import CORPUS_ITEMS
    from retable.teacher.stages import PSEUDO_STAGE, TEACHER_STAGE

    head = [CORPUS_ITEMS, _embed(parent), NO_LLM_PAIRS, PSEUDO_STAGE, TEACHER_STAGE]
    return head + (_kept(parent) if keep_codes else [CODES_STAGE, TUNE_STAGE])


def index_run(run_dir: Path, corpus: Path, *, keep_codes: bool = False, log=print) -> tuple[Path, str]:
    """Index `corpus` into the run (see the module's text) and audit it again; returns the new report and verdict."""
    from retable.adapters.stages import MIN_ITEMS
    from retable.pipeline import finished_run_config, open_context, prepare_run_dir
    from retable.runlock import locked_run

    config = finished_run_config(run_dir)
    n_items = check_corpus(corpus, strict=config.strict, log=log)
    if n_items < MIN_ITEMS:
        raise UserError(f"corpus {corpus} has {n_items} item{'s' if n_items != 1 else ''} — at least {MIN_ITEMS} are needed to fit codes to it")
    parent = RunFolder(run_dir)
    if config.teacher_weight is None and parent.has(TEACHER):  # a parent from before rules: the BM25 share it chose
        config = config.model_copy(update={"teacher_weight": parent.teacher().weight})
    child_dir = parent.path(INDEXED)
    before = indexed_record(parent)
    if before is not None and before["corpus_sha256"] != sha256_file(corpus):
        log(f"note: the items indexed from {before['corpus']} ({before['n_items']:,}) are replaced by {corpus}'s ({n_items:,}); "
            "search and eval then serve these")
    prepare_run_dir(child_dir)

    def no_llm():
        raise RuntimeError("indexing makes no LLM call")

    with locked_run(run_dir):
        ctx, cache = open_context(child_dir, config, no_llm, log=log, corpus=corpus)
        try:
            ctx.run.write_config(config)
            run_stages(index_stages(parent, keep_codes), ctx)
            tune = None if keep_codes else ctx.run.tune()
            write_json(ctx.run.path(INDEX_RECORD), {
                "corpus": str(corpus), "corpus_sha256": sha256_file(corpus), "n_items": n_items, "codes": "kept" if keep_codes else "refit",
                "teacher_weight": config.teacher_weight, "fusion": str(ctx.run.teacher().fusion()), "best_epoch": None if tune is None else tune.best_epoch,
                "strength": None if tune is None else tune.strength,
                "pseudo_queries": _lines(ctx.run.path(PSEUDO)),
            })
        finally:
            cache.close()
    from retable.pipeline import run_audit

    return run_audit(run_dir, log=log)


def description_only(run_dir: Path) -> bool:
    """Whether the run's items are synthetic (no --corpus): its adapter must be indexed on real items before it serves them."""
    from retable.records import Item

    run = RunFolder(run_dir)
    if not run.has(ITEMS):
        return False
    with open(run.path(ITEMS), encoding="utf-8") as fh:
        first = fh.readline()
    return bool(first.strip()) and Item.model_validate_json(first).source != "corpus"


def indexed_record(run: RunFolder) -> dict | None:
    import json

    child = run.indexed()
    return json.loads(child.path(INDEX_RECORD).read_text()) if child is not None and child.has(INDEX_RECORD) else None

