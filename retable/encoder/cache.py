"""A corpus's item embeddings, encoded once: `adapt`, `index` and `eval` on the same corpus file share them
through the run's cache (RunFolder.corpus_cache, keyed by the file's content and the encoder's identity)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from retable.files import copy_file, encode_to_npy, read_cached_npy


def embed_items(encoder, texts: Callable[[], list[str]], n: int, cache: Path | None, out: Path | None = None):
    """The `n` items' embeddings: the cache's when it holds `n` rows, else `texts()` encoded a chunk at a time
    (streaming to disk) and kept in the cache. With `out`, they are written there and nothing is returned;
    without, they are returned in memory."""
    cached = read_cached_npy(cache, n) if cache is not None else None
    if out is None:
        return cached if cached is not None else encode_to_npy(encoder, texts(), cache).copy()
    if cached is not None:
        copy_file(cache, out)
        return None
    encode_to_npy(encoder, texts(), out)
    if cache is not None:
        copy_file(out, cache)
    return None
