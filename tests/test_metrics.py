import math

import numpy as np
import pytest

from retable.metrics import evaluate, to_run


from retable.retrieval.dense import exact_search


def test_ndcg_and_recall_against_hand_computation():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 1.0}}
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    m = evaluate(qrels, run)
    assert m["ndcg@10"] == pytest.approx((dcg / idcg + 0.0) / 2)
    assert m["recall@100"] == pytest.approx(0.5)


def test_search_returns_best_rows_first():
    items = np.eye(3, dtype=np.float32)
    scores, rows = exact_search(items, np.array([[0.1, 0.9, 0.0]], dtype=np.float32), k=2)
    assert rows.tolist() == [[1, 0]]
    assert to_run(["q"], ["a", "b", "c"], scores, rows) == {"q": {"b": pytest.approx(0.9), "a": pytest.approx(0.1)}}
