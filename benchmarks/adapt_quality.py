"""Does adaptation pay? `retable adapt --corpus` with default settings (embedded SmolLM2) on each
collection, then every system on the collection's real queries, with paired-bootstrap 95% intervals over
queries; the seconds of each stage; the table's size; and, with --ablation, the table retrained on the
same run without each training-signal source and with other teachers.

    .venv/bin/python benchmarks/adapt_quality.py scifact nfcorpus cisi npl --ablation

Run folders are runs/quality-<name> (resumable: finished stages and LLM replies are reused). Writes
benchmarks/results/adapt_quality.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, RETABLE, ROOT  # noqa: E402

from retable.adapters.artifact import artifact_bytes, index_bytes  # noqa: E402
from retable.evals.evaluate import evaluate_run  # noqa: E402
from retable.metrics import per_query_ndcg  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402

ENCODER_PARAMS = 22_713_216
SYSTEMS = ["bm25", "frozen_flat", "frozen_pq", "adapted", "frozen_hybrid", "adapted_hybrid"]


def paired_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a − b (nDCG points ×100) and its paired-bootstrap 95% interval over queries."""
    diff = (a - b) * 100
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=2000, random_state=0, method="percentile").confidence_interval
    return round(float(diff.mean()), 2), round(float(ci.low), 2), round(float(ci.high), 2)


def adapt(name: str, tag: str, extra: list[str]) -> tuple[Path, float]:
    data, run_dir = DATASETS / name, ROOT / "runs" / f"quality-{name}{tag}"
    start = time.perf_counter()
    subprocess.run([*RETABLE, "adapt", str(data / "description.txt"), "--corpus", str(data / "corpus.jsonl"), "--out", str(run_dir), *extra],
                   check=True)
    return run_dir, time.perf_counter() - start


def run_dataset(name: str, ablation: bool, tag: str = "", extra: list[str] | None = None) -> dict:
    run_dir, wall = adapt(name, tag, extra or [])
    data = DATASETS / name
    runs: dict = {}
    systems = evaluate_run(run_dir, data, runs=runs, log=lambda m: print(m, file=sys.stderr))
    _, _, qrels = load_beir(data, log=lambda m: None)
    judged = {q: qrels[q] for q in runs["frozen_flat"]}
    per_q = {s: per_query_ndcg(judged, runs[s]) for s in runs}
    best_ref = max(("bm25", "frozen_flat"), key=lambda s: per_q[s].mean())
    manifest = json.loads((run_dir / "manifest.json").read_text())["stages"]
    teacher, tune = json.loads((run_dir / "teacher.json").read_text()), json.loads((run_dir / "tune.json").read_text())
    row = {
        "dataset": name, "queries": len(judged), "adapt_wall_seconds": round(wall, 1),
        "stage_seconds": {k: v["seconds"] for k, v in manifest.items()},
        "systems": {s: round(m["ndcg@10"] * 100, 2) for s, m in systems.items()},
        "recall@100": {s: round(m["recall@100"] * 100, 2) for s, m in systems.items()},
        "adapted_minus_flat": paired_ci(per_q["adapted"], per_q["frozen_flat"]),
        "hybrid_minus_best_reference": paired_ci(per_q["adapted_hybrid"], per_q[best_ref]), "best_reference": best_ref,
        "table_share_in_hybrid": paired_ci(per_q["adapted_hybrid"], per_q["frozen_hybrid"]),
        "table_parameters": systems["adapted"]["trainable_parameters"],
        "artifact_bytes": artifact_bytes(run_dir / "adapter"), "index_bytes": index_bytes(run_dir / "adapter"),
        "teacher_weight": teacher["weight"], "teacher_rule": teacher.get("rule", "minmax"), "teacher_chosen_on": teacher["chosen_on"],
        "llm_query_evidence": {k: teacher.get(k) for k in ("label_queries", "mrr_by_weight", "rule_mrr", "best_fixed_minus_rule")},
        "best_epoch": tune["best_epoch"], "strength": tune.get("strength"), "strength_interval": tune.get("strength_interval"),
        "train_queries_by_format": tune["train_queries_by_format"],
    }
    if ablation:
        from ablation import ablate

        row["ablation"] = ablate(run_dir, data)
    return row


def print_tables(rows: list[dict]) -> None:
    print(f"\nnDCG@10 ×100 (corpus mode, default settings)\n{'dataset':<10}" + "".join(f"{s:>15}" for s in SYSTEMS)
          + f"{'adapted−flat [95% CI]':>26}{'hybrid−best ref':>24}{'table share in hybrid':>26}")
    for r in rows:
        a, h, t = r["adapted_minus_flat"], r["hybrid_minus_best_reference"], r["table_share_in_hybrid"]
        print(f"{r['dataset']:<10}" + "".join(f"{r['systems'][s]:>15.2f}" for s in SYSTEMS)
              + "".join(f"{x[0]:>+10.2f} [{x[1]:+.2f}, {x[2]:+.2f}]" for x in (a, h, t)))
    mean = {s: np.mean([r["systems"][s] for r in rows]) for s in SYSTEMS}
    print(f"{'average':<10}" + "".join(f"{mean[s]:>15.2f}" for s in SYSTEMS))
    print("\nseconds per stage")
    stages = list(rows[0]["stage_seconds"])
    print(f"{'dataset':<10}" + "".join(f"{s[:11]:>12}" for s in stages) + f"{'wall':>9}")
    for r in rows:
        print(f"{r['dataset']:<10}" + "".join(f"{r['stage_seconds'].get(s, 0):>12.1f}" for s in stages) + f"{r['adapt_wall_seconds']:>9.1f}")
    for r in rows:
        print(f"{r['dataset']}: table {r['table_parameters']:,} parameters ({r['table_parameters'] / ENCODER_PARAMS:.2%} of the encoder), "
              f"adapter {r['artifact_bytes']:,} bytes, item index {r['index_bytes']:,} bytes; fusion {r['teacher_rule']} {r['teacher_weight']} "
              f"({r['teacher_chosen_on']}), best epoch {r['best_epoch']}, strength {r['strength']} {r['strength_interval']}; "
              f"LLM queries: {r['llm_query_evidence']}")
        for variant, v in r.get("ablation", {}).items():
            print(f"    {variant:<28} adapted {v['adapted']:6.2f}  hybrid {v['adapted_hybrid']:6.2f}  (epoch {v['best_epoch']}, "
                  f"{v['train_queries']} queries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="names under ../shared/datasets")
    parser.add_argument("--ablation", action="store_true", help="retrain the table without each source and with other teachers")
    parser.add_argument("--tag", default="", help="a suffix of the run folders (runs/quality-<name>-<tag>) and of the results file")
    parser.add_argument("--adapt-args", default="", help="extra `retable adapt` options, e.g. '--encoder-backend torch'")
    args = parser.parse_args()
    tag = f"-{args.tag}" if args.tag else ""
    rows = [run_dataset(name, args.ablation, tag, args.adapt_args.split()) for name in args.datasets]
    print_tables(rows)
    out = ROOT / "benchmarks" / "results" / f"adapt_quality{tag}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
