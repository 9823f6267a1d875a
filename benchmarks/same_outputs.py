"""Does a change keep retable's outputs? The same runs under a reference commit and under this tree, compared file by file.

The runs, on the scripted fake LLM (tests/fakes.py) and the packaged MiniLM: a description-only `adapt`, a corpus-mode
`adapt` on 400 generated documents, `retable eval` of both on a 50-query BEIR folder made from them (which indexes the
description-only run), and `retable audit --probe` of both. Every file is hashed; what differs between two runs of the
same code is masked: seconds and peak memory in JSON (and the checksums of tune.json, which holds seconds), the run.lock
pid, the seconds in the reports, and the keys of the stages whose inputs hold seconds (audit, report). Then the
reference's finished runs are resumed under this tree with an LLM that fails on any call: which stages rerun, and how
many LLM calls were asked for.

    .venv/bin/python benchmarks/same_outputs.py --ref 40f512c

Writes benchmarks/results/same_outputs.json."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = "Biomedical research abstracts. Users type short scientific claims and want the supporting abstracts."
WORDS = ("protein kinase tumour cell insulin receptor mouse liver cardiac muscle neuron synapse plasma membrane vaccine antibody virus genome "
         "enzyme lipid glucose obesity diabetes cancer therapy trial dose placebo cohort mortality infection bacteria antibiotic resistance "
         "inflammation cytokine lung kidney bone fracture pregnancy infant diet vitamin sleep stroke blood pressure artery heart brain memory "
         "depression anxiety pain opioid surgery imaging screening").split()
CONFIG = dict(n_subtopics=6, items_per_subtopic=6, epochs=4, patience=2, rounds=1)
TIMED_STAGES = ("audit", "report")  # their inputs hold seconds, so their keys and checksums move from run to run


def _commands():
    """run_adapt and index_run, wherever the code under test keeps them."""
    try:
        from retable.commands.index import index_run
        from retable.commands.run import run_adapt
    except ImportError:  # before the command layer
        from retable.adapters.indexing import index_run
        from retable.pipeline import run_adapt
    return run_adapt, index_run


def _beir(folder: Path) -> Path:
    rng = random.Random(0)
    rows = [{"id": f"doc{i}", "title": " ".join(rng.sample(WORDS, 3)), "text": " ".join(rng.choices(WORDS, k=25))} for i in range(400)]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": rows[i]["title"]}) + "\n" for i in range(0, 400, 8)))
    (folder / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tdoc{i}\t1\n" for i in range(0, 400, 8)))
    return folder


def scenario(out: Path) -> None:
    """The runs, with the code on sys.path (a subprocess per code tree)."""
    from fakes import Responder

    from retable.config import RunConfig
    from retable.llm.fake import FakeLLM

    run_adapt, _ = _commands()
    beir = _beir(out / "beir")
    run_adapt(DESCRIPTION, out / "synth", RunConfig(**CONFIG), FakeLLM(Responder()), log=lambda m: None)
    run_adapt(DESCRIPTION, out / "corpus", RunConfig(**CONFIG), FakeLLM(Responder()), corpus=beir / "corpus.jsonl", log=lambda m: None)
    for run in ("synth", "corpus"):
        cli = [sys.executable, "-m", "retable.cli"]
        subprocess.run([*cli, "eval", str(out / run), "--dataset", str(beir), "--json", str(out / f"eval-{run}.json")], check=True,
                       capture_output=True)
        subprocess.run([*cli, "audit", str(out / run), "--probe", str(beir)], check=True, capture_output=True)


def resume(out: Path) -> None:
    """The finished runs in `out`, resumed with an LLM that fails on any call; prints what reran."""
    from retable.config import RunConfig
    from retable.llm.fake import FakeLLM

    run_adapt, index_run = _commands()
    calls = []

    def refuse(messages, schema):
        calls.append(1)
        raise RuntimeError("an LLM call on resume")

    def stages(run: Path) -> dict:
        manifest = json.loads((run / "manifest.json").read_text())
        return {k: (v["key"], json.dumps(v.get("files"), sort_keys=True)) for k, v in manifest["stages"].items()}

    reran = {}
    for name, corpus in (("synth", None), ("corpus", out / "beir" / "corpus.jsonl")):
        before = stages(out / name)
        run_adapt(DESCRIPTION, out / name, RunConfig(**CONFIG), FakeLLM(refuse), corpus=corpus, log=lambda m: None)
        reran[name] = sorted(k for k, v in stages(out / name).items() if before.get(k) != v)
    before = stages(out / "synth" / "indexed")
    index_run(out / "synth", out / "beir" / "corpus.jsonl", log=lambda m: None)
    reran["synth/indexed"] = sorted(k for k, v in stages(out / "synth" / "indexed").items() if before.get(k) != v)
    print(json.dumps({"reran": reran, "llm_calls": len(calls)}))


def _clean(obj, path=()):
    if isinstance(obj, dict):
        return {k: _clean(v, path + (k,)) for k, v in obj.items()
                if "seconds" not in k and k not in ("peak_rss_mb", "tune.json")  # tune.json holds the tuning's seconds
                and not (k in ("key", "files") and path[-1:] and path[-1] in TIMED_STAGES)}
    return [_clean(v, path) for v in obj] if isinstance(obj, list) else obj


def digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "run.lock":
            continue
        data = p.read_bytes()
        if p.suffix == ".json":
            data = json.dumps(_clean(json.loads(data)), sort_keys=True).encode()
        elif p.name == "report.md":  # the cost table's seconds column, and the tuning's seconds
            data = re.sub(rb", [\d.]+ s\n", b", S s\n", re.sub(rb"\| [\d.]+ \|\n", b"| S |\n", data))
        elif p.name == "report.html":
            data = re.sub(rb", [\d.]+ s<", b", S s<", re.sub(rb"<td>[\d.]+</td>(\s*)</tr>", rb"<td>S</td>\1</tr>", data))
        out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def _run_under(code: Path, what: str, folder: Path) -> str:
    """This script's `what` (scenario or resume) on `folder`, with `code` first on the path (its tests/ too)."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONHASHSEED": "0"}  # bm25s writes its vocabulary in Python's hash order
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), f"--{what}", str(folder), "--code", str(code)], env=env, cwd=code,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{what} under {code} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def compare(ref: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tree, work = Path(tmp) / "ref", Path(tmp) / "run"  # both trees run in the same folder: paths inside the files match
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True, capture_output=True)
        try:
            runs = {}
            for name, code in (("ref", tree), ("this", ROOT)):
                _run_under(code, "scenario", work)
                runs[name] = digests(work)
                shutil.move(str(work), Path(tmp) / f"out-{name}")
            shutil.copytree(Path(tmp) / "out-ref", work)
            resumed = json.loads(_run_under(ROOT, "resume", work).strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    a, b = runs["ref"], runs["this"]
    return {"ref": ref, "files": len(a), "identical": sum(a[f] == b.get(f) for f in a), "differ": sorted(f for f in a if a[f] != b.get(f)),
            "only_ref": sorted(set(a) - set(b)), "only_this": sorted(set(b) - set(a)), "resume": resumed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="HEAD~1", help="the commit whose outputs are the reference")
    ap.add_argument("--scenario", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--resume", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario or args.resume:
        sys.path.insert(0, str(args.code / "tests"))
        scenario(args.scenario) if args.scenario else resume(args.resume)
        return
    res = compare(args.ref)
    print(f"| files | identical | differ | only in {args.ref} | only here | stages rerun on resume | LLM calls on resume |\n"
          "|---|---|---|---|---|---|---|")
    print(f"| {res['files']} | {res['identical']} | {len(res['differ'])} | {len(res['only_ref'])} | {len(res['only_this'])} | "
          f"{res['resume']['reran']} | {res['resume']['llm_calls']} |")
    for f in res["differ"] + res["only_ref"] + res["only_this"]:
        print("  differs:", f)
    out = ROOT / "benchmarks" / "results" / "same_outputs.json"
    out.write_text(json.dumps({"command": f"benchmarks/same_outputs.py --ref {args.ref}", **res}, indent=1) + "\n")


if __name__ == "__main__":
    main()
