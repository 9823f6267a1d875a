"""The `codes` and `tune` stages of `retable adapt`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from retable.adapters.artifact import write_adapter
from retable.adapters.collisions import collision_rate
from retable.adapters.quantizer import Quantizer, choose_nbits
from retable.adapters.split import split_by_item
from retable.adapters.training import Space, train_kind
from retable.config import RunConfig
from retable.files import read_npy, write_json, write_npy
from retable.records import Item, Pair, Query

CODES_FILES = ["codes/quantizer.faiss", "codes/codes.npy"]
TUNE_FILES = ["adapter/table.safetensors", "adapter/adapter.json", "adapter/codes.npy", "tune.json", "splits.json"]


def build_codes(run_dir: Path, items: list[Item], item_emb: np.ndarray, config: RunConfig) -> None:
    nbits = choose_nbits(len(items), config.pq_nbits)
    quantizer = Quantizer.train(item_emb, config.pq_m, nbits, config.seed, kind=config.quantizer)
    (run_dir / "codes").mkdir(exist_ok=True)
    quantizer.save(run_dir / "codes/quantizer.faiss")
    write_npy(run_dir / "codes/codes.npy", quantizer.codes(item_emb).astype(np.int32))


def tune(run_dir: Path, items: list[Item], queries: list[Query], item_emb: np.ndarray, query_emb: np.ndarray,
         kept: list[Pair], encoder, config: RunConfig) -> None:
    splits = split_by_item(kept, config.val_fraction, config.test_fraction, config.seed)
    held = set(config.holdout_formats)  # measured by the audit, never tuned on
    splits["train"] = [p for p in splits["train"] if p.format not in held]
    splits["val"] = [p for p in splits["val"] if p.format not in held]
    write_json(run_dir / "splits.json", {name: [p.query_id for p in ps] for name, ps in splits.items()})
    q_row = {q.id: i for i, q in enumerate(queries)}
    i_row = {it.id: i for i, it in enumerate(items)}
    quantizer = Quantizer.load(run_dir / "codes/quantizer.faiss")
    space = Space.build(quantizer, item_emb, query_emb, codes=read_npy(run_dir / "codes/codes.npy").astype(np.int64))
    train, val = space.pairs(splits["train"], q_row, i_row), space.pairs(splits["val"], q_row, i_row)
    before = encoder.checksum()
    bar = tqdm(total=config.epochs, desc="tune", unit="epoch")
    table, result, n_residuals = train_kind(
        config.table_kind, quantizer, space, train, val, config, collision_limit=config.collision_residuals,
        progress=lambda epoch, h: (bar.update(1), bar.set_postfix(val_mrr=f"{h['val_mrr@10']:.3f}")),
    )
    bar.close()
    after = encoder.checksum()
    write_adapter(run_dir / "adapter", encoder_name=config.encoder, encoder_checksum=before, quantizer=quantizer,
                  table=table, codes=space.codes, item_ids=[it.id for it in items], item_emb=item_emb)
    mass = np.bincount(train.pos, minlength=len(items))
    write_json(run_dir / "tune.json", {
        "table_kind": table.kind,
        "best_epoch": result.best_epoch,
        "initial_val_mrr": result.initial_val_mrr,
        "best_val_mrr": result.best_val_mrr,
        "seconds": round(result.seconds, 3),
        "history": result.history,
        "encoder_checksum_before": before,
        "encoder_checksum_after": after,
        "train_pairs": len(splits["train"]),
        "val_pairs": len(splits["val"]),
        "collision_rate": collision_rate(space.codes),
        "collision_rate_by_query_mass": collision_rate(space.codes, mass),
        "collision_residuals": n_residuals,
    })
