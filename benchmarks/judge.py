"""Can the offline LLMs judge? The audit's judge on one finished run, per embedded model and
temperature: yes rates on kept pairs, dropped pairs, and the known-answer controls that decide
whether the judge is trusted.

    .venv/bin/python benchmarks/judge.py scifact --pairs 16

Needs runs/bench-<name> (benchmarks/corpus_mode.py); Qwen needs `pip install '.[qwen]'`.
Prints a table and writes benchmarks/results/judge.json. Calls are cached in the run's LLM cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import ROOT  # noqa: E402

from retable.llm import LLMClient, UsageLog  # noqa: E402
from retable.llm.cache import CallCache  # noqa: E402
from retable.llm.embedded import EmbeddedLLM  # noqa: E402
from retable.prompts import Prompts  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from retable.evals.faithfulness import judge_pairs  # noqa: E402
from retable.files import read_records  # noqa: E402
from retable.records import DroppedPair, Item, Pair  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--temperatures", nargs="+", type=float, default=[0.7, 0.0])
    args = parser.parse_args()
    run = ROOT / "runs" / f"bench-{args.dataset}"
    kept = read_records(run / "pairs.kept.jsonl", Pair)
    dropped = read_records(run / "pairs.dropped.jsonl", DroppedPair)
    items = read_records(run / "items.jsonl", Item)
    gap = RunConfig().audit.judge_informative
    rows = []
    for model in args.models:
        llm = EmbeddedLLM(model)
        for temperature in args.temperatures:
            client = LLMClient(llm, CallCache(run / "llm_cache.sqlite"), temperature=temperature, max_tokens=384, max_retries=2, usage=UsageLog())
            start = time.perf_counter()
            s = judge_pairs(client, Prompts(), kept, dropped, items, args.pairs, seed=13, informative_gap=gap)
            rows.append({"model": model, "temperature": temperature, "yes_kept": s.yes_kept, "yes_dropped": s.yes_dropped,
                         "yes_control_match": s.yes_control_match, "yes_control_mismatch": s.yes_control, "control_p": s.control_p,
                         "informative": s.informative, "invalid": s.invalid, "calls": len(s.judged),
                         "seconds": round(time.perf_counter() - start, 1)})
    print(f"\n{'model':<20} {'temp':>4} {'kept':>5} {'dropped':>7} {'match':>6} {'mismatch':>8} {'p':>6} {'trusted':>7} {'s':>6}")
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['model']:<20} {r['temperature']:>4} {f(r['yes_kept']):>5} {f(r['yes_dropped']):>7} {f(r['yes_control_match']):>6} "
              f"{f(r['yes_control_mismatch']):>8} {f(r['control_p']):>6} {str(r['informative']):>7} {r['seconds']:>6}")
    out = ROOT / "benchmarks" / "results" / "judge.json"
    out.write_text(json.dumps({"dataset": args.dataset, "pairs": args.pairs, "rows": rows}, indent=1) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
