"""The `codes` and `tune` stages: a quantizer trained on the items' frozen embeddings, and the code
table tuned on the teacher's labels (LLM queries and pseudo-queries) into the adapter artifact, with
the items' BM25 index and the teacher's fusion weight for hybrid search. The declarations are light (the CLI reads them
for its options); torch and faiss are imported when a stage runs. The encoder's weights are checksummed before
and after tuning: they must not change."""

from __future__ import annotations

from retable.errors import UserError
from retable.runfiles import (ADAPTER_ITEM_EMB, ADAPTER_OUTPUTS, ADAPTER_QUANTIZER, ADAPTER_TABLE, CODES, ITEM_EMB, ITEMS, KEPT, PSEUDO, PSEUDO_EMB,
                              QUANTIZER, QUERIES, QUERY_EMB, ROUND_ITEM_EMB, ROUND_ITEMS, ROUND_QUERIES, ROUND_QUERY_EMB, SPLITS, TEACHER,
                              TEACHER_LABELS, TUNE, Splits, TuneRecord, in_adapter)
from retable.stage import Context, Stage

MIN_ITEMS = 16  # fewer items cannot train a quantizer


def _codes(ctx: Context) -> None:
    from retable.adapters.quantizer import Quantizer, choose_nbits

    items, item_emb, c = ctx.run.items(), ctx.run.item_emb(), ctx.config
    if len(items) < MIN_ITEMS:
        raise UserError(f"only {len(items)} items — at least {MIN_ITEMS} are needed to train "
                        "a quantizer; give a larger --corpus or raise items_per_subtopic")
    _write_codes(ctx, Quantizer.train(item_emb, c.pq_m, choose_nbits(len(items), c.pq_nbits), c.seed, kind=c.quantizer), item_emb)


def _write_codes(ctx: Context, quantizer, item_emb) -> None:
    """What both codes stages write: the quantizer, and the items' codes under it."""
    ctx.run.write_quantizer(quantizer)
    ctx.run.write_codes(quantizer.codes(item_emb))


ITEM_FILES = (ITEMS, ITEM_EMB, ROUND_ITEMS, ROUND_ITEM_EMB)
CODES_STAGE = Stage("codes", _codes, writes=(QUANTIZER, CODES), reads=ITEM_FILES, config=("pq_m", "pq_nbits", "quantizer", "seed"))


def label_embeddings(run, query_ids):
    """The embedding of each labelled query, LLM-written or pseudo, in the labels' order."""
    import numpy as np

    row = {q.id: i for i, q in enumerate(run.queries())}
    pseudo_row = {q.id: i for i, q in enumerate(run.pseudo_queries())}
    query_emb, pseudo_emb = run.query_emb(), run.pseudo_emb()
    return np.stack([query_emb[row[i]] if i in row else pseudo_emb[pseudo_row[i]] for i in query_ids]) if len(query_ids) else query_emb[:0]


def _ship(ctx: Context, items, codes, item_emb, teacher, **adapter) -> None:
    """What both table stages write: the adapter folder that serves (its items' codes, ids and embeddings, the
    teacher's fusion rule) and the items' BM25 index, under the adapter's lock."""
    from retable.adapters.artifact import write_adapter
    from retable.runlock import adapter_lock
    from retable.retrieval.lexical import Lexical

    lexical = Lexical.build([it.encode_text() for it in items])
    with adapter_lock(ctx.run.adapter_folder(), write=True):  # readers see the old adapter or this one, never a mix
        write_adapter(ctx.run.adapter_folder(), codes=codes, item_ids=[it.id for it in items], item_emb=item_emb,
                      extra=teacher.fusion().meta(), lexical=lexical, **adapter)


