"""The per-domain adapter folder and the index built on it.

    adapter/
      adapter.json        encoder id + weight checksum + dim + the path that ran it (encoder_variant), quantizer and table kind, M, K, version
      quantizer.faiss     faiss' own serialisation (no pickle)
      table.safetensors   the tuned table (and collision residuals)
      codes.npy           (n_items, M) codes, uint8 when K <= 256
      item_ids.json       ids of those items
      item_emb.npy        frozen item embeddings, only for kinds that need them (pq_residual, residual, query_linear)
      bm25/               the items' BM25 index and texts (bm25s' files), for hybrid search; adapter.json
                          holds the fusion rule (hybrid_rule, and hybrid_weight for minmax)

    >>> index = load_adapter("runs/demo/adapter")          # doctest: +SKIP
    >>> index.add([{"id": "new-1", "text": "statins and breast cancer"}])  # codes from the frozen encoder
    >>> index.search("do statins help breast cancer patients?", k=5)  # hybrid: BM25 fused with the table
    >>> index.search("statins breast cancer", k=5, hybrid=False)        # the table alone
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from retable.encoder.onnx import TORCH
from retable.adapters.quantizer import Quantizer
from retable.adapters.table import CodeTable
from retable.config import default
from retable.errors import UserError
from retable.files import write_json, write_npy
from retable.records import Item
from retable.runfiles import (ADAPTER, ADAPTER_CODES, ADAPTER_FILES, ADAPTER_IDS, ADAPTER_ITEM_EMB, ADAPTER_LEXICAL, ADAPTER_LEXICAL_FILES,
                              ADAPTER_META, ADAPTER_QUANTIZER,
                              ADAPTER_TABLE)

FORMAT_VERSION = 2
HYBRID_DEPTH = 100  # each retriever's top this many are fused


def write_adapter(folder: Path, *, encoder_name: str, encoder_checksum: str, encoder_variant: str, quantizer: Quantizer, table: CodeTable,
                  codes: np.ndarray, item_ids: list[str], item_emb: np.ndarray, extra: dict | None = None, lexical=None) -> None:
    """Every file of an adapter folder (this module reads them back: `Adapter`, `AdapterIndex`); with `lexical`, the
    items' BM25 index for hybrid search."""
    folder.mkdir(parents=True, exist_ok=True)
    quantizer.save(folder / ADAPTER_QUANTIZER)
    table.save(folder / ADAPTER_TABLE)
    write_npy(folder / ADAPTER_CODES, codes.astype(np.uint8 if quantizer.k <= 256 else np.uint16))
    write_json(folder / ADAPTER_IDS, item_ids)
    if not table.compressed:
        write_npy(folder / ADAPTER_ITEM_EMB, item_emb.astype(np.float32))
    write_json(folder / ADAPTER_META, {
        "format_version": FORMAT_VERSION,
        "encoder": encoder_name,
        "encoder_checksum": encoder_checksum,
        "encoder_variant": encoder_variant,
        "encoder_dim": int(item_emb.shape[1]),
        "quantizer": quantizer.kind,
        "table_kind": table.kind,
        "pq_m": quantizer.m,
        "pq_nbits": quantizer.nbits,
        "pq_k": quantizer.k,
        "n_items": len(item_ids),
        **(extra or {}),
    })
    if lexical is not None:
        lexical.save(folder / ADAPTER_LEXICAL)


LEARNED = (ADAPTER_META, ADAPTER_QUANTIZER, ADAPTER_TABLE)  # what adapts the encoder to the domain, whatever the corpus size


def artifact_bytes(folder: Path) -> int:
    """Bytes of the adapter proper: its settings, quantizer and table."""
    return sum((folder / name).stat().st_size for name in LEARNED if (folder / name).is_file())


