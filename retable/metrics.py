"""Every rank metric retable reports, in one place: nDCG@10 and Recall@100 with pytrec_eval (trec_eval's
own implementation) on judged collections; MRR@k, Recall@k and per-query reciprocal ranks on queries
labelled with one item each (the tuning's validation, the audit, the teacher's evidence); and the paired
bootstrap interval every before/after comparison quotes."""

from __future__ import annotations

import numpy as np

MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100"}
K = 10  # the cut of every MRR and reciprocal rank retable reports


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


def rows_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of the first k rows that two rankings of the same queries have in common.

    >>> rows_overlap(np.array([[1, 2, 3]]), np.array([[3, 1, 9]]), k=2)
    0.5
    """
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


def positive_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """0-based rank of each query's positive item. Ties count against: an item that collides with
    others (same codes, same vector) does not win the tie."""
    pos_scores = scores[np.arange(len(positives)), positives]
    return (scores >= pos_scores[:, None]).sum(axis=1) - 1


def recall_at_k(scores: np.ndarray, positives: np.ndarray, k: int = K) -> float:
    """Share of queries whose positive item is among the k highest scores."""
    return float((positive_ranks(scores, positives) < k).mean()) if len(positives) else 0.0


def mrr_at_k(scores: np.ndarray, positives: np.ndarray, k: int = K) -> float:
    """Mean reciprocal rank of the positive, 0 beyond rank k. More sensitive than recall@10 on
    filtered pairs, whose positives all ranked in the frozen top 10 by construction."""
    if not len(positives):
        return 0.0
    ranks = positive_ranks(scores, positives)
    return float(np.where(ranks < k, 1.0 / (ranks + 1), 0.0).mean())


def reciprocal_ranks(rows: np.ndarray, positives: np.ndarray, k: int = K) -> np.ndarray:
    """1/rank of each query's positive row within its first k ranked rows, 0 when absent."""
    hit = rows[:, :k] == positives[:, None]
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0)


def dense_reciprocal_ranks(q: np.ndarray, vecs: np.ndarray, pos: np.ndarray, k: int = K, batch: int = 512) -> np.ndarray:
    """The same for exact inner-product search of `q` over `vecs` (ties counted against the positive), a batch at a time."""
    vecs = np.asarray(vecs, dtype=np.float32)
    ranks = np.concatenate([positive_ranks(np.asarray(q[i:i + batch], dtype=np.float32) @ vecs.T, pos[i:i + batch])
                            for i in range(0, len(q), batch)])
    return np.where(ranks < k, 1.0 / (ranks + 1), 0.0)


def paired_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean(a − b) over paired per-query scores."""
    from scipy.stats import bootstrap

    diff = a - b
    if len(diff) < 2 or np.all(diff == diff[0]):
        return float(diff.mean()), float(diff.mean())
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=1000, random_state=0, method="percentile").confidence_interval
    return float(ci.low), float(ci.high)
