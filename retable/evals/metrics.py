"""nDCG@10 and Recall@100 with pytrec_eval (trec_eval's own implementation)."""

from __future__ import annotations

import numpy as np

MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100"}


def search(item_vecs: np.ndarray, query_vecs: np.ndarray, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search with faiss: (scores, rows), each (n_queries, k). Measurements stay
    exact at any size; serving and the filter switch to IVF-PQ (search_index)."""
    from retable.search_index import top_k

    return top_k(item_vecs, query_vecs, k, ann_threshold=max(len(item_vecs), 1))


def rows_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of the first k rows that two rankings of the same queries have in common.

    >>> rows_overlap(np.array([[1, 2, 3]]), np.array([[3, 1, 9]]), k=2)
    0.5
    """
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


def to_run(query_ids: list[str], item_ids: list[str], scores: np.ndarray, rows: np.ndarray) -> dict[str, dict[str, float]]:
    return {qid: {item_ids[r]: float(s) for s, r in zip(scores[i], rows[i]) if r >= 0} for i, qid in enumerate(query_ids)}


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over the judged queries."""
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    n = len(qrels)
    return {name: sum(per_query.get(q, {}).get(key, 0.0) for q in qrels) / n for name, key in MEASURES.items()}


def per_query_ndcg(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> np.ndarray:
    """nDCG@10 of every judged query, in sorted query-id order (for paired comparisons)."""
    import pytrec_eval

    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return np.array([per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in sorted(qrels)])
