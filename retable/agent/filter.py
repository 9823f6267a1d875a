"""Stage 4: filter. Keep a pair when the teacher's retrievers find its item: the frozen encoder or
BM25 ranks it in the top k for its query (round-trip consistency, where BM25 brings the pairs the
encoder misses); drop malformed, copied and duplicate queries. Every drop keeps its reason, every kept
pair records who found it."""

from __future__ import annotations

from typing import Callable

import numpy as np

from retable.agent.echo import words
from retable.agent.items import normalize
from retable.records import DroppedPair, Item, Pair, Query
from retable.retrieval.dense import top_k_rows
from retable.retrieval.lexical import bm25_finds

Search = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
MIN_COPY_WORDS = 6  # a query this long found verbatim in its item counts as copied


STEM = 5  # words are compared by their first letters, so "proteins" meets "protein"


def stems(text: str) -> set[str]:
    """The content words of a text (three letters or more), cut to their stems."""
    return {w[:STEM] for w in words(text) if len(w) >= 3 and not w.isdigit()}


def _drop_reason(query: Query, item_text: str, seen: set[str], related: set[str] | None = None) -> str | None:
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
    if related is not None and stems(query.text) and not stems(query.text) & related:
        return "unrelated_to_item"  # shares no word with its item nor the domain: an injected or runaway reply
    return None


def ranks_of_targets(item_emb: np.ndarray, query_emb: np.ndarray, targets: np.ndarray, top_k: int, search: Search | None = None) -> np.ndarray:
    """Each query's rank of its own item: 1 + the number of items scoring strictly higher. A target the
    search returns among its top k is ranked against those candidates (exact for an exact search; for
    IVF-PQ it can only come out better than exact, when the search missed an item that beats it); a
    target it does not return is ranked against every item, so a pair the filter drops has its exact rank."""
    k = min(top_k, len(item_emb))
    if len(query_emb) == 0:
        return np.zeros(0, dtype=np.int64)
    top = search(item_emb, query_emb, k) if search else top_k_rows(item_emb, query_emb, k, ann_threshold=max(len(item_emb), 1))  # default: exact
    ranks = np.empty(len(query_emb), dtype=np.int64)
    for qi, target in enumerate(targets):
        rows = top[qi][top[qi] >= 0]
        if target in rows:
            scores, own = item_emb[rows] @ query_emb[qi], int(np.flatnonzero(rows == target)[0])
        else:
            scores, own = item_emb @ query_emb[qi], int(target)
        ranks[qi] = int((scores > scores[own]).sum()) + 1  # the target's score from the same product: no rounding against itself
    return ranks


def filter_pairs(queries: list[Query], items: list[Item], item_emb: np.ndarray, query_emb: np.ndarray, top_k: int,
                 search: Search | None = None, domain_text: str = "") -> tuple[list[Pair], list[DroppedPair]]:
    """item_emb rows follow `items`; query_emb rows follow `queries`. `search(item_emb, query_emb, k)`
    returns the top-k rows per query (default: retrieval/dense.py; the Ray executor passes its own). A query
    that shares no word with its item nor with `domain_text` (the description and the brief) is dropped."""
    row = {it.id: i for i, it in enumerate(items)}
    targets = np.array([row[q.item_id] for q in queries], dtype=np.int64)
    ranks = ranks_of_targets(item_emb, query_emb, targets, top_k, search)
    lexical = bm25_finds([it.encode_text() for it in items], [q.text for q in queries], targets, top_k)
    texts = {it.id: normalize(it.encode_text()) for it in items}
    kept: list[Pair] = []
    dropped: list[DroppedPair] = []
    seen: set[str] = set()
    domain = stems(domain_text)
    for qi, q in enumerate(queries):
        rank = int(ranks[qi])
        fields = dict(query_id=q.id, query=q.text, item_id=q.item_id, format=q.format, rank=rank)
        reason = _drop_reason(q, texts[q.item_id], seen, stems(texts[q.item_id]) | domain)
        dense = rank <= top_k
        if reason is None and not dense and not lexical[qi]:
            reason = "round_trip_rank"
        if reason:
            dropped.append(DroppedPair(**fields, reason=reason))
        else:
            kept.append(Pair(**fields, found_by="both" if dense and lexical[qi] else "dense" if dense else "bm25"))
    return kept, dropped
