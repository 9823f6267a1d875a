"""LangChain: `RetableEmbeddings` (the adapter's vectors, for any LangChain vector store) and
`RetableRetriever` (retable's own search over a run's items, hybrid by default, as `Document`s).

    >>> from retable.serving.langchain import RetableEmbeddings, RetableRetriever   # doctest: +SKIP
    >>> store = InMemoryVectorStore.from_texts(texts, RetableEmbeddings("runs/demo"))
    >>> chain = RetableRetriever(path="runs/demo", k=5) | (lambda docs: [d.id for d in docs])
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import PrivateAttr


class RetableEmbeddings(Embeddings):
    """Documents through the adapter's item side, queries through its query side (the same function for
    the default table); rows are L2-normalized there, so cosine and inner product rank alike."""

    def __init__(self, path: str, encoder_backend: str | None = None):
        from retable.serving.text_vectors import load_text_vectors

        self.vectors = load_text_vectors(path, encoder_backend)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.vectors.documents(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.vectors.queries([text])[0].tolist()


class RetableRetriever(BaseRetriever):
    """`retable search` as a retriever: `path` a run or adapter folder, `k` items, `hybrid` None for the
    adapter's default (BM25 fused with the table), `db` a LanceDB folder written for the adapter. Each
    `Document` has the item's id, its indexed text and `metadata["score"]`."""

    path: str
    k: int = 10
    hybrid: bool | None = None
    db: str | None = None
    _index: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        from retable.serving.load import load_adapter

        self._index = load_adapter(self.path, db=self.db)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self._index.search(query, self.k, hybrid=self.hybrid)
        texts = self._index.texts([item_id for item_id, _ in hits])
        return [Document(id=item_id, page_content=text, metadata={"id": item_id, "score": score}) for (item_id, score), text in zip(hits, texts)]