def index_bytes(folder: Path) -> int:
    """Bytes of the items' index that grows with the corpus: codes, ids, frozen embeddings, BM25 (any
    retriever over these items stores its like; flat search stores the embeddings alone)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name not in LEARNED)


class Adapter:
    """The adapter's parts, without an encoder: turns frozen embeddings into searchable vectors."""

    def __init__(self, folder: Path, items: bool = True):
        """`items=False`: the learned parts alone (LEARNED), as an exported model ships them: no item ids or codes."""
        from retable.adapters import artifact_check as check

        folder = Path(folder)
        meta_path = folder / ADAPTER_META
        if not meta_path.is_file():
            raise UserError(f"{folder} holds no adapter (adapter.json) — run `retable adapt` first or point at its adapter/ folder")
        self.folder = folder
        missing = [name for name in (ADAPTER_FILES if items else LEARNED) if not (folder / name).is_file()]
        if missing:
            raise UserError(f"adapter {folder} lacks {missing[0]} — {check.REBUILD}")
        self.meta = check.read_meta(meta_path, FORMAT_VERSION)
        self.quantizer = check.read_quantizer(folder / ADAPTER_QUANTIZER, self.meta)
        self.table = check.read_table(folder / ADAPTER_TABLE, self.meta, self.quantizer)
        self.item_ids: list[str] = check.read_item_ids(folder / ADAPTER_IDS, self.meta) if items else []
        self.codes = check.read_codes(folder / ADAPTER_CODES, self.meta, self.quantizer) if items else None
        self.variant: str = self.meta.get("encoder_variant", TORCH)  # adapters from before the onnx-int8 path were made by torch
        self._row = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def item_vectors(self, emb: np.ndarray, ids: list[str] | None = None, codes: np.ndarray | None = None) -> np.ndarray:
        """Vectors of items given their frozen embeddings; `ids` finds their collision residuals."""
        codes = self.quantizer.codes(emb) if codes is None else codes
        rows = None if ids is None else self.rows(ids)
        return self.table.item_vectors(codes, self.quantizer.rotate(emb), rows)

    def rows(self, ids: list[str]) -> np.ndarray:
        """Each id's row in the adapter (for its collision residual); unknown ids get no residual."""
        return np.array([self._row.get(i, len(self._row)) for i in ids], dtype=np.int64)

    def query_vectors(self, q_emb: np.ndarray) -> np.ndarray:
        qcodes = self.quantizer.codes(q_emb) if self.table.uses_query_codes else None
        return self.table.query_vectors(self.quantizer.rotate(q_emb), qcodes)

    def check_encoder(self, encoder) -> None:
        m = self.meta
        if encoder.dim != m["encoder_dim"]:
            raise UserError(f"adapter {self.folder} was built for a {m['encoder_dim']}-dim encoder ({m['encoder']}); {encoder.name} gives "
                            f"{encoder.dim} dims — load the encoder it was built with")
        if encoder.variant != self.variant:
            raise UserError(f"adapter {self.folder} was made with the {self.variant} encoder path; this encoder runs {encoder.variant} — their "
                            f"vectors differ: load it with encoder_backend={self.variant!r}")
        if encoder.checksum() != m["encoder_checksum"]:
            raise UserError(f"adapter {self.folder} was built for other weights of {m['encoder']} (checksum {m['encoder_checksum'][:12]}…) — load "
                            "that encoder or rebuild the adapter")


