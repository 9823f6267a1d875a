"""Description-only adapters on the real collections: `retable adapt DESCRIPTION` (default settings,
embedded SmolLM2, nothing of the collection), then `retable eval`, which indexes the collection's items
into the run as `retable index` does (codes refitted to them, the table tuned on their pseudo-queries,
BM25 fused by the prior rule, `peak`: no real query is read) and scores every system on the
real queries, with paired-bootstrap 95% intervals. Then the planted fault: the same run with a `pq` table
on its synthetic-item quantizer (K=4 codes a sub-space), indexed with --keep-codes; the audit's `loss`
check must be red on it and not red on the clean run.

    .venv/bin/python benchmarks/description_only.py scifact nfcorpus cisi npl

Run folders runs/desc-<name> and runs/desc-<name>-planted (resumable). Writes
benchmarks/results/description_only.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from adapt_quality import paired_ci  # noqa: E402
from corpus_mode import DATASETS, RETABLE, ROOT  # noqa: E402

from retable.evals.beir import load_beir  # noqa: E402
from retable.commands.evaluate import eval_run  # noqa: E402
from retable.evals.evaluate import evaluate_run  # noqa: E402
from retable.metrics import per_query_ndcg  # noqa: E402

SYSTEMS = ["bm25", "frozen_flat", "frozen_pq", "adapted", "frozen_hybrid", "adapted_hybrid"]


def loss_line(run_dir: Path) -> dict:
    audit = json.loads((run_dir / "audit.json").read_text())
    found = [f for f in audit["findings"] if f["check"] == "loss"]
    return {"verdict": audit["verdict"], "loss_level": found[0]["level"] if found else None,
            "loss_line": f"{found[0]['level']}: {found[0]['title']} — {found[0]['evidence']}" if found else None,
            "reds": [f"{f['check']}: {f['title']}" for f in audit["findings"] if f["level"] == "red"], "loss": audit.get("loss")}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return round(time.perf_counter() - start, 1)


def run_dataset(name: str) -> dict:
    data, run_dir = DATASETS / name, ROOT / "runs" / f"desc-{name}"
    adapt_s = timed([*RETABLE, "adapt", str(data / "description.txt"), "--out", str(run_dir)])
    runs: dict = {}
    start = time.perf_counter()
    systems = eval_run(run_dir, data, runs=runs, log=lambda m: print(m, file=sys.stderr))
    index_eval_s = round(time.perf_counter() - start, 1)
    _, _, qrels = load_beir(data, log=lambda m: None)
    judged = {q: qrels[q] for q in runs["frozen_flat"]}
    per_q = {s: per_query_ndcg(judged, runs[s]) for s in runs}
    best_ref = max(("bm25", "frozen_flat"), key=lambda s: per_q[s].mean())
    child = json.loads((run_dir / "indexed" / "manifest.json").read_text())["stages"]
    row = {"dataset": name, "queries": len(judged), "adapt_seconds": adapt_s, "index_and_eval_seconds": index_eval_s,
           "index_stage_seconds": {k: v["seconds"] for k, v in child.items()},
           "systems": {s: round(m["ndcg@10"] * 100, 2) for s, m in systems.items()},
           "adapted_minus_flat": paired_ci(per_q["adapted"], per_q["frozen_flat"]),
           "hybrid_minus_best_reference": paired_ci(per_q["adapted_hybrid"], per_q[best_ref]), "best_reference": best_ref,
           "hybrid_rule": systems["adapted_hybrid"].get("hybrid_rule"), "teacher_weight": systems["adapted_hybrid"].get("hybrid_weight"),
           "synthetic": {k: json.loads((run_dir / "tune.json").read_text())[k] for k in ("train_pairs", "best_epoch")},
           "clean": loss_line(run_dir)}
    planted = ROOT / "runs" / f"desc-{name}-planted"
    if not planted.exists():
        shutil.copytree(run_dir, planted)
    subprocess.run([*RETABLE, "adapt", str(data / "description.txt"), "--out", str(planted), "--table-kind", "pq"], check=True)
    subprocess.run([*RETABLE, "index", str(planted), "--corpus", str(data / "corpus.jsonl"), "--keep-codes"], check=True)
    planted_systems = evaluate_run(planted, data, log=lambda m: print(m, file=sys.stderr))
    row["planted"] = {"adapted": round(planted_systems["adapted"]["ndcg@10"] * 100, 2), **loss_line(planted)}
    return row


def print_table(rows: list[dict]) -> None:
    print("\nnDCG@10 ×100, description-only, then the real items indexed (`retable eval`)")
    print(f"{'dataset':<10}" + "".join(f"{s:>16}" for s in SYSTEMS) + f"{'adapted−flat [95%]':>26}{'hybrid−best [95%]':>26}")
    for r in rows:
        a, h = r["adapted_minus_flat"], r["hybrid_minus_best_reference"]
        print(f"{r['dataset']:<10}" + "".join(f"{r['systems'].get(s, float('nan')):>16.2f}" for s in SYSTEMS)
              + f"{f'{a[0]:+.2f} [{a[1]:+.2f}, {a[2]:+.2f}]':>26}{f'{h[0]:+.2f} [{h[1]:+.2f}, {h[2]:+.2f}]':>26}")
    avg = {s: sum(r["systems"][s] for r in rows) / len(rows) for s in SYSTEMS}
    print(f"{'average':<10}" + "".join(f"{avg[s]:>16.2f}" for s in SYSTEMS))
    print("\naudit: clean run (verdict, loss check) | planted tiny-codebook adapter (adapted nDCG, verdict, loss check)")
    for r in rows:
        c, p = r["clean"], r["planted"]
        print(f"{r['dataset']:<10} {c['verdict']:<6} {c['loss_level']:<6} | {p['adapted']:6.2f} {p['verdict']:<6} {p['loss_level']}")
        print(f"    clean:   {c['loss_line']}\n    planted: {p['loss_line']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    rows = [run_dataset(name) for name in args.datasets]
    print_table(rows)
    out = ROOT / "benchmarks" / "results" / "description_only.json"
    out.write_text(json.dumps({"command": "benchmarks/description_only.py " + " ".join(args.datasets), "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
