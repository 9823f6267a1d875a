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

from retable.adapters.stages import MIN_ITEMS
from retable.commands.run import finished_run_config, open_context, prepare_run_dir, run_audit
from retable.commands.stages import index_stages
from retable.errors import UserError
from retable.files import check_corpus, sha256_file
from retable.runfiles import INDEXED, PSEUDO, ROUND_FILES, TEACHER, RunFolder
from retable.runlock import locked_run
from retable.stage import run_stages


def index_run(run_dir: Path, corpus: Path, *, keep_codes: bool = False, log=print) -> tuple[Path, str]:
    """Index `corpus` into the run (see the module's text) and audit it again; returns the new report and verdict."""
    config = finished_run_config(run_dir)
    n_items = check_corpus(corpus, strict=config.strict, log=log)
    if n_items < MIN_ITEMS:
        raise UserError(f"corpus {corpus} has {n_items} item{'s' if n_items != 1 else ''} — at least {MIN_ITEMS} are needed to fit codes to it")
    parent = RunFolder(run_dir)
    if config.teacher_weight is None and parent.has(TEACHER):  # a parent from before rules: the BM25 share it chose
        config = config.model_copy(update={"teacher_weight": parent.teacher().weight})
    before = parent.index_record()
    if before is not None and before["corpus_sha256"] != sha256_file(corpus):
        log(f"note: the items indexed from {before['corpus']} ({before['n_items']:,}) are replaced by {corpus}'s ({n_items:,}); "
            "search and eval then serve these")
    prepare_run_dir(parent.path(INDEXED))

    def no_llm():
        raise RuntimeError("indexing makes no LLM call")

    with locked_run(run_dir):
        ctx, cache = open_context(parent.path(INDEXED), config, no_llm, log=log, corpus=corpus, parent=parent)
        try:
            ctx.run.write_config(config)
            run_stages(index_stages(keep_codes), ctx, given=frozenset(ROUND_FILES))  # no agent rounds over real items: absent, keyed as absent
            tune = None if keep_codes else ctx.run.tune()
            ctx.run.write_index_record({
                "corpus": str(corpus), "corpus_sha256": sha256_file(corpus), "n_items": n_items, "codes": "kept" if keep_codes else "refit",
                "teacher_weight": config.teacher_weight, "fusion": str(ctx.run.teacher().fusion()),
                                        "best_epoch": None if tune is None else tune.best_epoch,
                "strength": None if tune is None else tune.strength,
                "pseudo_queries": ctx.run.count(PSEUDO),
            })
        finally:
            cache.close()
    return run_audit(run_dir, log=log)