class AdapterIndex:
    """Search over an adapter's items; new items get codes from the frozen encoder, no retraining."""

    def __init__(self, adapter: Adapter, encoder, ann_threshold: int | None = None):
        adapter.check_encoder(encoder)
        self.adapter, self.encoder = adapter, encoder
        self.ann_threshold = default("ann_threshold") if ann_threshold is None else ann_threshold
        self.ids = list(adapter.item_ids)
        folder = adapter.folder
        from retable.adapters.artifact_check import read_item_emb

        emb_path = folder / ADAPTER_ITEM_EMB
        self._emb = read_item_emb(emb_path, adapter.meta) if emb_path.is_file() else None
        self._codes = adapter.codes
        self._vectors = self._compute(adapter.codes, self._emb, self.ids)
        self._index = None  # built at the first search
        self._open_hybrid()

    def _open_hybrid(self) -> None:
        """The adapter's fusion rule and BM25 index (None for both: an adapter built before hybrid search)."""
        self.fusion = read_fusion(self.adapter)
        self.hybrid_weight = self.fusion.weight if self.fusion else None
        self._lexical = _read_lexical(self.adapter.folder / ADAPTER_LEXICAL, len(self.ids)) if self.fusion is not None else None

    def _compute(self, codes: np.ndarray, emb: np.ndarray | None, ids: list[str]) -> np.ndarray:
        a = self.adapter
        if emb is None:  # pq / vq need only the codes
            if not a.table.compressed:
                raise UserError(f"adapter {a.folder} lacks item_emb.npy, which a {a.table.kind} table needs — rebuild it")
            emb = np.zeros((len(codes), a.quantizer.dim), dtype=np.float32)
        return a.table.item_vectors(codes, a.quantizer.rotate(emb), a.rows(ids))

    def add(self, items: Iterable[Item | dict]) -> int:
        """Add items (Item, or dicts with id and text [and title], checked as --corpus lines are: an id not
        already in the index, a title or a text); returns how many were added. A bad item adds none."""
        from retable.files import corpus_item

        seen = set(self.ids)
        batch = [corpus_item(it.model_dump() if isinstance(it, Item) else it, f"item {n} given to add()", seen) for n, it in enumerate(items)]
        if not batch:
            return 0
        emb = self.encoder.encode([it.encode_text() for it in batch])
        codes = self.adapter.quantizer.codes(emb)
        ids = [it.id for it in batch]
        self._vectors = np.vstack([self._vectors, self._compute(codes, emb, ids)])
        self.ids.extend(ids)
        self._index = None
        if self._lexical is not None:
            self._lexical = self._lexical.extended([it.encode_text() for it in batch])
        return len(batch)

    @property
    def hybrid(self) -> bool:
        """Whether search fuses BM25 with the table (adapters built before hybrid search have no BM25 index)."""
        return self._lexical is not None

    def search(self, query: str, k: int = 10, hybrid: bool | None = None) -> list[tuple[str, float]]:
        """The k best items. Dense: the table's inner products, exact up to `ann_threshold` items, IVF-PQ
        (built once) re-scored above. Hybrid (the default where the adapter has BM25): BM25 and the dense
        scores over their top HYBRID_DEPTH each, fused by the adapter's rule (retrieval/fusion.py; scores 0..1)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"k must be a positive number of items, not {k!r}")
        if not isinstance(query, str) or not query.strip():
            raise UserError("the query is empty — search for some words")
        hybrid = self.hybrid if hybrid is None else hybrid
        if hybrid and not self.hybrid:
            raise UserError(f"adapter {self.adapter.folder} has no BM25 index for hybrid "
                            "search — rebuild it with retable adapt (the run folder resumes)")
        q = self.adapter.query_vectors(self.encoder.encode([query]))
        depth = min(max(k, HYBRID_DEPTH) if hybrid else k, len(self.ids))
        scores, rows = self._dense_top(q, depth)
        if hybrid:
            scores, rows = self._fuse((scores, rows), self._lexical.top([query], depth), q, k)
        return [(self.ids[r], float(s)) for s, r in zip(scores[0][:k], rows[0][:k]) if r >= 0]

    def _dense_top(self, q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        from retable.retrieval.dense import build
        from retable.retrieval.dense import search as index_search

        if self._index is None:
            self._index = build(self._vectors, ann_threshold=self.ann_threshold)
        return index_search(self._index, self._vectors, q, depth)

    def _fuse(self, dense_top, lexical_top, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from retable.retrieval.fusion import Candidates

        return self.fusion.ranked(Candidates.build(dense_top, lexical_top, self._vectors, q), k)

    def texts(self, ids: list[str]) -> list[str]:
        """The items' texts as BM25 indexed them ("" where the adapter keeps none: one built without hybrid search)."""
        if self._lexical is None:
            return ["" for _ in ids]
        row = {item_id: i for i, item_id in enumerate(self.ids)}
        return [self._lexical.texts[row[i]] if i in row else "" for i in ids]


def read_fusion(adapter: Adapter):
    """The adapter's fusion rule, checked (None: an adapter built before hybrid search); a tampered one is one line."""
    from retable.retrieval.fusion import Fusion

    try:
        return Fusion.from_meta(adapter.meta)
    except (ValueError, TypeError) as exc:
        raise UserError(f"adapter {adapter.folder}/adapter.json has an invalid fusion ({exc}) "
                        "— rebuild it with retable adapt (the run folder resumes)") from None


def _read_lexical(folder: Path, n_items: int):
    """The adapter's BM25 index, checked: present (its manifest names a fusion), readable, and answering a query."""
    from retable.retrieval.lexical import Lexical

    missing = [f for f in ADAPTER_LEXICAL_FILES if not (folder.parent / f).is_file()]
    if missing:
        raise UserError(f"adapter {folder.parent} fuses BM25 but lacks {missing[0]} — rebuild it with retable adapt (the run folder resumes)")
    try:
        lexical = Lexical.load(folder)
        lexical.top([" ".join(lexical.texts[0].split()[:8])], 1)  # a damaged index fails here, not at the user's first search
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"adapter BM25 index {folder} is damaged ({str(exc).splitlines()[0][:80]}) "
                        "— rebuild it with retable adapt (the run folder resumes)") from None
    if lexical.n_items != n_items:
        raise UserError(f"adapter BM25 index {folder} holds {lexical.n_items} items, the adapter "
                        f"{n_items} — rebuild it with retable adapt (the run folder resumes)")
    return lexical


def adapter_folder(path: str | Path) -> Path:
    """The adapter a path names: an adapter folder, or a run folder's (indexed/adapter/ once `retable index` ran)."""
    folder = Path(path)
    if (folder / ADAPTER / ADAPTER_META).is_file():
        from retable.runfiles import RunFolder

        folder = RunFolder(folder).shipped_adapter()
    return folder
