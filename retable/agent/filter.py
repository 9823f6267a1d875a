"""Stage 4: filter. Keep a pair when the frozen encoder ranks its item in the top k for its query
(round-trip consistency); drop malformed, copied and duplicate queries. Every drop keeps its reason."""

from __future__ import annotations

import numpy as np

from retable.agent.items import normalize
from retable.records import DroppedPair, Item, Pair, Query

MIN_COPY_WORDS = 6  # a query this long found verbatim in its item counts as copied


def _drop_reason(query: Query, item_text: str, seen: set[str]) -> str | None:
    text = normalize(query.text)
    if len(text) < 3 or len(text.split()) > 64:
        return "malformed"
    if query.copies_prompt:
        return "copied_from_prompt"
    if len(text.split()) >= MIN_COPY_WORDS and text in item_text:
        return "copied_from_item"
    if text in seen:
        return "duplicate"
    seen.add(text)
    return None


def filter_pairs(queries: list[Query], items: list[Item], item_emb: np.ndarray, query_emb: np.ndarray, top_k: int) -> tuple[list[Pair], list[DroppedPair]]:
    """item_emb rows follow `items`; query_emb rows follow `queries`."""
    import faiss

    row = {it.id: i for i, it in enumerate(items)}
    index = faiss.IndexFlatIP(item_emb.shape[1])
    index.add(item_emb)
    k = min(top_k, len(items))
    _, top = index.search(query_emb, k) if len(queries) else (None, np.zeros((0, k), dtype=np.int64))
    texts = {it.id: normalize(it.encode_text()) for it in items}
    kept: list[Pair] = []
    dropped: list[DroppedPair] = []
    seen: set[str] = set()
    for qi, q in enumerate(queries):
        target = row[q.item_id]
        hits = np.flatnonzero(top[qi] == target)
        rank = int(hits[0]) + 1 if len(hits) else int((item_emb @ query_emb[qi] > float(item_emb[target] @ query_emb[qi])).sum()) + 1
        fields = dict(query_id=q.id, query=q.text, item_id=q.item_id, format=q.format, rank=rank)
        reason = _drop_reason(q, texts[q.item_id], seen)
        if reason is None and rank > top_k:
            reason = "round_trip_rank"
        if reason:
            dropped.append(DroppedPair(**fields, reason=reason))
        else:
            kept.append(Pair(**fields))
    return kept, dropped
