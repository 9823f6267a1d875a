"""`retable eval RUN --dataset DIR`: a description-only run's adapter serves synthetic items, so the collection's
items are first indexed into the run exactly as `retable index` does (what its user does when the real items
arrive; no query of the collection is read for it), then every system is measured (evals/evaluate.py)."""

from __future__ import annotations

from pathlib import Path

from retable.commands.index import index_run
from retable.evals.beir import load_beir
from retable.evals.evaluate import evaluate_run
from retable.files import sha256_file
from retable.runfiles import RunFolder


def eval_run(run_dir: Path, dataset: Path, *, baselines: bool = False, log=print, runs: dict | None = None) -> dict[str, dict]:
    run = RunFolder(run_dir)
    if not run.description_only():
        return evaluate_run(run_dir, dataset, baselines=baselines, log=log, runs=runs)
    collection = load_beir(dataset, log=log)  # a bad dataset folder fails before any indexing
    corpus_file, record = dataset / "corpus.jsonl", run.index_record()
    same = record is not None and record["corpus_sha256"] == sha256_file(corpus_file)  # indexed as the user chose: kept or refit codes
    index_run(run_dir, corpus_file, keep_codes=same and record["codes"] == "kept", log=log)
    return evaluate_run(run_dir, dataset, baselines=baselines, log=log, runs=runs, collection=collection)
