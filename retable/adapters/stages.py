"""The `codes` and `tune` stages: a quantizer trained on the items' frozen embeddings, and the code
table tuned on the kept pairs into the adapter artifact. The declarations are light (the CLI reads them
for its options); torch and faiss are imported when a stage runs. The encoder's weights are checksummed before
and after tuning: they must not change."""

from __future__ import annotations

from retable.errors import UserError
from retable.runfiles import (ADAPTER, ADAPTER_FILES, ADAPTER_ITEM_EMB, CODES, ITEM_EMB, ITEMS, KEPT, QUANTIZER, QUERIES, QUERY_EMB, ROUND_ITEM_EMB,
                              ROUND_ITEMS, ROUND_QUERIES, ROUND_QUERY_EMB, SPLITS, TUNE, Splits, TuneRecord)
from retable.stage import Context, Stage

MIN_ITEMS = 16  # fewer items cannot train a quantizer


def _codes(ctx: Context) -> None:
    from retable.adapters.quantizer import Quantizer, choose_nbits

    items, item_emb, c = ctx.run.items(), ctx.run.item_emb(), ctx.config
    if len(items) < MIN_ITEMS:
        raise UserError(f"only {len(items)} items — at least {MIN_ITEMS} are needed to train a quantizer; give a larger --corpus or raise items_per_subtopic")
    quantizer = Quantizer.train(item_emb, c.pq_m, choose_nbits(len(items), c.pq_nbits), c.seed, kind=c.quantizer)
    ctx.run.path(QUANTIZER).parent.mkdir(exist_ok=True)
    quantizer.save(ctx.run.path(QUANTIZER))
    ctx.run.write_codes(quantizer.codes(item_emb))


ITEM_FILES = (ITEMS, ITEM_EMB, ROUND_ITEMS, ROUND_ITEM_EMB)
CODES_STAGE = Stage("codes", _codes, writes=(QUANTIZER, CODES), reads=ITEM_FILES, config=("pq_m", "pq_nbits", "quantizer", "seed"))


def _tune(ctx: Context) -> None:
    import numpy as np
    from tqdm import tqdm

    from retable.adapters.artifact import write_adapter
    from retable.adapters.collisions import collision_rate
    from retable.adapters.quantizer import Quantizer
    from retable.adapters.split import split_by_item
    from retable.adapters.training import Space, train_kind

    run, config = ctx.run, ctx.config
    items, queries, kept = run.items(), run.queries(), run.kept()
    if len(kept) < 4:
        raise UserError(f"only {len(kept)} pairs survived the filter — too few to tune; raise max_query_items or filter_top_k")
    splits = split_by_item(kept, config.val_fraction, config.test_fraction, config.seed)
    held = set(config.holdout_formats)  # measured by the audit, never tuned on
    splits["train"] = [p for p in splits["train"] if p.format not in held]
    splits["val"] = [p for p in splits["val"] if p.format not in held]
    run.write_splits(Splits(**{name: [p.query_id for p in ps] for name, ps in splits.items()}))
    q_row = {q.id: i for i, q in enumerate(queries)}
    i_row = {it.id: i for i, it in enumerate(items)}
    quantizer = Quantizer.load(run.path(QUANTIZER))
    item_emb = run.item_emb()
    space = Space.build(quantizer, item_emb, run.query_emb(), codes=run.codes())
    train, val = space.pairs(splits["train"], q_row, i_row), space.pairs(splits["val"], q_row, i_row)
    before = ctx.encoder.checksum()
    with tqdm(total=config.epochs, desc="tune", unit="epoch") as bar:
        table, result, n_residuals = train_kind(config.table_kind, quantizer, space, train, val, config, collision_limit=config.collision_residuals,
                                                progress=lambda epoch, h: (bar.update(1), bar.set_postfix(val_mrr=f"{h['val_mrr@10']:.3f}")))
    write_adapter(run.path(ADAPTER), encoder_name=config.encoder, encoder_checksum=before, quantizer=quantizer,
                  table=table, codes=space.codes, item_ids=[it.id for it in items], item_emb=item_emb)
    mass = np.bincount(train.pos, minlength=len(items))
    run.write_tune(TuneRecord(
        table_kind=table.kind, best_epoch=result.best_epoch, initial_val_mrr=result.initial_val_mrr, best_val_mrr=result.best_val_mrr,
        seconds=round(result.seconds, 3), history=result.history, encoder_checksum_before=before, encoder_checksum_after=ctx.encoder.checksum(),
        train_pairs=len(splits["train"]), val_pairs=len(splits["val"]), collision_rate=collision_rate(space.codes),
        collision_rate_by_query_mass=collision_rate(space.codes, mass), collision_residuals=n_residuals))


TUNE_STAGE = Stage(
    "tune", _tune, writes=(*(f"{ADAPTER}/{f}" for f in ADAPTER_FILES), f"{ADAPTER}/{ADAPTER_ITEM_EMB}", TUNE, SPLITS),
    optional=(f"{ADAPTER}/{ADAPTER_ITEM_EMB}",), reads=(*ITEM_FILES, QUERIES, QUERY_EMB, ROUND_QUERIES, ROUND_QUERY_EMB, KEPT, QUANTIZER, CODES),
    config=("encoder", "seed", "table_kind", "holdout_formats", "collision_residuals", "epochs", "patience", "lr", "tau", "batch_size",
            "hard_negatives", "val_fraction", "test_fraction"))
