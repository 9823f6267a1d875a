"""The synthetic-data agent in description-only mode on the four ../shared/datasets descriptions:
what it generated and kept, then `retable eval` of the adapted table on the real collection.

    .venv/bin/python benchmarks/generation.py scifact nfcorpus cisi npl [--model qwen2.5-coder-0.5b]

Per dataset: items and queries generated, the filter's round-trip pass rate, distinct-2 of the
queries, the share of the brief's subtopics with a kept pair, the format mix after filtering, LLM
tokens and seconds, the agent's rounds, nDCG@10 frozen_flat / frozen_pq / adapted, whether a rerun
makes any LLM call, and 10 sample pairs. Run folders: runs/gen-<name>[-<model>] (resumable).
Writes benchmarks/results/generation[-<model>].json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import DATASETS, RETABLE, ROOT  # noqa: E402

FORMATS = "keyword,question,long,claim,noisy"
CONFIG = {"n_subtopics": 6, "items_per_subtopic": 8, "max_query_items": 36, "rounds": 2, "judge_pairs": 0}


def distinct_2(texts: list[str]) -> float:
    """Distinct bigrams over all bigrams of the texts (lower-cased words)."""
    grams = [tuple(w[i : i + 2]) for t in texts for w in [t.lower().split()] for i in range(len(w) - 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def run_one(name: str, model: str | None) -> dict:
    data = DATASETS / name
    run_dir = ROOT / "runs" / (f"gen-{name}" + (f"-{model}" if model else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir.parent / f"{run_dir.name}.json").write_text(json.dumps(CONFIG))
    bench_cache = ROOT / "runs" / f"bench-{name}" / "eval_cache"  # the collection's embeddings, if corpus_mode.py ran
    if bench_cache.is_dir() and not (run_dir / "eval_cache").exists():
        shutil.copytree(bench_cache, run_dir / "eval_cache")
    cmd = [*RETABLE, "adapt", str(data / "description.txt"), "--out", str(run_dir), "--formats", FORMATS,
           "--config", str(run_dir.parent / f"{run_dir.name}.json"), *(["--model", model] if model else [])]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    rerun = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rerun_calls = sum(int(line.split(" LLM calls")[0].rsplit(",", 1)[-1]) for line in rerun.stderr.splitlines() if " LLM calls" in line)
    metrics = run_dir / "eval.json"
    subprocess.run([*RETABLE, "eval", str(run_dir), "--dataset", str(data), "--json", str(metrics)], check=True)

    sys.path.insert(0, str(ROOT))
    from retable.files import read_records
    from retable.records import DomainBrief, Pair
    from retable.runfiles import RunFolder

    items, queries = RunFolder(run_dir).items(), RunFolder(run_dir).queries()
    kept = read_records(run_dir / "pairs.kept.jsonl", Pair)
    brief = DomainBrief.model_validate_json((run_dir / "brief.json").read_text())
    subtopic = {it.id: it.subtopic for it in items}
    surviving = {subtopic[p.item_id] for p in kept}
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    usage = {s: e["usage"] for s, e in stages.items() if e["usage"]["calls"] or e["usage"]["cached"]}
    text = {it.id: it.encode_text() for it in items}
    sample = random.Random(0).sample(kept, min(10, len(kept)))
    m = json.loads(metrics.read_text())
    return {
        "dataset": name, "model": model or "smollm2-135m", "seconds": round(seconds, 1),
        "items": len(items), "queries": len(queries), "kept": len(kept),
        "pass_rate": len(kept) / len(queries) if queries else 0.0,
        "distinct_2_queries": distinct_2([q.text for q in queries]), "distinct_2_kept": distinct_2([p.query for p in kept]),
        "subtopics": brief.subtopics, "subtopic_survival": len(surviving & set(brief.subtopics)) / len(brief.subtopics),
        "kept_by_format": dict(Counter(p.format for p in kept)), "made_by_format": dict(Counter(q.format for q in queries)),
        "tokens": sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage.values()),
        "llm_seconds": round(sum(u["seconds"] for u in usage.values()), 1), "usage_by_stage": usage,
        "rounds": json.loads((run_dir / "rounds.json").read_text()), "rerun_llm_calls": rerun_calls,
        "ndcg@10": {s: m[s]["ndcg@10"] for s in ("frozen_flat", "frozen_pq", "adapted")},
        "sample_pairs": [{"format": p.format, "query": p.query, "item": text[p.item_id][:160]} for p in sample],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--model", default=None, help="embedded model name (default: smollm2-135m)")
    args = parser.parse_args()
    rows = [run_one(name, args.model) for name in args.datasets]
    print(f"\n{'dataset':<9} {'items':>5} {'queries':>7} {'kept':>4} {'pass':>5} {'dist-2':>6} {'subt.':>5} {'tokens':>7} {'LLM s':>6} "
          f"{'flat':>6} {'pq':>6} {'adapted':>7} {'rerun calls':>11}  kept by format")
    for r in rows:
        n = r["ndcg@10"]
        print(f"{r['dataset']:<9} {r['items']:>5} {r['queries']:>7} {r['kept']:>4} {r['pass_rate']:>5.2f} {r['distinct_2_queries']:>6.2f} "
              f"{r['subtopic_survival']:>5.2f} {r['tokens']:>7} {r['llm_seconds']:>6} {n['frozen_flat']:>6.4f} {n['frozen_pq']:>6.4f} "
              f"{n['adapted']:>7.4f} {r['rerun_llm_calls']:>11}  {r['kept_by_format']}")
    out = ROOT / "benchmarks" / "results" / ("generation" + (f"-{args.model}" if args.model else "") + ".json")
    out.write_text(json.dumps({"config": CONFIG, "formats": FORMATS, "runs": rows}, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
