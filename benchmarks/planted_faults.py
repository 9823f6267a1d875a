"""The audit's planted-fault table on real collections: each fault planted into a copy of a finished
corpus-mode run (runs/bench-<name>, from benchmarks/corpus_mode.py), over several seeds, and
whether the check meant to catch it raised red or amber; the clean copy must raise no red.

    .venv/bin/python benchmarks/planted_faults.py scifact nfcorpus cisi npl --seeds 1 2 3

Off-domain items come from another collection's run (scifact <- npl, nfcorpus <- cisi, cisi <- scifact,
npl <- nfcorpus). The LLM judge is off here unless --judge: the embedded SmolLM2 judge measured
uninformative on its controls (see docs/audit.md), and it would cost ~25 s per planted run.
Prints a table and writes benchmarks/results/planted_faults.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the planted faults live with the tests
from corpus_mode import ROOT  # noqa: E402

from retable.encoder.frozen import Encoder  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from planted import EXPECTED, FAULTS, plant  # noqa: E402
from retable.files import read_npy, read_records  # noqa: E402
from retable.records import Item  # noqa: E402

FOREIGN = {"scifact": "npl", "nfcorpus": "cisi", "cisi": "scifact", "npl": "nfcorpus"}


def judge_client(run_dir: Path, config: RunConfig):
    from retable.llm import LLMClient, UsageLog
    from retable.llm.cache import CallCache
    from retable.llm.factory import make_llm

    return LLMClient(make_llm(config), CallCache(run_dir / "llm_cache.sqlite"), temperature=config.temperature,
                     max_tokens=config.max_tokens, max_retries=config.max_retries, usage=UsageLog())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", choices=sorted(FOREIGN))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--judge", action="store_true", help="also run the LLM judge of the run's config on every planted run")
    args = parser.parse_args()
    encoder = Encoder("all-MiniLM-L6-v2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            src = ROOT / "runs" / f"bench-{name}"
            other = ROOT / "runs" / f"bench-{FOREIGN[name]}"
            config = RunConfig.model_validate(json.loads((src / "config.json").read_text()))
            if not args.judge:
                config = config.model_copy(update={"judge_pairs": 0})
            foreign = (read_records(other / "items.jsonl", Item), read_npy(other / "item_emb.npy"))
            client = judge_client(src, config) if args.judge else None
            for fault in FAULTS:
                for seed in args.seeds:
                    start = time.perf_counter()
                    audit = plant(src, Path(tmp) / f"{name}-{fault}-{seed}", fault, config, encoder, seed=seed, client=client,
                                  prompts=None, foreign=foreign)
                    raised = {f.check: f.level for f in sorted(audit.findings, key=lambda f: f.level != "red") if f.level != "green"}
                    expected = EXPECTED.get(fault)
                    rows.append({"dataset": name, "fault": fault, "seed": seed, "verdict": audit.verdict,
                                 "expected_check": expected, "expected_level": raised.get(expected, "green") if expected else None,
                                 "raised": raised, "evidence": {f.check: f.evidence for f in audit.findings},
                                 "seconds": round(time.perf_counter() - start, 1)})
                    print(f"{name:<9} {fault:<18} seed {seed}: verdict {audit.verdict:<5} {raised}", file=sys.stderr)
    print(f"\n{'dataset':<9} {'fault':<18} {'check':<20} {'flagged (red/amber) over seeds':<32} verdicts")
    for name in args.datasets:
        for fault in FAULTS:
            rs = [r for r in rows if r["dataset"] == name and r["fault"] == fault]
            if fault == "clean":
                ok = sum(r["verdict"] != "red" for r in rs)
                flagged = f"no red in {ok}/{len(rs)}"
            else:
                flagged = f"{sum(r['expected_level'] in ('red', 'amber') for r in rs)}/{len(rs)} ({', '.join(r['expected_level'] for r in rs)})"
            print(f"{name:<9} {fault:<18} {EXPECTED.get(fault, '-'):<20} {flagged:<32} {', '.join(r['verdict'] for r in rs)}")
    out = ROOT / "benchmarks" / "results" / "planted_faults.json"
    out.write_text(json.dumps({"seeds": args.seeds, "judge": args.judge, "rows": rows}, indent=1) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
