"""Bad input: one line on stderr that names the problem, exit code 2, no traceback."""

import json
import os
import subprocess
import sys

import pytest

from llama_servers import free_port


def retable(*args, stdin: str = ""):
    env = {**os.environ, "RETABLE_API_KEY": "test"}
    return subprocess.run([sys.executable, "-m", "retable.cli", *args], input=stdin, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def description(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("Support articles for a note-taking app. Users type short how-to questions.")
    return path


def _assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands():
    result = retable("--help")
    assert result.returncode == 0 and "adapt" in result.stdout and "eval" in result.stdout


def test_every_setting_has_one_help_panel_and_adapt_help_shows_them_in_order():
    from retable.cli_options import PANELS, option_fields

    named = [n for names in PANELS.values() for n in names]
    assert sorted(named) == sorted(option_fields()), "each option belongs to exactly one panel of cli_options.PANELS"
    result = retable("adapt", "--help")
    where = [result.stdout.find(f" {panel} settings ") for panel in PANELS]
    assert result.returncode == 0 and -1 not in where and where == sorted(where), result.stdout[:400]


def test_empty_description_from_stdin(tmp_path):
    _assert_one_line_error(retable("adapt", "-", "--out", str(tmp_path / "r"), stdin="   \n"), "is empty")


def test_missing_description_file(tmp_path):
    _assert_one_line_error(retable("adapt", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "r")), "not found")


def test_missing_corpus_file(tmp_path, description):
    r = retable("adapt", str(description), "--corpus", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r"))
    _assert_one_line_error(r, "nope.jsonl not found")
    assert not (tmp_path / "r").exists()  # nothing ran


def test_corpus_line_without_text(tmp_path, description, monkeypatch):
    from fakes import Responder

    from retable.llm.fake import FakeLLM
    from retable.commands.run import run_adapt
    from retable.config import RunConfig
    from retable.errors import UserError

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"_id": "1", "text": "fine"}) + "\n" + json.dumps({"_id": "2", "title": " "}) + "\n")  # title-only lines are items
    llm = FakeLLM(Responder())
    with pytest.raises(UserError, match="line 2 \\(id 2\\) has neither title nor text"):  # --strict refuses the line
        run_adapt(description.read_text(), tmp_path / "run", RunConfig(strict=True), llm, corpus=corpus, log=lambda m: None)
    logs = []
    with pytest.raises(UserError, match="has 1 item — at least 16"):  # by default it is skipped, counted, and the rest is checked
        run_adapt(description.read_text(), tmp_path / "run", RunConfig(), llm, corpus=corpus, log=logs.append)
    assert logs[0].startswith(f"warning: skipped 1 document of {corpus} with neither title nor text (ids 2)")
    assert llm.history == []  # checked before any LLM call is paid for


def test_unreachable_base_url(tmp_path, description):
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = retable("adapt", str(description), "--out", str(tmp_path / "r"), "--llm", "openai", "--base-url", url, "--model", "m")
    _assert_one_line_error(r, f"no LLM reachable at {url}")


def test_nonsense_option_value(tmp_path, description):
    r = retable("adapt", str(description), "--out", str(tmp_path / "r"), "--formats", "keyword,shouting")
    _assert_one_line_error(r, "unknown query formats ['shouting']")


def test_unknown_table_kind(tmp_path, description):
    r = retable("adapt", str(description), "--out", str(tmp_path / "r"), "--table-kind", "hash")
    _assert_one_line_error(r, "Invalid value for '--table-kind'")


def test_out_path_that_is_a_file(tmp_path, description):
    (tmp_path / "f").write_text("")
    _assert_one_line_error(retable("adapt", str(description), "--out", str(tmp_path / "f")), "is a file")


def test_eval_of_a_folder_without_adapter(tmp_path):
    _assert_one_line_error(retable("eval", str(tmp_path), "--dataset", str(tmp_path)), "holds no adapter")
