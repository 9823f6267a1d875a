"""Feedback from the search's own top items (issue 26, item 3): does moving each query toward the items the
hybrid ranks first (dense Rocchio pseudo-relevance feedback) give a teacher stronger than the student, or a
better served search? And do tables tuned with other seeds, averaged, carry more than one? On finished
adapt_quality run folders (runs/quality-<name><tag>), measured on each collection's real queries:

1. At search: the query vector plus beta x the mean vector of the served hybrid's top m items, searched again
   (dense) and fused with BM25 by the run's rule, for the frozen encoder and for the run's table (retrained:
   the same table). m in 1, 2, 3, 5; beta in 0.25 ... 2. Leave-one-collection-out: (m, beta) chosen on three
   collections' served nDCG@10, judged on the fourth against no feedback (paired 95% interval).
2. As the teacher: every training query (LLM and pseudo-queries) moved the same way before the teacher
   (BM25 fused with the frozen encoder) labels its candidates; the table retrained on those labels, same
   splits and settings. (m, beta) = (3, 0.5) and (3, 1): fixed before any measurement, not chosen.
3. Three tuning seeds: the run's table and two more tuned with other seeds (same labels and splits); their
   item and query vectors averaged.

    .venv/bin/python benchmarks/feedback.py cisi nfcorpus scifact npl --tag=-peak

writes benchmarks/results/feedback<tag>.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ablation import RetrainSetup, retrain_parser  # noqa: E402
from corpus_mode import DATASETS, ROOT  # noqa: E402

from retable.adapters.teaching import tune_on_labels  # noqa: E402
from retable.metrics import paired_interval, per_query_ndcg, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.retrieval.fusion import Candidates  # noqa: E402
from retable.retrieval.lexical import Lexical  # noqa: E402
from retable.runfiles import Labels  # noqa: E402

DEPTH = 100
GRID = [(m, b) for m in (1, 2, 3, 5) for b in (0.25, 0.5, 1.0, 2.0)]
TEACHER_FEEDBACK = ((3, 0.5), (3, 1.0))
SEEDS = 3


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def moved(vecs: np.ndarray, q: np.ndarray, rows: np.ndarray, m: int, beta: float) -> np.ndarray:
    """Each query plus beta x the mean vector of its top m ranked items (rows best first, -1 pads)."""
    top = rows[:, :m]
    got = top >= 0
    mean = (vecs[np.where(got, top, 0)] * got[..., None]).sum(axis=1) / np.maximum(got.sum(axis=1), 1)[:, None]
    return unit(q + beta * mean)


def served(s: RetrainSetup, vecs: np.ndarray, q: np.ndarray, k: int, lexical) -> tuple[tuple, tuple]:
    """(dense top k, the hybrid's top k) of these vectors, fused with BM25 by the run's rule."""
    dense = exact_search(vecs, q, k)
    return dense, s.fusion.ranked(Candidates.build(dense, lexical, vecs, q), k)


def scorer(s: RetrainSetup):
    ev = s._eval
    return lambda top: per_query_ndcg(ev["judged"], to_run(ev["qids"], ev["ids"], *top)) * 100


def at_search(s: RetrainSetup, systems: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Per system and setting ("none" or "m{m} b{beta}"): per-query nDCG@10 x100 of (dense, hybrid)."""
    ev, score, out = s._eval, scorer(s), {}
    for name, (vecs, q) in systems.items():
        dense, hybrid = served(s, vecs, q, DEPTH, ev["lexical"])
        out[name] = {"none": (score(dense), score(hybrid))}
        for m, beta in GRID:
            d2, h2 = served(s, vecs, moved(vecs, q, hybrid[1], m, beta), DEPTH, ev["lexical"])
            out[name][f"m{m} b{beta}"] = (score(d2), score(h2))
    return out


def feedback_labels(s: RetrainSetup, m: int, beta: float) -> Labels:
    """The run's training queries labelled by its teacher after each was moved toward its hybrid top m."""
    k, labels = s.config.teacher_candidates, s.labels
    texts = {p.query_id: p.query for p in s.run.kept()} | {q.id: q.text for q in s.run.pseudo_queries()}
    lexical = Lexical.build([it.encode_text() for it in s.run.items()]).top([texts[i] for i in labels.query_ids], k)
    _, hybrid = served(s, s.item_emb, s.label_emb, k, lexical)
    scores, rows = served(s, s.item_emb, moved(s.item_emb, s.label_emb, hybrid[1], m, beta), k, lexical)[1]
    return Labels(query_ids=labels.query_ids, formats=labels.formats, pos=labels.pos, rows=rows, scores=scores)


def vectors(s: RetrainSetup, table) -> tuple[np.ndarray, np.ndarray]:
    ev = s._eval
    return table.item_vectors(ev["codes"], ev["emb"], ev["item_rows"]), table.query_vectors(ev["q"], ev["qcodes"])


def retrained(s: RetrainSetup) -> dict[str, dict]:
    """nDCG@10 x100 (alone, hybrid) of the tables of parts 2 and 3, and the shipped table's vectors."""
    def tune(labels, seed=0):
        config = s.config.model_copy(update={"seed": s.config.seed + seed})
        return tune_on_labels(config, s.quantizer, s.codes, s.item_emb, labels, s.label_emb, s.where, set())

    score, ev = scorer(s), s._eval
    tables = [tune(s.labels, seed) for seed in range(SEEDS)]
    out = {"vectors": vectors(s, tables[0].table)}
    for m, beta in TEACHER_FEEDBACK:
        t = tune(feedback_labels(s, m, beta))
        dense, hybrid = served(s, *vectors(s, t.table), DEPTH, ev["lexical"])
        out[f"teacher with feedback m{m} b{beta}"] = (score(dense), score(hybrid))
    for i, t in enumerate(tables[1:], 1):
        dense, hybrid = served(s, *vectors(s, t.table), DEPTH, ev["lexical"])
        out[f"seed +{i}"] = (score(dense), score(hybrid))
    each = [vectors(s, t.table) for t in tables]
    dense, hybrid = served(s, unit(sum(v for v, _ in each)), unit(sum(q for _, q in each)), DEPTH, ev["lexical"])
    out[f"{SEEDS} seeds averaged"] = (score(dense), score(hybrid))
    return out


def leave_one_out(per_query: dict[str, dict[str, tuple]]) -> list[dict]:
    """Each fold: the (m, beta) with the best mean served nDCG on the other collections, judged on the held-out one."""
    means = {n: {k: float(v[1].mean()) for k, v in d.items()} for n, d in per_query.items()}
    folds = []
    for held in per_query:
        rest = [n for n in per_query if n != held]
        pick = max(means[held], key=lambda k: (np.mean([means[n][k] for n in rest]), k == "none"))
        a, b = per_query[held][pick][1], per_query[held]["none"][1]
        low, high = paired_interval(a, b)
        folds.append({"held_out": held, "chosen": pick, "served": round(float(a.mean()), 2), "without_feedback": round(float(b.mean()), 2),
                      "difference": [round(float((a - b).mean()), 2), round(low, 2), round(high, 2)]})
    return folds


def main() -> None:
    args = retrain_parser(__doc__).parse_args()
    search, tables = {}, {}
    for name in args.datasets:
        s = RetrainSetup.load(ROOT / "runs" / f"quality-{name}{args.tag}", DATASETS / name)
        r = retrained(s)
        search[name] = at_search(s, {"frozen": (s._eval["emb"], s._eval["q"]), "adapted": r.pop("vectors")})
        tables[name] = {"as shipped": search[name]["adapted"]["none"], **r}
        print(name, "done", flush=True)
    mean = {n: {sys_: {k: [round(float(x.mean()), 2) for x in v] for k, v in d.items()} for sys_, d in per.items()} for n, per in search.items()}
    table_means = {n: {k: [round(float(x.mean()), 2) for x in v] for k, v in d.items()} for n, d in tables.items()}
    names = args.datasets
    print("\n1. feedback at search, nDCG@10 x100; per collection: frozen hybrid / adapted hybrid (served); averages: dense / hybrid;"
          " share = adapted hybrid - frozen hybrid")
    print("| setting | " + " | ".join(names) + " | average frozen | average adapted | share |")
    print("|---|" + "---|" * (len(names) + 3))
    for key in ["none"] + [f"m{m} b{b}" for m, b in GRID]:
        cells = [f"{mean[n]['frozen'][key][1]:.2f} / {mean[n]['adapted'][key][1]:.2f}" for n in names]
        fro = [np.mean([mean[n]["frozen"][key][i] for n in names]) for i in (0, 1)]
        ada = [np.mean([mean[n]["adapted"][key][i] for n in names]) for i in (0, 1)]
        print(f"| {key} | " + " | ".join(cells) + f" | {fro[0]:.2f} / {fro[1]:.2f} | {ada[0]:.2f} / {ada[1]:.2f} | {ada[1] - fro[1]:+.2f} |")
    folds = {s_: leave_one_out({n: search[n][s_] for n in names}) for s_ in ("frozen", "adapted")}
    for s_, rows in folds.items():
        print(f"\nleave-one-collection-out, {s_}: (m, beta) chosen on the other three's served nDCG")
        for r in rows:
            d = r["difference"]
            print(f"  held out {r['held_out']}: {r['chosen']} -> {r['served']:.2f} against {r['without_feedback']:.2f} without: "
                  f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]")
        print(f"  worst fold: {min(r['difference'][0] for r in rows):+.2f}")
    print("\n2-3. the table retrained, nDCG@10 x100 alone / hybrid")
    print("| variant | " + " | ".join(names) + " | average |")
    print("|---|" + "---|" * (len(names) + 1))
    for key in tables[names[0]]:
        vals = [table_means[n][key] for n in names]
        print(f"| {key} | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in vals)
              + f" | {np.mean([v[0] for v in vals]):.2f} / {np.mean([v[1] for v in vals]):.2f} |")
    out = ROOT / "benchmarks" / "results" / f"feedback{args.tag}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "at_search": mean, "leave_one_out": folds, "tables": table_means}, indent=1) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
