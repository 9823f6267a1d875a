"""The frozen encoder's two paths: onnx-int8 (the default, exported locally at first use) and torch."""

import numpy as np
import pytest

from retable.encoder.frozen import Encoder
from retable.encoder.onnx import check_structure
from retable.errors import UserError

TEXTS = ["Statin therapy lowers LDL cholesterol in adults.", "how to bake sourdough bread at home?",
         "The committee approved the new budget for public libraries.", "quantum error correction with surface codes", "x"]


@pytest.fixture(scope="module")
def torch_encoder():
    return Encoder("all-MiniLM-L6-v2", backend="torch")


def test_the_int8_path_gives_nearly_the_torch_vectors_and_keeps_the_ranking(encoder, torch_encoder):
    assert encoder.variant == "onnx-int8" and torch_encoder.variant == "torch"
    a, b = torch_encoder.encode(TEXTS), encoder.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(1)
    assert cos.mean() > 0.99 and cos.min() > 0.97  # the one-letter text is the farthest (0.979 measured)
    assert np.array_equal(np.argmax(a[:4] @ b[:4].T, axis=1), np.arange(4))  # each text is its own nearest neighbour across the paths
    assert encoder.checksum() == torch_encoder.checksum()  # one set of frozen weights
    assert encoder.identity() != torch_encoder.identity()  # but caches of their vectors are kept apart


def test_the_export_is_cached_and_reused(encoder, tmp_path, monkeypatch):
    first = encoder._onnx().path
    assert first.is_file() and first.stat().st_size < 30_000_000  # int8 weights: about a quarter of the fp32 model
    again = Encoder("all-MiniLM-L6-v2")
    assert again._onnx().path == first  # keyed by weights, onnxruntime version and recipe
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fresh = Encoder("all-MiniLM-L6-v2")
    np.testing.assert_allclose(fresh.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)  # the same recipe made again gives the same vectors
    assert not list((tmp_path / "cache" / "retable" / "encoders").glob(".export-*"))  # nothing half-written is left
    fresh._onnx().path.write_bytes(b"not an onnx file")  # a damaged cache: one line that says what to delete
    with pytest.raises(UserError, match="does not load .* delete .* and it is made again"):
        Encoder("all-MiniLM-L6-v2").encode(TEXTS)


def test_an_unknown_backend_and_an_unsupported_model_are_one_line_errors(torch_encoder):
    with pytest.raises(UserError, match="unknown encoder backend 'cuda'"):
        Encoder("all-MiniLM-L6-v2", backend="cuda")

    class Other:  # a model that is not Transformer + Pooling (+ Normalize)
        pass

    with pytest.raises(UserError, match="--encoder-backend torch"):
        check_structure([torch_encoder.model[0], Other()])
    assert check_structure(torch_encoder.model) == "mean"


def test_a_texts_vector_does_not_depend_on_what_is_encoded_beside_it(encoder):
    alone = np.vstack([encoder.encode([t]) for t in TEXTS])
    assert np.array_equal(encoder.encode(TEXTS), alone)  # int8 activations are scaled per tensor: a batch would mix the texts
    assert np.array_equal(encoder.encode([TEXTS[0], "a much longer neighbour " * 40])[0], alone[0])


def test_an_export_that_drifts_falls_back_to_float_feed_forward_outputs_or_says_both(torch_encoder, tmp_path, monkeypatch):
    import json

    import retable.encoder.onnx as onnx_encoder

    real, calls = onnx_encoder.OnnxEncoder._cosine, []

    def all_int8_drifts(self, path):  # the first recipe's check fails, as all-mpnet-base-v2's does (0.93)
        calls.append(path)
        return 0.5 if len(calls) == 1 else real(self, path)

    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "_cosine", all_int8_drifts)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a"))
    fallback = Encoder("all-MiniLM-L6-v2")
    cos = (fallback.encode(TEXTS) * torch_encoder.encode(TEXTS)).sum(1)
    recipe = json.loads((fallback._onnx().path.parent / "recipe.json").read_text())
    assert recipe["recipe"] == onnx_encoder.FFN_FLOAT and len(recipe["float_matmuls"]) == 6  # one per layer of MiniLM's six
    assert cos.min() > 0.97 and recipe["min_cosine"] >= onnx_encoder.MIN_COSINE
    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "_cosine", lambda self, path: 0.9)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    with pytest.raises(UserError, match="all int8: cosine 0.900, int8, feed-forward outputs in float: cosine 0.900.*--encoder-backend torch"):
        Encoder("all-MiniLM-L6-v2").encode(TEXTS)
    assert not list((tmp_path / "b" / "retable" / "encoders").glob("*/model.onnx"))  # nothing cached that failed its check
