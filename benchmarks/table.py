"""Adapting a code table vs the alternatives, on the same synthetic pairs, on ../shared/datasets.

    .venv/bin/python benchmarks/table.py scifact nfcorpus cisi npl --max-query-items 100

For each collection: `retable adapt` in corpus mode (runs/bench-<name>, resumable, LLM calls
cached), then every system of `retable eval --baselines`, then the held-out-items experiment (the
quantizer and the table see only 80% of the items; the other 20% get codes afterwards). Writes
benchmarks/results/table.json and docs/benchmarks.md (the table and every target met or missed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus_mode import ROOT, adapt_collection  # noqa: E402

from retable.adapters.artifact import Adapter  # noqa: E402
from retable.adapters.quantizer import Quantizer  # noqa: E402
from retable.baselines.train import Space, train_kind  # noqa: E402
from retable.config import RunConfig  # noqa: E402
from retable.baselines.systems import RunPairs  # noqa: E402
from retable.evals.beir import load_beir  # noqa: E402
from retable.evals.evaluate import evaluate_run
from retable.runfiles import RunFolder  # noqa: E402
from retable.metrics import evaluate, to_run  # noqa: E402
from retable.retrieval.dense import exact_search  # noqa: E402
from retable.files import read_npy  # noqa: E402

ENCODER_PARAMS = 22_713_216
SYSTEMS = ["bm25", "frozen_flat", "frozen_pq", "adapted_pq", "adapted_vq", "adapted_residual", "query_linear", "full_finetune"]


def held_out_items(run_dir: Path, data: Path, fraction: float = 0.2) -> dict:
    """nDCG@10 of a pq table whose quantizer and tuning never saw 20% of the items, vs one that saw all."""
    from retable.encoder.frozen import Encoder

    config = RunConfig(**json.loads((run_dir / "config.json").read_text()))
    adapter = Adapter(run_dir / "adapter")
    rp = RunPairs(run_dir, config)
    rng = np.random.default_rng(config.seed)
    seen = rng.random(len(rp.items)) >= fraction
    quantizer = Quantizer.train(rp.item_emb[seen], adapter.quantizer.m, adapter.quantizer.nbits, config.seed, kind=adapter.quantizer.kind)
    space = Space.build(quantizer, rp.item_emb, rp.query_emb)
    keep = {it.id for it, s in zip(rp.items, seen) if s}
    split = {name: [p for p in ps if p.item_id in keep] for name, ps in rp.splits.items()}
    train, val = space.pairs(split["train"], rp.q_row, rp.i_row), space.pairs(split["val"], rp.q_row, rp.i_row)
    table, _, _ = train_kind("pq", quantizer, space, train, val, config)
    corpus, queries, qrels = load_beir(data)
    emb = read_npy(RunFolder(run_dir).corpus_cache(data / "corpus.jsonl", adapter.meta["encoder_checksum"]))
    qids = sorted(queries)
    q = Encoder(config.encoder).encode([queries[i] for i in qids])
    vecs = table.item_vectors(quantizer.codes(emb), quantizer.rotate(emb))
    run = to_run(qids, [it.id for it in corpus], *exact_search(vecs, quantizer.rotate(q), 100))
    return {"held_out_fraction": fraction, "train_pairs_left": len(split["train"]), **evaluate({i: qrels[i] for i in qids}, run)}


def run_dataset(name: str, max_query_items: int) -> dict:
    data, run_dir, adapt_seconds = adapt_collection(name, max_query_items)
    systems = evaluate_run(run_dir, data, baselines=True, log=lambda m: print(m, file=sys.stderr))
    audit = json.loads((run_dir / "audit.json").read_text())
    tune = json.loads((run_dir / "tune.json").read_text())
    return {"dataset": name, "adapt_seconds": round(adapt_seconds, 1), "kept_pairs": audit["kept"],
            "collision_rate": audit["codebook"]["collision_rate"], "collision_residuals": tune["collision_residuals"],
            "pq_k": audit["tuned"]["pq_k"], "train_pairs": audit["tuned"]["train_pairs"], "systems": systems,
            "held_out_items": held_out_items(run_dir, data)}


def targets(rows: list[dict]) -> list[tuple[str, str, bool | None]]:
    out = []
    ndcg = lambda r, s: r["systems"][s]["ndcg@10"]  # noqa: E731
    for kind in ("adapted_pq", "adapted_vq", "adapted_residual"):
        worse = [r["dataset"] for r in rows if ndcg(r, kind) < ndcg(r, "frozen_pq")]
        out.append((f"{kind} ≥ frozen_pq on every dataset", "worse on " + ", ".join(worse) if worse else "all", not worse))
        mean_a = np.mean([ndcg(r, kind) for r in rows])
        mean_f = np.mean([ndcg(r, "frozen_flat") for r in rows])
        out.append((f"{kind} ≥ frozen_flat on average", f"{mean_a:.4f} vs {mean_f:.4f}", bool(mean_a >= mean_f)))
    for r in rows:
        s = r["systems"]
        for kind in ("pq", "residual"):
            speed = s["full_finetune"]["train_seconds"] / max(s[f"adapted_{kind}"]["train_seconds"], 1e-3)
            out.append((f"{r['dataset']}: {kind} tuning ≥ 20× faster than full fine-tuning", f"{speed:.0f}×", bool(speed >= 20)))
            gain_ft = ndcg(r, "full_finetune") - ndcg(r, "frozen_flat")
            gain = ndcg(r, f"adapted_{kind}") - ndcg(r, "frozen_flat")
            name = f"{r['dataset']}: {kind} keeps ≥ 80% of full fine-tuning's nDCG@10 gain over frozen_flat"
            if gain_ft <= 0:
                out.append((name, f"no gain to keep (fine-tuning {100 * gain_ft:+.2f}, {kind} {100 * gain:+.2f} points)", None))
            else:
                out.append((name, f"{100 * gain:+.2f} of {100 * gain_ft:+.2f} points = {100 * gain / gain_ft:.0f}%", bool(gain >= 0.8 * gain_ft)))
        pq_share = s["adapted_pq"]["trainable_parameters"] / ENCODER_PARAMS
        out.append((f"{r['dataset']}: pq table ≤ 2% of encoder parameters", f"{100 * pq_share:.2f}%", bool(pq_share <= 0.02)))
        size = s["adapted_pq"]["artifact_bytes"]
        out.append((f"{r['dataset']}: pq artifact ≤ 2 MB", f"{size / 1e6:.2f} MB", bool(size <= 2e6)))
        loss = 100 * (ndcg(r, "adapted_pq") - r["held_out_items"]["ndcg@10"])
        out.append((f"{r['dataset']}: 20% items added after training lose ≤ 1 nDCG@10 point", f"{loss:+.2f} points", bool(loss <= 1.0)))
    return out


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Benchmarks: adapting a code table vs the alternatives", "",
             f"Produced by `{command}` on a 2-core CPU machine; every trained system uses the same kept synthetic pairs "
             "(SmolLM2-135M, corpus mode). nDCG@10 / Recall@100 / trainable parameters / training seconds / artifact bytes.", ""]
    for r in rows:
        lines += [f"## {r['dataset']} — {r['kept_pairs']} kept pairs ({r['train_pairs']} for training)", "",
                  "| system | nDCG@10 | R@100 | trainable params | train s | artifact bytes |", "|---|---|---|---|---|---|"]
        for name in SYSTEMS:
            m = r["systems"][name]
            size = "-" if m.get("artifact_bytes") is None else f"{m['artifact_bytes']:,}"
            secs = "-" if m.get("train_seconds") is None else f"{m['train_seconds']:.1f}"
            lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['trainable_parameters']:,} | {secs} | {size} |")
        h = r["held_out_items"]
        lines += ["", f"Held-out items (quantizer and table trained on 80% of the items): nDCG@10 {h['ndcg@10']:.4f}.", ""]
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, value, ok in targets(rows):
        lines.append(f"| {name} | {value} | {'n/a' if ok is None else ('yes' if ok else 'no')} |")
    lines += ["", "## Reading", "",
              "- Training pairs are few (tens per collection) because SmolLM2-135M's queries mostly fail the round-trip "
              "filter; see the seeds section below for how much of each change survives other tuning seeds and a "
              "bootstrap over queries.",
              "- `pq` and `vq` start at `frozen_pq` and carry PQ's compression loss (up to 4 points here); tuning on these "
              "pairs does not win it back. `residual` starts at `frozen_flat` and is the only kind that never fell below "
              "its start on average.",
              "- Full fine-tuning ran at most 3 epochs (about 7 s per batch of 32 here); the tables early-stop on the "
              "validation pairs, usually within a few epochs.",
              "- The held-out-items row compares a pq table whose quantizer and tuning saw 80% of the items with the "
              "adapted_pq row, over all queries (positive = points lost)."]
    seeds = ROOT / "benchmarks" / "results" / "seeds.json"
    if seeds.is_file():
        sd = json.loads(seeds.read_text())
        lines += ["", "## Seeds and noise", "", f"`.venv/bin/python {sd['command']}`: each table retuned with five tuning seeds "
                  "(the run's own first; same pairs and splits), and a paired bootstrap 95% interval over queries of the "
                  "run-seed table's nDCG@10 difference to its untuned start (frozen_pq for pq, frozen_flat for residual).", "",
                  "| dataset | kind | untuned | tuned, mean ± std over 5 seeds | run seed: difference [95% CI] |", "|---|---|---|---|---|"]
        for r in sd["runs"]:
            for kind in ("pq", "residual"):
                k = r[kind]
                lo, hi = k["run_seed_diff_ci95"]
                lines.append(f"| {r['dataset']} | {kind} | {k['untuned']:.4f} | {k['mean']:.4f} ± {k['std']:.4f} | "
                             f"{100 * k['run_seed_diff']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] points |")
        clear = [f"{kind} on {r['dataset']} ({100 * r[kind]['run_seed_diff']:+.2f}; best epochs over the seeds {r[kind]['best_epochs']})"
                 for r in sd["runs"] for kind in ("pq", "residual")
                 if min(r[kind]["run_seed_diff_ci95"]) > 0 or max(r[kind]["run_seed_diff_ci95"]) < 0]
        lines += ["", "Intervals that exclude zero: " + ("; ".join(clear) if clear else "none") + ". Best epoch 0 means early "
                  "stopping kept the untuned table. Where the training pairs fit in one batch (32; nfcorpus), the tuning "
                  "seed only reorders that batch and changes nothing, so the spread over seeds is zero: the bootstrap "
                  "interval over queries is the better guide."]
    coll = ROOT / "benchmarks" / "results" / "collisions.json"
    if coll.is_file():
        c = json.loads(coll.read_text())
        lines += ["", "## Collisions", "", f"`.venv/bin/python {c['command']}`: a deliberately coarse quantizer, a pq table tuned "
                  "with and without a residual vector for the colliding items that carry synthetic queries.", "",
                  "| dataset | M×K | items colliding | query mass colliding | residual items | train MRR@10 without / with | "
                  "nDCG@10 without / with |",
                  "|---|---|---|---|---|---|---|"]
        for r in c["runs"]:
            a, b = r["without"], r["with"]
            lines.append(f"| {r['dataset']} | {r['m']}×{r['k']} | {100 * r['collision_rate']:.1f}% | {100 * r['collision_rate_by_query_mass']:.1f}% "
                         f"| {b['residual_items']} | {a['train_mrr@10']:.3f} / {b['train_mrr@10']:.3f} | {a['ndcg@10']:.4f} / {b['ndcg@10']:.4f} |")
        at_default = ", ".join(f"{r['dataset']} {100 * r['collision_rate']:.1f}% of items (K={r['pq_k']}, "
                               f"{r['collision_residuals']} given a residual)" for r in rows)
        lines += ["", "The residuals make the colliding training items separable (train MRR@10 → 1.0) but do not help the "
                  "real queries (nDCG@10 drops slightly): at this data scale they fit the synthetic queries. With the "
                  f"default M=48 the adapted runs collide far less: {at_default}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*")
    parser.add_argument("--max-query-items", type=int, default=100)
    parser.add_argument("--from-json", action="store_true", help="only rewrite docs/benchmarks.md from benchmarks/results/table.json")
    args = parser.parse_args()
    results = ROOT / "benchmarks" / "results" / "table.json"
    if args.from_json:
        saved = json.loads(results.read_text())
        rows, command = saved["runs"], saved["command"]
    else:
        rows = [run_dataset(name, args.max_query_items) for name in args.datasets]
        command = f".venv/bin/python benchmarks/table.py {' '.join(args.datasets)} --max-query-items {args.max_query_items}"
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"command": command, "runs": rows}, indent=2) + "\n")
    (ROOT / "docs").mkdir(exist_ok=True)
    text = markdown(rows, command)
    (ROOT / "docs" / "benchmarks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
