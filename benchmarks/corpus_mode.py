"""Corpus mode end to end on ../shared/datasets collections: `retable adapt` with the collection's
description.txt and corpus.jsonl, then `retable eval` on its queries and qrels.

    .venv/bin/python benchmarks/corpus_mode.py scifact nfcorpus --max-query-items 100

Prints a table and writes benchmarks/results/corpus_mode.json. Run folders go to runs/bench-<name>,
so a rerun reuses finished stages and cached LLM calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
RETABLE = [sys.executable, "-m", "retable.cli"]


def adapt_collection(name: str, max_query_items: int) -> tuple[Path, Path, float]:
    """`retable adapt` in corpus mode on one collection; returns (dataset folder, run folder, seconds)."""
    data = DATASETS / name
    run_dir = ROOT / "runs" / f"bench-{name}"
    start = time.perf_counter()
    subprocess.run([*RETABLE, "adapt", str(data / "description.txt"), "--corpus", str(data / "corpus.jsonl"),
                    "--out", str(run_dir), "--max-query-items", str(max_query_items)], check=True)
    return data, run_dir, time.perf_counter() - start


def run_one(name: str, max_query_items: int) -> dict:
    data, run_dir, adapt_s = adapt_collection(name, max_query_items)
    metrics_path = run_dir / "eval.json"
    subprocess.run([*RETABLE, "eval", str(run_dir), "--dataset", str(data), "--json", str(metrics_path)], check=True)
    audit = json.loads((run_dir / "audit.json").read_text())
    return {
        "dataset": name,
        "adapt_seconds": round(adapt_s, 1),
        "kept_pairs": audit["kept"],
        "dropped_pairs": audit["dropped_by_reason"],
        "best_epoch": audit["tuned"]["best_epoch"],
        "metrics": json.loads(metrics_path.read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="names under ../shared/datasets")
    parser.add_argument("--max-query-items", type=int, default=100)
    args = parser.parse_args()
    rows = [run_one(name, args.max_query_items) for name in args.datasets]
    print(f"\n{'dataset':<10} {'pairs':>5} {'epoch':>5} {'flat nDCG':>9} {'pq nDCG':>8} {'adapted':>8} {'adapt s':>8}")
    for r in rows:
        m = r["metrics"]
        print(f"{r['dataset']:<10} {r['kept_pairs']:>5} {r['best_epoch']:>5} {m['frozen_flat']['ndcg@10']:>9.4f} "
              f"{m['frozen_pq']['ndcg@10']:>8.4f} {m['adapted']['ndcg@10']:>8.4f} {r['adapt_seconds']:>8.1f}")
    out = ROOT / "benchmarks" / "results" / "corpus_mode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"max_query_items": args.max_query_items, "runs": rows}, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
