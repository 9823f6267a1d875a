"""An adapter served where users already search: as a sentence-transformers model (`export.py`,
`st_module.py`), a LangChain `Embeddings` and retriever (`langchain.py`), a LlamaIndex embedding
(`llamaindex.py`), and a LanceDB table of its item vectors (`db.py`). `text_vectors.py` is the adapter as a
function of text, which all of them share."""
