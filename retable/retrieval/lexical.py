"""BM25 over the items (bm25s, English stop words and Snowball stems): the lexical half of the teacher
and of hybrid search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STOPWORDS = "en"


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: list[str], return_ids: bool = True):
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False, return_ids=return_ids)


class Lexical:
    """A BM25 index over item texts, rows in the items' order."""

    def __init__(self, retriever, texts: list[str]):
        self.retriever, self.texts, self.n_items = retriever, texts, len(texts)

    @classmethod
    def build(cls, texts: list[str]) -> "Lexical":
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(_tokenize(texts), show_progress=False)
        return cls(retriever, list(texts))

    def extended(self, texts: list[str]) -> "Lexical":
        """A new index over these items and `texts` after them (BM25's statistics cover all)."""
        return Lexical.build(self.texts + list(texts))

    def top(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k'), k' = min(k, n_items); a query with no known word scores 0 everywhere."""
        k = min(k, self.n_items)
        if not queries:
            return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
        rows, scores = self.retriever.retrieve(_tokenize(queries), k=k, show_progress=False, n_threads=1)
        return np.asarray(scores, dtype=np.float32), np.asarray(rows, dtype=np.int64)

    def scores(self, queries: list[str]) -> np.ndarray:
        """Every item's BM25 score for each query: (n_queries, n_items). For few queries only."""
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)
        tokens = _tokenize(queries, return_ids=False)
        for i, words in enumerate(tokens):
            if words:
                out[i] = self.retriever.get_scores(words)
        return out

    def save(self, folder: Path) -> None:
        """bm25s' own files, with the item texts (so items can be added later)."""
        self.retriever.save(str(folder), corpus=self.texts, show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "Lexical":
        import bm25s

        retriever = bm25s.BM25.load(str(folder), load_corpus=True)
        texts = [row["text"] for row in retriever.corpus]
        retriever.corpus = None
        return cls(retriever, texts)


def bm25_finds(item_texts: list[str], query_texts: list[str], targets: np.ndarray, k: int) -> np.ndarray:
    """Whether BM25 over the items ranks each query's target row in its top k with a score above zero."""
    if not query_texts:
        return np.zeros(0, dtype=bool)
    scores, rows = Lexical.build(item_texts).top(query_texts, k)
    return ((rows == np.asarray(targets)[:, None]) & (scores > 0)).any(axis=1)
