"""Reading an adapter folder without trusting it: every file is parsed with its own library's errors
caught, and checked against adapter.json and the other files (dimensions, code ranges, item counts).
A damaged or tampered file is one UserError naming the file and the fix, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retable.encoder.onnx import BACKENDS, TORCH
from retable.adapters.quantizer import Quantizer
from retable.adapters.table import KINDS, CodeTable, load_table
from retable.errors import UserError
from retable.files import read_npy

REBUILD = "rebuild it with `retable adapt` (the run folder resumes)"
META_TYPES = {"format_version": int, "encoder": str, "encoder_checksum": str, "encoder_dim": int, "table_kind": str, "pq_m": int, "pq_k": int,
              "n_items": int}


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"adapter file {path} {what} — {REBUILD}")


def read_meta(path: Path, version: int) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"is not readable JSON ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(meta, dict):
        raise _bad(path, "is not a JSON object")
    if meta.get("format_version") != version:
        raise UserError(f"adapter {path.parent} has format version {meta.get('format_version')}, this retable reads {version} — {REBUILD}")
    for key, typ in META_TYPES.items():
        if not isinstance(meta.get(key), typ) or isinstance(meta.get(key), bool):
            raise _bad(path, f"lacks {key!r} (a {typ.__name__})")
    if meta["table_kind"] not in KINDS:
        raise _bad(path, f"names an unknown table kind {meta['table_kind']!r}")
    if meta.get("encoder_variant", TORCH) not in BACKENDS:
        raise _bad(path, f"names an unknown encoder path {meta['encoder_variant']!r}")
    return meta


def read_quantizer(path: Path, meta: dict) -> Quantizer:
    import faiss

    try:
        index = faiss.deserialize_index(np.fromfile(str(path), dtype=np.uint8))
    except (OSError, RuntimeError, ValueError):
        raise _bad(path, "is not a faiss index (truncated or damaged)") from None
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if not isinstance(inner, faiss.IndexPQ):
        raise _bad(path, f"holds a faiss {type(inner).__name__}, not a product quantizer")
    q = Quantizer(index)
    if (q.m, q.k, q.dim) != (meta["pq_m"], meta["pq_k"], meta["encoder_dim"]):
        raise _bad(path, f"has M={q.m}, K={q.k}, d={q.dim}, but adapter.json says M={meta['pq_m']}, K={meta['pq_k']}, d={meta['encoder_dim']}")
    return q


def read_table(path: Path, meta: dict, q: Quantizer) -> CodeTable:
    from safetensors import SafetensorError

    try:
        table = load_table(path)
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _bad(path, f"is not a table this retable reads ({str(exc).splitlines()[0][:80]})") from None
    if table.kind != meta["table_kind"]:
        raise _bad(path, f"holds a {table.kind} table, but adapter.json says {meta['table_kind']}")
    want = table.weight_shape(q.m, q.k, q.dim)
    if tuple(table.weight.shape) != want:
        raise _bad(path, f"has weights of shape {tuple(table.weight.shape)}, a {table.kind} table for this quantizer needs {want}")
    proj = getattr(table, "proj", None)
    if proj is not None and tuple(proj.shape) != (want[-1], q.dim):
        raise _bad(path, f"has a projection of shape {tuple(proj.shape)}, this table needs {(want[-1], q.dim)}")
    if not all(bool(np.isfinite(t.detach().numpy()).all()) for t in table.parameters()):
        raise _bad(path, "holds NaN or infinite weights")
    if table.collision is not None:
        slots = table.collision_slot.numpy()
        if (
            tuple(table.collision.shape) != (len(table.collision), q.dim)
            or len(slots) != meta["n_items"]
            or slots.max(initial=-1) >= len(table.collision)
        ):
            raise _bad(path, "has collision residuals that do not match its items")
    return table


def read_codes(path: Path, meta: dict, q: Quantizer) -> np.ndarray:
    try:
        codes = read_npy(path)
    except (OSError, EOFError, ValueError) as exc:
        raise _bad(path, f"is not a readable array ({str(exc).splitlines()[0][:80]})") from None
    if codes.ndim != 2 or codes.shape != (meta["n_items"], q.m) or not np.issubdtype(codes.dtype, np.integer):
        raise _bad(path, f"holds {codes.dtype} codes of shape {codes.shape}; adapter.json needs integers of shape ({meta['n_items']}, {q.m})")
    if codes.size and (codes.min() < 0 or codes.max() >= q.k):
        raise _bad(path, f"holds codes outside 0..{q.k - 1}")
    return codes.astype(np.int64)


def read_item_ids(path: Path, meta: dict) -> list[str]:
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"is not readable JSON ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _bad(path, "is not a list of string ids")
    if len(ids) != meta["n_items"] or len(set(ids)) != len(ids):
        raise _bad(path, f"has {len(ids)} ids ({len(set(ids))} distinct); adapter.json says {meta['n_items']} items")
    return ids


def read_item_emb(path: Path, meta: dict) -> np.ndarray:
    try:
        emb = read_npy(path)
    except (OSError, EOFError, ValueError) as exc:
        raise _bad(path, f"is not a readable array ({str(exc).splitlines()[0][:80]})") from None
    if emb.shape != (meta["n_items"], meta["encoder_dim"]) or not np.isfinite(emb).all():
        raise _bad(path, f"has shape {emb.shape} or non-finite values; adapter.json needs ({meta['n_items']}, {meta['encoder_dim']})")
    return emb
