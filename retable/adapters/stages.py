"""The `codes` and `tune` stages of `retable adapt`: they read and write the run folder's adapter/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from retable.adapters.quantizer import centroids, choose_nbits, item_codes, load_quantizer, save_quantizer, train_pq
from retable.adapters.split import split_by_item
from retable.adapters.table import PQTable
from retable.adapters.tune import tune_table
from retable.config import RunConfig
from retable.files import read_npy, write_json, write_npy
from retable.records import Item, Pair, Query

ADAPTER_FORMAT_VERSION = 1


def build_codes(run_dir: Path, items: list[Item], item_emb: np.ndarray, config: RunConfig) -> None:
    nbits = choose_nbits(len(items), config.pq_nbits)
    index = train_pq(item_emb, config.pq_m, nbits, config.seed)
    (run_dir / "adapter").mkdir(exist_ok=True)
    save_quantizer(index, run_dir / "adapter/quantizer.faiss")
    write_npy(run_dir / "adapter/codes.npy", item_codes(index, item_emb).astype(np.int32))
    write_json(run_dir / "adapter/item_ids.json", [it.id for it in items])


def tune(run_dir: Path, items: list[Item], queries: list[Query], query_emb: np.ndarray, kept: list[Pair], encoder, config: RunConfig) -> None:
    splits = split_by_item(kept, config.val_fraction, config.test_fraction, config.seed)
    write_json(run_dir / "splits.json", {name: [p.query_id for p in ps] for name, ps in splits.items()})
    q_row = {q.id: i for i, q in enumerate(queries)}
    i_row = {it.id: i for i, it in enumerate(items)}

    def arrays(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
        rows = [q_row[p.query_id] for p in pairs]
        return query_emb[rows].reshape(len(rows), -1), np.array([i_row[p.item_id] for p in pairs], dtype=np.int64)

    index = load_quantizer(run_dir / "adapter/quantizer.faiss")
    codes = read_npy(run_dir / "adapter/codes.npy").astype(np.int64)
    table = PQTable(centroids(index))
    before = encoder.checksum()
    bar = tqdm(total=config.epochs, desc="tune", unit="epoch")
    result = tune_table(
        table, codes, *arrays(splits["train"]), *arrays(splits["val"]),
        epochs=config.epochs, patience=config.patience, lr=config.lr, tau=config.tau, batch_size=config.batch_size,
        hard_negatives=config.hard_negatives, seed=config.seed,
        progress=lambda epoch, h: (bar.update(1), bar.set_postfix(val_mrr=f"{h['val_mrr@10']:.3f}")),
    )
    bar.close()
    after = encoder.checksum()
    table.save(run_dir / "adapter/table.safetensors")
    write_json(run_dir / "adapter/adapter.json", {
        "format_version": ADAPTER_FORMAT_VERSION,
        "encoder": config.encoder,
        "encoder_dim": int(query_emb.shape[1]),
        "encoder_checksum": before,
        "table_kind": table.kind,
        "pq_m": int(index.pq.M),
        "pq_nbits": int(index.pq.nbits),
        "pq_k": int(index.pq.ksub),
        "n_items": len(items),
    })
    write_json(run_dir / "tune.json", {
        "best_epoch": result.best_epoch,
        "initial_val_mrr": result.initial_val_mrr,
        "best_val_mrr": result.best_val_mrr,
        "seconds": round(result.seconds, 3),
        "history": result.history,
        "encoder_checksum_before": before,
        "encoder_checksum_after": after,
        "train_pairs": len(splits["train"]),
        "val_pairs": len(splits["val"]),
    })
