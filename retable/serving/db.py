"""The adapter's item vectors in LanceDB: one embedded, on-disk table per adapter (`retable export RUN
--to lancedb DB`, or `retable index ... --db DB`), read by `retable search --db DB` and
`load_adapter(RUN, db=DB)`.

LanceDB, because it is embedded (a folder, no server), keeps vectors on disk and scans them memory-mapped
(a corpus need not fit in memory), and holds vectors and text in one table with its own full-text index,
so users can run its hybrid search on the same table. retable's own search over it keeps the adapter's
fusion: the dense top comes from the database, BM25 from the adapter's index, fused by the adapter's
rule, so it ranks as the in-memory path does. The search is an exact scan (no ANN index is built)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from retable.adapters.artifact import AdapterIndex
from retable.errors import UserError
from retable.runfiles import ADAPTER_FILES

DB_TABLE = "items"
DB_META = "retable_db.json"  # which adapter the table was written for (checksum), and its size
DB_FORMAT = 1
WRITE_BATCH = 8192  # rows per write: a large corpus is not held twice in memory


def _lancedb():
    os.environ.setdefault("LANCE_LOG", "error")  # lance logs a warning for every table it creates
    try:
        import lancedb
    except ImportError:
        raise UserError("the database path needs LanceDB — pip install 'retable[db]'") from None
    return lancedb


def adapter_checksum(folder: Path) -> str:
    from retable.files import fingerprint, sha256_file

    return fingerprint([sha256_file(folder / name) for name in ADAPTER_FILES])


def _open(path: Path, adapter) -> object:
    """The database's table, checked: a LanceDB folder written by retable for this very adapter, whole."""
    import json

    if path.is_file():
        raise UserError(f"--db {path} is a file — give the folder that `retable export RUN --to lancedb DB` wrote")
    meta_path = path / DB_META
    if not meta_path.is_file():
        raise UserError(f"--db {path} holds no retable database — write one with `retable export RUN --to lancedb {path}`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        checksum, n_items = meta["adapter_checksum"], int(meta["n_items"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"--db {path}: {DB_META} is damaged — write the database again with `retable export RUN --to lancedb {path}`") from None
    if checksum != adapter_checksum(adapter.folder):
        raise UserError(f"--db {path} was written for another adapter (checksum {checksum}) — write it again for this one with "
                        f"`retable export RUN --to lancedb {path}`")
    try:
        table = _lancedb().connect(str(path)).open_table(DB_TABLE)
        rows = table.count_rows()
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"--db {path} does not open ({str(exc).splitlines()[0][:100]}) — write "
                        f"it again with `retable export RUN --to lancedb {path}`") from None
    if rows != n_items or n_items != len(adapter.item_ids):
        raise UserError(f"--db {path} holds {rows} items, the adapter {len(adapter.item_ids)} "
                        f"— write it again with `retable export RUN --to lancedb {path}`")
    return table


class DbIndex(AdapterIndex):
    """AdapterIndex whose item vectors stay in the database: the dense top is the database's exact scan, and
    only the candidates' vectors are read for the fusion."""

    def __init__(self, adapter, encoder, path: Path):
        adapter.check_encoder(encoder)
        self.adapter, self.encoder, self.path = adapter, encoder, Path(path)
        self.table = _open(self.path, adapter)
        self.ids = list(adapter.item_ids)
        self.ann_threshold = None
        self._open_hybrid()

    def add(self, items) -> int:
        raise UserError("a database-backed index is written whole: add the items with `retable index`, then export the database again")

    def _dense_top(self, q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        hits = self.table.search(q[0]).distance_type("dot").limit(depth).select(["row", "_distance"]).to_arrow()
        rows = hits["row"].to_numpy().astype(np.int64)
        return (1.0 - hits["_distance"].to_numpy().astype(np.float32))[None], rows[None]  # LanceDB's dot distance is 1 − q·v

    def _fuse(self, dense_top, lexical_top, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The fusion of the in-memory path, on the candidates' vectors read from the database (rows renumbered locally)."""
        from retable.retrieval.fusion import Candidates

        union = np.unique(np.concatenate([dense_top[1][0], lexical_top[1][0]]))
        union = union[union >= 0]
        got = self.table.search().where(f"row IN ({', '.join(str(int(r)) for r in union)})").select(["row", "vector"]).limit(len(union)).to_arrow()
        order = np.argsort(got["row"].to_numpy())
        vecs = np.stack(got["vector"].to_numpy(zero_copy_only=False))[order].astype(np.float32)
        local = lambda rows: np.where(rows >= 0, np.searchsorted(union, rows), -1)  # noqa: E731
        scores, rows = self.fusion.ranked(Candidates.build((dense_top[0], local(dense_top[1])), (lexical_top[0], local(lexical_top[1])), vecs, q), k)
        return scores, np.where(rows >= 0, union[np.clip(rows, 0, None)], -1)

    def texts(self, ids: list[str]) -> list[str]:
        if not ids:
            return []
        quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
        got = self.table.search().where(f"id IN ({quoted})").select(["id", "text"]).limit(len(ids)).to_arrow()
        text = dict(zip(got["id"].to_pylist(), got["text"].to_pylist()))
        return [text.get(i, "") for i in ids]