def _tune(ctx: Context) -> None:
    from tqdm import tqdm

    from retable.adapters.collisions import collision_rate
    from retable.adapters.quantizer import Quantizer
    from retable.adapters.teaching import run_item_splits, tune_on_labels

    run, config = ctx.run, ctx.config
    items, kept, labels, teacher = run.items(), run.kept(), run.teacher_labels(), run.teacher()
    splits, where = run_item_splits(items, kept, config)
    held = set(config.holdout_formats)  # measured by the audit, never tuned on
    run.write_splits(Splits(**{name: [p.query_id for p in ps if name == "test" or p.format not in held] for name, ps in splits.items()}))
    quantizer, item_emb, codes = Quantizer.load(run.path(QUANTIZER)), run.item_emb(), run.codes()
    before = ctx.encoder.checksum()
    with tqdm(total=config.epochs, desc="tune", unit="epoch") as bar:
        t = tune_on_labels(config, quantizer, codes, item_emb, labels, label_embeddings(run, labels.query_ids), where, held,
                           progress=lambda epoch, h: (bar.update(1), bar.set_postfix(val_loss=f"{h['val_loss']:.3f}")))
    _ship(ctx, items, codes, item_emb, teacher,
          encoder_name=config.encoder, encoder_checksum=before, encoder_variant=config.encoder_backend, quantizer=quantizer, table=t.table)
    r = t.result
    run.write_tune(TuneRecord(
        table_kind=t.table.kind, best_epoch=r.best_epoch, initial_val_mrr=r.initial_val_mrr, best_val_mrr=r.best_val_mrr,
        seconds=round(r.seconds, 3), history=r.history, encoder_checksum_before=before, encoder_checksum_after=ctx.encoder.checksum(),
        train_pairs=t.train_queries, val_pairs=t.val_queries, collision_rate=collision_rate(codes),
        collision_rate_by_query_mass=collision_rate(codes, t.train_mass), collision_residuals=t.collision_residuals,
        train_queries_by_format=t.by_format, hybrid_weight=teacher.weight, hybrid_rule=teacher.rule, strength=r.strength,
                              val_loss_by_strength=r.val_loss_by_strength,
        strength_interval=r.strength_interval, lowest_epoch=r.lowest_epoch, epoch_interval=r.epoch_interval))


TUNE_STAGE = Stage(
    "tune", _tune, version=7,
    writes=(*ADAPTER_OUTPUTS, TUNE, SPLITS), optional=in_adapter(ADAPTER_ITEM_EMB),
    reads=(*ITEM_FILES, QUERIES, QUERY_EMB, ROUND_QUERIES, ROUND_QUERY_EMB, KEPT, PSEUDO, PSEUDO_EMB, TEACHER, TEACHER_LABELS, QUANTIZER, CODES),
    config=("encoder", "encoder_backend", "seed", "table_kind", "holdout_formats", "collision_residuals", "epochs", "patience", "lr", "tau",
            "batch_size",
            "val_fraction", "test_fraction"))


def _parent_adapter(ctx: Context) -> list[str]:
    """What keys the kept stages: the parent's quantizer and table."""
    from retable.files import sha256_file

    return [sha256_file(ctx.parent.adapter_file(ADAPTER_QUANTIZER)), sha256_file(ctx.parent.adapter_file(ADAPTER_TABLE))]


def _codes_kept(ctx: Context) -> None:
    from retable.adapters.quantizer import Quantizer

    _write_codes(ctx, Quantizer.load(ctx.parent.adapter_file(ADAPTER_QUANTIZER)), ctx.run.item_emb())


def _tune_kept(ctx: Context) -> None:
    from retable.adapters.artifact import Adapter

    adapter = Adapter(ctx.parent.adapter_folder())
    t = adapter.table
    t.collision, t.collision_slot = None, t.collision_slot[:0]  # residuals of the parent's items, not these
    run = ctx.run
    _ship(ctx, run.items(), run.codes(), run.item_emb(), run.teacher(),
          encoder_name=adapter.meta["encoder"], encoder_checksum=adapter.meta["encoder_checksum"], encoder_variant=adapter.variant,
          quantizer=adapter.quantizer, table=t)
    ctx.run.write_splits(Splits(train=[], val=[], test=[]))


# `retable index --keep-codes`: the parent's quantizer codes the real items; its table serves them unchanged
CODES_KEPT = Stage("codes_kept", _codes_kept, writes=(QUANTIZER, CODES), reads=(ITEM_EMB,), inputs=_parent_adapter)
TUNE_KEPT = Stage("tune_kept", _tune_kept, writes=(*ADAPTER_OUTPUTS, SPLITS), optional=in_adapter(ADAPTER_ITEM_EMB),
                  reads=(ITEMS, ITEM_EMB, CODES, TEACHER), inputs=_parent_adapter)
