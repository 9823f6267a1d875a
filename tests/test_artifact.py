"""The adapter artifact: load it, search it, add items without retraining, refuse another encoder."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import DESCRIPTION
from fakes import Responder

import retable
from retable.llm.fake import FakeLLM
from retable.commands.run import run_adapt
from retable.config import RunConfig
from retable.errors import UserError
from retable.files import read_records
from retable.records import Item


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_adapt(DESCRIPTION, out, RunConfig(n_subtopics=6, items_per_subtopic=6, epochs=4, table_kind="residual"), FakeLLM(Responder()),
              log=lambda m: None)
    return out


def test_adapter_folder_holds_no_pickle(run_dir):
    names = {p.name for p in (run_dir / "adapter").iterdir()}
    assert names == {"adapter.json", "quantizer.faiss", "table.safetensors", "codes.npy", "item_ids.json", "item_emb.npy", "bm25"}
    bm25 = {p.suffix for p in (run_dir / "adapter" / "bm25").iterdir()}
    assert bm25 <= {".json", ".npy", ".jsonl"}  # bm25s' own files: arrays, JSON, the item texts
    assert all(not p.read_bytes().startswith(b"\x80") for p in (run_dir / "adapter" / "bm25").iterdir())  # no pickle protocol header
    meta = json.loads((run_dir / "adapter" / "adapter.json").read_text())
    assert meta["table_kind"] == "residual" and meta["encoder"] == "all-MiniLM-L6-v2" and len(meta["encoder_checksum"]) == 64
    assert meta["encoder_variant"] == "onnx-int8"  # the default path made its codes, and the adapter says so


def test_search_finds_an_item_by_its_own_text_and_add_needs_no_retraining(run_dir):
    index = retable.load_adapter(run_dir)
    items = read_records(run_dir / "items.jsonl", Item)
    assert index.search(items[3].encode_text(), k=3)[0][0] == items[3].id
    table_before = (run_dir / "adapter" / "table.safetensors").read_bytes()
    assert index.add([{"id": "new-1", "text": "Volcanic ash clouds disrupt transatlantic flights for days."}]) == 1
    assert index.search("volcanic ash and flights", k=1)[0][0] == "new-1"
    assert (run_dir / "adapter" / "table.safetensors").read_bytes() == table_before


@pytest.mark.parametrize("batch,message", [
    ([{"id": "dup-1", "text": "A first text about tides."}, {"id": "dup-1", "text": "Another."}], "repeats id dup-1"),
    ([{"id": ["x"], "text": "A text."}], "an id that is a list"),
    ([{"id": "e1", "text": "   "}], "has neither title nor text"),
    ([{"id": "m1"}], "has neither title nor text"),
    ([{"id": "t1", "text": 42}], "not a string"),
    (["just a string"], "is not a JSON object"),
])
def test_add_checks_items_as_the_corpus_does_and_adds_none_of_a_bad_batch(run_dir, batch, message):
    index = retable.load_adapter(run_dir)
    before = list(index.ids)
    with pytest.raises(UserError, match=message) as err:
        index.add(batch)
    assert "\n" not in str(err.value) and index.ids == before


def test_add_refuses_an_id_the_index_already_holds_and_search_refuses_bad_k_or_an_empty_query(run_dir):
    index = retable.load_adapter(run_dir)
    with pytest.raises(UserError, match=f"repeats id {index.ids[0]}"):
        index.add([Item(id=index.ids[0], text="Same id, new text.")])
    for k in (0, -3, 2.5, True):
        with pytest.raises(UserError, match="k must be a positive"):
            index.search("tides", k=k)
    for query in ("", "   \n"):
        with pytest.raises(UserError, match="query is empty"):
            index.search(query)


@pytest.mark.parametrize("field, value, message", [("encoder_checksum", "0" * 64, "other weights"),
                                                  ("encoder_dim", 768, "but adapter.json says M=.*d=768")])
def test_an_adapter_for_another_encoder_is_refused(run_dir, tmp_path, field, value, message):
    copy = tmp_path / "adapter"
    shutil.copytree(run_dir / "adapter", copy)
    meta = json.loads((copy / "adapter.json").read_text())
    meta[field] = value
    (copy / "adapter.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        retable.load_adapter(copy)


def test_an_adapter_is_served_by_the_encoder_path_that_made_it_and_refuses_another(run_dir, tmp_path):
    assert retable.load_adapter(run_dir).encoder.variant == "onnx-int8"
    with pytest.raises(UserError, match="made with the onnx-int8 encoder path; this encoder runs torch"):
        retable.load_adapter(run_dir, encoder_backend="torch")
    copy = tmp_path / "adapter"
    shutil.copytree(run_dir / "adapter", copy)
    meta = json.loads((copy / "adapter.json").read_text())
    del meta["encoder_variant"]  # an adapter from before the onnx-int8 path: torch made it, torch serves it
    (copy / "adapter.json").write_text(json.dumps(meta))
    assert retable.load_adapter(copy).encoder.variant == "torch"
    meta["encoder_variant"] = "gpu-fp8"
    (copy / "adapter.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="unknown encoder path 'gpu-fp8'"):
        retable.load_adapter(copy)


def test_search_command_prints_ranked_items(run_dir):
    items = read_records(run_dir / "items.jsonl", Item)
    r = subprocess.run([sys.executable, "-m", "retable.cli", "search", str(run_dir), items[0].text, "-k", "2"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and items[0].id in lines[0]


def test_a_reader_waits_for_a_writer_and_sees_the_whole_new_adapter_never_a_mix(run_dir, tmp_path):
    """A writer holding the adapter's lock leaves item_emb.npy cut short for a moment, as `retable index`
    rewriting the adapter does between its files; a reader that starts then gets the complete adapter."""
    import threading
    import time

    import numpy as np

    from retable.runlock import adapter_lock

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    emb = run / "adapter" / "item_emb.npy"
    whole, started = emb.read_bytes(), threading.Event()

    def writer():
        with adapter_lock(run / "adapter", write=True):
            np.save(emb, np.load(emb)[:5])  # half-way through writing the new adapter
            started.set()
            time.sleep(1.5)
            emb.write_bytes(whole)

    t = threading.Thread(target=writer)
    t.start()
    started.wait()
    index = retable.load_adapter(run)  # without the lock: "item_emb.npy has shape (5, 384); adapter.json needs …"
    t.join()
    assert len(index.ids) == len(np.load(emb)) and index.search("tides", k=2)
