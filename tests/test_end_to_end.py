"""The whole pipeline on the real embedded model (SmolLM2 with its default prompts and schemas), from the
command line as a user runs it, in both modes: `adapt`, then `index`, `eval`, `audit --probe` and `search`.
Small enough for CI (82 s and 183 s here): a 48-item collection, few LLM queries, one agent round; the
description-only run asks for 72 items, of which SmolLM2 writes about a third (16 are needed for codes)."""

import json
import subprocess
import sys

import pytest

TOPICS = {
    "statins": ("statin therapy", "cholesterol", "cardiovascular events", "muscle pain"),
    "vitamin D": ("vitamin D supplements", "bone density", "fracture risk", "older adults"),
    "sleep": ("sleep deprivation", "memory consolidation", "shift workers", "attention"),
    "asthma": ("inhaled corticosteroids", "asthma attacks", "children", "air pollution"),
    "diabetes": ("metformin", "blood glucose", "type 2 diabetes", "weight loss"),
    "vaccines": ("influenza vaccine", "antibody response", "elderly patients", "booster dose"),
}
DESCRIPTION = "Medical research abstracts. Users type short questions about treatments, risks and outcomes.\n"
QUERIES = {"q1": ("do statins cause muscle pain", "statins"), "q2": ("vitamin D and fractures in older adults", "vitamin D"),
           "q3": ("sleep loss and memory", "sleep"), "q4": ("asthma attacks in children and air pollution", "asthma"),
           "q5": ("metformin weight loss", "diabetes"), "q6": ("flu vaccine booster in the elderly", "vaccines")}


def _collection(root):
    """A BEIR folder: 8 abstracts a topic, each query judged relevant to its topic's abstracts."""
    (root / "qrels").mkdir(parents=True)
    rows, qrels = [], []
    for topic, (a, b, c, d) in TOPICS.items():
        for n in range(8):
            doc = f"{topic.replace(' ', '-')}-{n}"
            rows.append({"_id": doc, "title": f"{a.capitalize()} and {b} in {c}: study {n + 1}",
                         "text": (f"We followed {40 + 7 * n} {c} receiving {a} for {n + 2} years. {b.capitalize()} changed "
                                  f"by {3 + n}% and {d} was reported by {5 + 2 * n}% of participants. These results suggest that {a} "
                                  f"affects {b} in {c}, and that {d} should be monitored.")})
            qrels += [f"{q}\t{doc}\t1" for q, (_, t) in QUERIES.items() if t == topic]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items()))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    (root / "description.txt").write_text(DESCRIPTION)
    return root, {r["_id"] for r in rows}


def _retable(*args) -> str:
    done = subprocess.run([sys.executable, "-m", "retable.cli", *map(str, args)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"retable {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def _declared_outputs_exist(run_dir, corpus: bool):
    """Each stage of the command ran and wrote every file its declaration names (those it may leave out aside)."""
    from retable.commands.stages import adapt_stages

    manifest = json.loads((run_dir / "manifest.json").read_text())["stages"]
    for stage in adapt_stages(corpus):
        assert stage.name in manifest, f"stage {stage.name} did not run"
        missing = [rel for rel in stage.writes if rel not in stage.optional and not (run_dir / rel).is_file()]
        assert not missing, f"stage {stage.name} declares {missing}, which are missing"
    return manifest


def _after_adapt(run_dir, beir, ids, mode):
    audit = json.loads((run_dir / "audit.json").read_text())
    assert audit["mode"] == mode and audit["verdict"] in ("green", "amber", "red") and audit["findings"]
    assert "verdict" in (run_dir / "report.md").read_text().lower() and (run_dir / "report.html").is_file()
    out = run_dir.parent / f"eval-{mode}.json"
    _retable("eval", run_dir, "--dataset", beir, "--json", out)
    metrics = json.loads(out.read_text())
    assert {"bm25", "frozen_flat", "adapted", "frozen_hybrid", "adapted_hybrid"} <= set(metrics)
    assert metrics["bm25"]["ndcg@10"] > 0.5  # the queries name their topic's words: the collection is searchable at all
    _retable("audit", run_dir, "--probe", beir)
    probed = json.loads((run_dir / "audit.json").read_text())
    assert probed["probe"] and any("ships" in f["title"] for f in probed["findings"] if f["check"] == "probe")
    out = _retable("search", run_dir, "vitamin D supplements and fracture risk", "-k", "3")
    hits = [line.split()[2] for line in out.splitlines() if line.strip()[:1].isdigit()]  # rank, score, id, text
    assert len(hits) == 3 and set(hits) <= ids and any(h.startswith("vitamin-D") for h in hits), out


@pytest.mark.integration
def test_corpus_mode_on_the_embedded_model_end_to_end(tmp_path):
    beir, ids = _collection(tmp_path / "beir")
    run_dir = tmp_path / "run"
    _retable("adapt", beir / "description.txt", "--corpus", beir / "corpus.jsonl", "--out", run_dir,
             "--max-query-items", 16, "--rounds", 1, "--judge-pairs", 4)
    manifest = _declared_outputs_exist(run_dir, corpus=True)
    assert manifest["queries"]["usage"]["calls"] > 0  # the real model was asked
    _after_adapt(run_dir, beir, ids, "corpus")


@pytest.mark.integration
def test_description_only_on_the_embedded_model_end_to_end(tmp_path):
    beir, ids = _collection(tmp_path / "beir")
    run_dir = tmp_path / "run"
    _retable("adapt", beir / "description.txt", "--out", run_dir, "--n-subtopics", 6, "--items-per-subtopic", 12, "--rounds", 1, "--judge-pairs", 4)
    manifest = _declared_outputs_exist(run_dir, corpus=False)
    assert manifest["items"]["usage"]["calls"] > 0
    _retable("index", run_dir, "--corpus", beir / "corpus.jsonl")
    assert json.loads((run_dir / "indexed" / "index.json").read_text())["n_items"] == len(ids)
    _after_adapt(run_dir, beir, ids, "description-only")
