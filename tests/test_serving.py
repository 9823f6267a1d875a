"""The adapter served outside retable, through the real libraries: the sentence-transformers export, LangChain
(InMemoryVectorStore, LanceDB's store, the retriever in an LCEL chain), LlamaIndex's VectorStoreIndex and the
LanceDB path of search. Each returns the same top 10 as `load_adapter(RUN).search` on the same queries."""

import numpy as np
import pytest

from retable.serving.load import load_adapter
from retable.errors import UserError

QUERIES = ("a new protein in tumour cells", "vaccine trial in infants", "sleep and memory", "insulin resistance causes obesity")


@pytest.fixture(scope="module")
def served(finished_audit_run):
    index = load_adapter(finished_audit_run)
    return finished_audit_run, index, index.texts(index.ids)


def _same_top(index, query: str, got_ids: list[str], k: int = 10) -> None:
    """`got_ids` is the dense top k of `index` for `query`: the same items, in the same order up to exact ties."""
    want = index.search(query, k, hybrid=False)
    q = index.adapter.query_vectors(index.encoder.encode([query]))[0]
    row = {item_id: i for i, item_id in enumerate(index.ids)}
    got_scores = [float(index._vectors[row[i]] @ q) for i in got_ids]
    assert len(got_ids) == k
    np.testing.assert_allclose(got_scores, [s for _, s in want], atol=1e-5)  # ranked as the native path ranks
    if abs(want[-1][1] - (index.search(query, k + 1, hybrid=False)[-1][1])) > 1e-5:  # no tie at the cut: the same items
        assert set(got_ids) == {i for i, _ in want}


def test_the_sentence_transformers_export_gives_the_adapters_vectors(served, tmp_path):
    from sentence_transformers import SentenceTransformer

    import retable
    from retable.serving.export import export

    run, index, texts = served
    out = retable.export(run, "sentence-transformers", tmp_path / "st")
    model = SentenceTransformer(str(out), device="cpu", trust_remote_code=True, local_files_only=True)
    np.testing.assert_allclose(model.encode(texts, batch_size=16), index._vectors, atol=1e-5)  # items, batched as ST likes
    queries = model.encode(list(QUERIES))
    np.testing.assert_allclose(queries, index.adapter.query_vectors(index.encoder.encode(list(QUERIES))), atol=1e-5)
    for query, q in zip(QUERIES, queries):
        _same_top(index, query, [index.ids[r] for r in np.argsort(-(index._vectors @ q), kind="stable")[:10]])
    again = export(run, "sentence-transformers", out, log=lambda m: None)  # an earlier export is replaced
    assert again == out and (out / "modules.json").is_file()
    model.save(str(tmp_path / "saved"))  # a user's save elsewhere is a whole model too
    resaved = SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True, local_files_only=True)
    np.testing.assert_allclose(resaved.encode(list(QUERIES)), queries, atol=1e-6)


def test_langchain_vector_stores_rank_as_retable(served, tmp_path):
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_lancedb import LanceDB

    from retable.serving.langchain import RetableEmbeddings

    run, index, texts = served
    embeddings = RetableEmbeddings(str(run))
    memory = InMemoryVectorStore(embeddings)
    memory.add_texts(texts, ids=index.ids)
    lance = LanceDB(embedding_function=embeddings, uri=str(tmp_path / "lc-lancedb"), table_name="items")
    lance.add_texts(texts, metadatas=[{"item": i} for i in index.ids], ids=index.ids)  # its Documents carry metadata, not ids
    for query in QUERIES:
        _same_top(index, query, [d.id for d in memory.similarity_search(query, k=10)])
        _same_top(index, query, [d.metadata["item"] for d in lance.similarity_search(query, k=10)])


def test_the_retriever_in_an_lcel_chain_serves_the_hybrid_search(served):
    from langchain_core.runnables import RunnableLambda

    from retable.serving.langchain import RetableRetriever

    run, index, texts = served
    chain = RetableRetriever(path=str(run), k=10) | RunnableLambda(lambda docs: [(d.id, d.metadata["score"], d.page_content) for d in docs])
    text = dict(zip(index.ids, texts))
    for query in QUERIES:
        got = chain.invoke(query)
        want = index.search(query, 10)
        assert [(i, pytest.approx(s, abs=1e-6)) for i, s, _ in got] == want
        assert all(t == text[i] and t for i, _, t in got)


def test_llamaindex_vector_store_index_ranks_as_retable(served):
    from llama_index.core import Document, VectorStoreIndex

    from retable.serving.llamaindex import RetableEmbedding

    run, index, texts = served
    li = VectorStoreIndex.from_documents([Document(text=t, id_=i) for i, t in zip(index.ids, texts)], embed_model=RetableEmbedding(str(run)))
    retriever = li.as_retriever(similarity_top_k=10)
    for query in QUERIES:
        _same_top(index, query, [n.node.ref_doc_id for n in retriever.retrieve(query)])


def test_the_lancedb_path_searches_as_the_memory_path(served, tmp_path):
    import subprocess
    import sys

    from retable.serving.export import export

    run, index, _ = served
    db = export(run, "lancedb", tmp_path / "db", log=lambda m: None)
    on_disk = load_adapter(run, db=db)
    for query in QUERIES:
        for hybrid in (True, False):
            got, want = on_disk.search(query, 10, hybrid=hybrid), index.search(query, 10, hybrid=hybrid)
            assert [i for i, _ in got] == [i for i, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    cli = subprocess.run([sys.executable, "-m", "retable.cli", "search", str(run), QUERIES[0], "--db", str(db), "-k", "3"], capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert [line.split()[2] for line in cli.stdout.splitlines()] == [i for i, _ in index.search(QUERIES[0], 3)]
    import lancedb

    fts = [ix for ix in lancedb.connect(str(db)).open_table("items").list_indices() if ix.index_type == "FTS"]
    assert [ix.columns for ix in fts] == [["text"]]  # the database's own hybrid search has the texts
    with pytest.raises(UserError, match="written whole"):
        on_disk.add([{"id": "new", "text": "a new item"}])


class _Table:
    def __init__(self, kind, collision=None):
        self.kind, self.collision = kind, collision


class _Adapter:
    folder = "adapter"

    def __init__(self, table):
        self.table = table


@pytest.mark.parametrize("table, symmetric, message", [
    (_Table("pq"), True, "--table-kind pq_residual"),
    (_Table("query_linear"), True, "--table-kind pq_residual"),
    (_Table("pq", collision=np.zeros((3, 4))), False, "3 colliding items"),
])
def test_tables_that_are_no_function_of_the_text_are_refused_in_one_line(table, symmetric, message):
    from retable.serving.text_vectors import check_text_function

    with pytest.raises(UserError, match=message):
        check_text_function(_Adapter(table), symmetric=symmetric)
    check_text_function(_Adapter(_Table("pq_residual")), symmetric=True)  # the default kind passes
