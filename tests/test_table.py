import numpy as np
import pytest
import torch

from retable.adapters.quantizer import Quantizer, choose_nbits
from retable.adapters.table import PQTable, QueryLinear, ResidualTable, VQTable, load_table, new_table
from retable.baselines.contrastive import PairSet, contrastive_loss, tune_table
from retable.metrics import mrr_at_k, recall_at_k


def _data(n=400, d=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("nbits", [3, 5, 8])
def test_untuned_pq_table_equals_faiss_reconstruction(nbits):
    x = _data()
    quantizer = Quantizer.train(x, m=8, nbits=nbits, seed=1)
    codes = quantizer.codes(x)
    assert codes.shape == (len(x), 8) and codes.max() < 2**nbits
    np.testing.assert_array_equal(PQTable(quantizer.centroids()).item_vectors(codes, x), quantizer.reconstruct(x))


def test_untuned_vq_table_equals_faiss_reconstruction():
    x = _data()
    quantizer = Quantizer.train(x, m=8, nbits=4, seed=1)
    vq = VQTable.from_centroids(quantizer.centroids())
    np.testing.assert_allclose(vq.item_vectors(quantizer.codes(x), x), quantizer.reconstruct(x), rtol=0, atol=1e-6)


def test_opq_scores_equal_faiss_reconstruction_scores():
    x = _data()
    quantizer = Quantizer.train(x, m=8, nbits=4, seed=1, kind="opq")
    assert quantizer.kind == "opq"
    q = _data(n=5, seed=9)
    items = PQTable(quantizer.centroids()).item_vectors(quantizer.codes(x), quantizer.rotate(x))
    np.testing.assert_allclose(quantizer.rotate(q) @ items.T, q @ quantizer.reconstruct(x).T, atol=1e-5)


def test_untuned_residual_table_is_the_frozen_encoder_and_query_linear_the_identity():
    x = _data()
    quantizer = Quantizer.train(x, m=8, nbits=4, seed=1)
    codes = quantizer.codes(x)
    res = ResidualTable.zeros(8, 16, 32)
    np.testing.assert_allclose(res.item_vectors(codes, x), x, atol=1e-6)
    np.testing.assert_allclose(res.query_vectors(x[:3], codes[:3]), x[:3], atol=1e-6)
    np.testing.assert_array_equal(QueryLinear.identity(32).query_vectors(x[:3]), x[:3])


def test_untuned_table_equals_reconstruction_of_real_embeddings(encoder):
    texts = [f"a study of topic {i} in cells and mice" for i in range(64)]
    emb = encoder.encode(texts)
    quantizer = Quantizer.train(emb, m=48, nbits=choose_nbits(len(texts), 8), seed=3)
    np.testing.assert_array_equal(PQTable(quantizer.centroids()).item_vectors(quantizer.codes(emb), emb), quantizer.reconstruct(emb))


@pytest.mark.parametrize("kind", ["pq", "vq", "residual", "pq_residual", "query_linear"])
def test_every_kind_roundtrips_through_safetensors_in_half_precision(tmp_path, kind):
    x = _data(n=64, d=8)
    quantizer = Quantizer.train(x, m=2, nbits=3, seed=0)
    table = new_table(kind, quantizer.centroids(), 8)
    with torch.no_grad():
        table.weight.add_(0.01)
    if kind != "query_linear":
        table.add_collision_residuals(np.array([3, 5]), 64, 8)
        with torch.no_grad():
            table.collision.add_(0.5)
    table.save(tmp_path / "t.safetensors")
    again = load_table(tmp_path / "t.safetensors")
    assert again.kind == kind and again.weight.dtype == torch.float32
    torch.testing.assert_close(again.weight, table.weight.half().float(), rtol=0, atol=0)  # exactly the fp16 rounding
    codes = quantizer.codes(x)
    qcodes = codes if table.uses_query_codes else None
    assert np.abs(again.item_vectors(codes, x) - table.item_vectors(codes, x)).max() < 2e-3
    assert np.abs(again.query_vectors(x, qcodes) - table.query_vectors(x, qcodes)).max() < 2e-3
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "t.safetensors"))
    assert all(v.dtype == torch.float16 for k, v in stored.items() if k != "collision_slot")  # 2 bytes a weight, not 4


def test_pq_lookup_by_hand():
    table = PQTable(np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3))
    np.testing.assert_array_equal(table.item_vectors(np.array([[1, 3]]), np.zeros((1, 6), np.float32)), [[3, 4, 5, 21, 22, 23]])


def test_collision_residual_applies_only_to_its_items():
    table = PQTable(np.zeros((1, 2, 2), dtype=np.float32))
    table.add_collision_residuals(np.array([1]), 3, 2)
    with torch.no_grad():
        table.collision[0] = torch.tensor([1.0, 2.0])
    v = table.item_vectors(np.array([[0], [0], [0]]), np.zeros((3, 2), np.float32), np.array([0, 1, 7]))
    assert v.tolist() == [[0, 0], [1, 2], [0, 0]]  # row 7 is an item added later: no residual


def test_contrastive_loss_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0]])
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = contrastive_loss(q, cand, torch.tensor([0]), tau=1.0)
    assert loss.item() == pytest.approx(-np.log(np.e / (np.e + 1)))


def test_recall_at_k_counts_ties_against():
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.1, 0.2]])
    assert recall_at_k(scores, np.array([0, 1]), k=1) == 0.0
    assert recall_at_k(scores, np.array([0, 0]), k=1) == 0.5


def test_mrr_at_k():
    scores = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    assert mrr_at_k(scores, np.array([0, 1, 2]), k=2) == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize("kind", ["pq", "vq", "residual", "query_linear"])
def test_tuning_improves_training_recall_and_is_deterministic(kind):
    x = _data(n=256, d=16, seed=2)
    quantizer = Quantizer.train(x, m=4, nbits=4, seed=0)
    codes = quantizer.codes(x)
    rng = np.random.default_rng(5)
    pos = rng.integers(0, len(x), 120)
    q = x[pos] + 0.6 * rng.standard_normal((120, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    qcodes = quantizer.codes(q)
    train, val = PairSet(q[:80], qcodes[:80], pos[:80]), PairSet(q[80:], qcodes[80:], pos[80:])

    def run():
        table = new_table(kind, quantizer.centroids(), 16)
        res = tune_table(table, codes, x, train, val, epochs=15, patience=15, lr=5e-3, tau=0.05, batch_size=16, hard_negatives=4, seed=7)
        return table, res

    t1, r1 = run()
    t2, r2 = run()
    assert torch.equal(t1.weight, t2.weight)
    untuned = new_table(kind, quantizer.centroids(), 16)
    before = mrr_at_k(untuned.query_vectors(train.q, train.qcodes) @ untuned.item_vectors(codes, x).T, train.pos)
    after = mrr_at_k(t1.query_vectors(train.q, train.qcodes) @ t1.item_vectors(codes, x).T, train.pos)
    shipped_val = mrr_at_k(t1.query_vectors(val.q, val.qcodes) @ t1.item_vectors(codes, x).T, val.pos)
    assert shipped_val == pytest.approx(r1.best_val_mrr, abs=1e-6)  # the table that ships is the one the record calls best
    assert shipped_val > r1.initial_val_mrr and after > before  # and tuning moved it: held-out and training queries rank better
