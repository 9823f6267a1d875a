"""Large corpora: the corpus is read as a stream, item vectors are encoded a chunk at a time into a file,
search switches to IVF-PQ above a threshold while the filter's ranks stay exact, and each stage's
peak memory is recorded."""

import json

import numpy as np
import pytest

from retable.agent.filter import ranks_of_targets
from retable.errors import UserError
from retable.metrics import rows_overlap
from retable.files import check_corpus, encode_to_npy, iter_corpus
from retable.retrieval.dense import build, search, top_k, top_k_rows


class CountingEncoder:
    """Stands in for the encoder: deterministic vectors, and the size of every batch it was given."""

    dim = 8

    def __init__(self):
        self.batches: list[int] = []

    def encode(self, texts, progress=False):
        self.batches.append(len(texts))
        rng = [np.random.default_rng(sum(map(ord, t))) for t in texts]
        return np.stack([r.normal(size=self.dim) for r in rng]).astype(np.float32) if texts else np.zeros((0, self.dim), np.float32)


def test_encoding_goes_a_chunk_at_a_time_into_the_file(tmp_path):
    texts = [f"item {i}" for i in range(2500)]
    enc = CountingEncoder()
    out = encode_to_npy(enc, texts, tmp_path / "emb.npy", chunk=1000)
    assert enc.batches == [1000, 1000, 500]
    np.testing.assert_array_equal(np.asarray(out), CountingEncoder().encode(texts))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_the_corpus_is_read_as_a_stream_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(5)) + "{broken\n")
    stream = iter_corpus(path)
    assert next(stream).id == "d0"  # the first item arrives before the bad line is read
    with pytest.raises(UserError, match="line 6 is not valid JSON"):
        list(stream)
    with pytest.raises(UserError, match="line 6"):
        check_corpus(path)
    path.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(5)))
    assert check_corpus(path) == 5


def _vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ivf_pq_above_the_threshold_rescored_exactly_finds_most_of_the_exact_neighbours():
    import faiss

    items, queries = _vectors(20_000), _vectors(200, seed=1)
    assert isinstance(build(items, ann_threshold=50_000), faiss.IndexFlatIP)
    ann = build(items, ann_threshold=10_000)
    assert isinstance(ann, faiss.IndexIVFPQ) and ann.nprobe == 64 and ann.ntotal == 20_000
    exact = top_k(items, queries, 10, ann_threshold=50_000)[1]
    scores, approx = search(ann, items, queries, 10)
    recall = rows_overlap(approx, exact)
    _, raw = ann.search(queries, 10)  # PQ scores alone, no re-scoring
    raw_recall = rows_overlap(raw, exact)
    assert recall > 0.5 and recall > raw_recall  # random vectors are the hardest case for IVF; real ones: benchmarks/scale.py ann
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", items[approx], queries), rtol=1e-5)  # exact scores, best first
    assert (np.diff(scores, axis=1) <= 0).all()


def test_filter_ranks_with_an_approximate_search_are_exact_for_drops_and_never_worse_for_keeps():
    items, queries = _vectors(20_000), _vectors(300, seed=2)
    targets = np.random.default_rng(3).integers(0, len(items), size=len(queries))
    targets[:100] = top_k_rows(items, queries[:100], 1, ann_threshold=50_000)[:, 0]  # a third of the queries have their item first
    exact = ranks_of_targets(items, queries, targets, 10)
    approx = ranks_of_targets(items, queries, targets, 10, lambda i, q, k: top_k_rows(i, q, k, ann_threshold=10_000))
    assert (exact[:100] == 1).all() and (exact[100:] > 10).all()
    np.testing.assert_array_equal(approx[100:], exact[100:])  # drops: ranked against every item
    assert (approx <= exact).all() and np.mean(approx[:100] == 1) > 0.9


def test_the_manifest_records_each_stages_own_peak_memory(tmp_path):
    """A stage that holds 400 MB records a peak 300 MB above the stage after it, which holds nothing: each
    stage's own window, not the process's high-water mark (which cannot fall)."""
    from retable.llm.client import UsageLog
    from retable.runstate import RunState

    state = RunState(tmp_path, UsageLog(), lambda m: None)

    def big():
        block = np.ones(400 * 2**20 // 8)  # 400 MB, every page touched
        (tmp_path / "big.txt").write_text(str(block[-1]))

    state.run("big", "k1", ["big.txt"], big)
    state.run("small", "k2", ["small.txt"], lambda: (tmp_path / "small.txt").write_text("1"))
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert stages["big"]["peak_rss_scope"] == stages["small"]["peak_rss_scope"] == "stage"
    assert stages["big"]["peak_rss_mb"] > stages["small"]["peak_rss_mb"] + 300, stages
