"""LlamaIndex: `RetableEmbedding`, the adapter's vectors as a `BaseEmbedding` (for `VectorStoreIndex` and
any LlamaIndex vector store).

    >>> from retable.serving.llamaindex import RetableEmbedding                     # doctest: +SKIP
    >>> index = VectorStoreIndex.from_documents(docs, embed_model=RetableEmbedding("runs/demo"))
"""

from __future__ import annotations

from typing import Any

from llama_index.core.embeddings import BaseEmbedding
from pydantic import PrivateAttr


class RetableEmbedding(BaseEmbedding):
    """Texts through the adapter's item side, queries through its query side; rows L2-normalized, so
    LlamaIndex's cosine ranks as the adapter's inner product does."""

    _vectors: Any = PrivateAttr(default=None)

    def __init__(self, path: str, encoder_backend: str | None = None, **kwargs: Any):
        from retable.serving.text_vectors import load_text_vectors

        super().__init__(model_name=f"retable:{path}", **kwargs)
        self._vectors = load_text_vectors(path, encoder_backend)

    @classmethod
    def class_name(cls) -> str:
        return "RetableEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vectors.queries([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vectors.documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._vectors.documents(list(texts)).tolist()
