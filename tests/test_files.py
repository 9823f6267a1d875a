import json

import pytest

from retable.errors import UserError
from retable.files import load_corpus, read_description


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_beir_and_plain_corpora_load(tmp_path):
    beir = _write(tmp_path / "c.jsonl", [json.dumps({"_id": "1", "title": "T", "text": "body"}), "", json.dumps({"_id": 2, "text": "two"})])
    items = load_corpus(beir)
    assert [(i.id, i.title, i.text) for i in items] == [("1", "T", "body"), ("2", "", "two")]
    assert items[0].encode_text() == "T body"
    plain = _write(tmp_path / "p.jsonl", [json.dumps({"id": "a", "text": "x"})])
    assert load_corpus(plain)[0].id == "a"


@pytest.mark.parametrize("lines, message", [
    (['{"id": "1"}'], "has neither title nor text"),
    (['{"id": "1", "text": "  "}'], "has neither title nor text"),
    (['{"text": "x"}'], "has no id"),
    (['{"id": "1", "text": "x"}', '{"id": "1", "text": "y"}'], "repeats id 1"),
    (["{not json"], "not valid JSON"),
    (["[1, 2]"], "not a JSON object"),
    ([""], "holds no items"),
])
def test_bad_corpus_lines_name_the_problem(tmp_path, lines, message):
    with pytest.raises(UserError, match=message):
        load_corpus(_write(tmp_path / "c.jsonl", lines))


def test_missing_and_non_utf8_corpus(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_corpus(tmp_path / "nope.jsonl")
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes('{"id": "1", "text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_corpus(bad)


def test_description_sources(tmp_path):
    assert read_description("-", "  a domain  \n") == "a domain"
    with pytest.raises(UserError, match="empty"):
        read_description("-", " \n ")
    with pytest.raises(UserError, match="not found"):
        read_description(str(tmp_path / "missing.txt"))
    empty = tmp_path / "d.txt"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        read_description(str(empty))
