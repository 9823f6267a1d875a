"""`retable eval`: nDCG@10 and Recall@100 on a BEIR collection for frozen_flat (the encoder, exact
search), frozen_pq (the untuned table = faiss' reconstruction) and adapted (the tuned table). The
collection's items get codes from the run's quantizer; nothing is retrained."""

from __future__ import annotations

import json
from pathlib import Path

from retable.adapters.quantizer import item_codes, load_quantizer, reconstruct
from retable.adapters.table import PQTable
from retable.errors import UserError
from retable.evals.beir import load_beir
from retable.evals.metrics import evaluate, search, to_run
from retable.files import fingerprint, read_npy, sha256_file, write_npy


def load_run_adapter(run_dir: Path) -> tuple[dict, object, PQTable]:
    meta_path = run_dir / "adapter" / "adapter.json"
    if not meta_path.is_file():
        raise UserError(f"{run_dir} holds no finished adapter (adapter/adapter.json) — run `retable adapt ... --out {run_dir}` first")
    meta = json.loads(meta_path.read_text())
    return meta, load_quantizer(run_dir / "adapter/quantizer.faiss"), PQTable.load(run_dir / "adapter/table.safetensors")


def corpus_cache_path(run_dir: Path, corpus: Path, encoder_checksum: str) -> Path:
    """Where the encoder's embeddings of a corpus file are kept, so each corpus is encoded once."""
    return run_dir / "eval_cache" / f"{fingerprint([sha256_file(corpus), encoder_checksum])}.npy"


def evaluate_run(run_dir: Path, dataset: Path, log=print) -> dict[str, dict[str, float]]:
    from retable.adapters.encoder import Encoder

    meta, index, table = load_run_adapter(run_dir)
    corpus, queries, qrels = load_beir(dataset)
    encoder = Encoder(meta["encoder"])
    if encoder.checksum() != meta["encoder_checksum"]:
        raise UserError(f"the adapter in {run_dir} was built for other weights of encoder {meta['encoder']} (checksum differs) — rebuild it with this encoder")
    cache = corpus_cache_path(run_dir, dataset / "corpus.jsonl", meta["encoder_checksum"])
    if cache.is_file():
        item_emb = read_npy(cache)
    else:
        log(f"encoding {len(corpus)} items of {dataset.name} (cached for later evals)")
        item_emb = encoder.encode([it.encode_text() for it in corpus], progress=True)
        write_npy(cache, item_emb)
    qids = sorted(queries)
    q_emb = encoder.encode([queries[q] for q in qids])
    item_ids = [it.id for it in corpus]
    systems = {
        "frozen_flat": item_emb,
        "frozen_pq": reconstruct(index, item_emb),
        "adapted": table.vectors(item_codes(index, item_emb)),
    }
    judged = {q: qrels[q] for q in qids}
    return {name: evaluate(judged, to_run(qids, item_ids, *search(vecs, q_emb, 100))) for name, vecs in systems.items()}
