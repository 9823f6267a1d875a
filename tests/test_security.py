"""Nothing read from data is executed or used as a path; adapters never unpickle."""

import json

import numpy as np
import pytest
from conftest import DESCRIPTION
from fakes import Responder

from retable.llm.fake import FakeLLM
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.errors import UserError
from retable.files import read_npy


def test_item_ids_that_look_like_paths_stay_data(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    ids = ["../../escaped", "/etc/passwd", "..\\win", "a/b/c"] + [f"d{i}" for i in range(36)]
    corpus.write_text("".join(json.dumps({"id": i, "text": f"Report {n} on probiotic strain {n % 7} and fiber {n % 5}."}) + "\n" for n,
                              i in enumerate(ids)))
    before = set(tmp_path.parent.rglob("*"))
    run_adapt(DESCRIPTION, tmp_path / "run", RunConfig(max_query_items=20, epochs=2), FakeLLM(Responder()), corpus=corpus, log=lambda m: None)
    created = set(tmp_path.parent.rglob("*")) - before
    assert created and all((tmp_path / "run") in p.parents or p == tmp_path / "run" for p in created)
    assert json.loads((tmp_path / "run" / "adapter" / "item_ids.json").read_text())[:2] == ["../../escaped", "/etc/passwd"]


def test_a_pickled_array_is_refused(tmp_path):
    path = tmp_path / "codes.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="never does"):
        read_npy(path)
