import numpy as np
import pytest
import torch

from retable.adapters.quantizer import centroids, choose_nbits, item_codes, reconstruct, train_pq
from retable.adapters.table import PQTable
from retable.adapters.tune import contrastive_loss, recall_at_k, tune_table


def _data(n=400, d=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("nbits", [3, 5, 8])
def test_untuned_table_equals_faiss_reconstruction(nbits):
    x = _data()
    index = train_pq(x, m=8, nbits=nbits, seed=1)
    codes = item_codes(index, x)
    assert codes.shape == (len(x), 8) and codes.max() < 2**nbits
    np.testing.assert_array_equal(PQTable(centroids(index)).vectors(codes), reconstruct(index, x))


def test_untuned_table_equals_reconstruction_of_real_embeddings(encoder):
    texts = [f"a study of topic {i} in cells and mice" for i in range(64)]
    emb = encoder.encode(texts)
    index = train_pq(emb, m=48, nbits=choose_nbits(len(texts), 8), seed=3)
    np.testing.assert_array_equal(PQTable(centroids(index)).vectors(item_codes(index, emb)), reconstruct(index, emb))


def test_table_roundtrips_through_safetensors(tmp_path):
    table = PQTable(np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3))
    table.save(tmp_path / "t.safetensors")
    again = PQTable.load(tmp_path / "t.safetensors")
    assert torch.equal(table.weight, again.weight)
    np.testing.assert_array_equal(again.vectors(np.array([[1, 3]])), [[3, 4, 5, 21, 22, 23]])


def test_contrastive_loss_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0]])
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = contrastive_loss(q, cand, torch.tensor([0]), tau=1.0)
    assert loss.item() == pytest.approx(-np.log(np.e / (np.e + 1)))


def test_recall_at_k_counts_ties_against():
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.1, 0.2]])
    assert recall_at_k(scores, np.array([0, 1]), k=1) == 0.0
    assert recall_at_k(scores, np.array([0, 0]), k=1) == 0.5


def test_tuning_improves_training_recall_and_is_deterministic():
    x = _data(n=256, d=16, seed=2)
    index = train_pq(x, m=4, nbits=4, seed=0)
    codes = item_codes(index, x)
    rng = np.random.default_rng(5)
    pos = rng.integers(0, len(x), 120)
    q = x[pos] + 0.3 * rng.standard_normal((120, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    def run():
        table = PQTable(centroids(index))
        res = tune_table(table, codes, q[:80], pos[:80], q[80:], pos[80:], epochs=15, patience=15, lr=5e-3, tau=0.05,
                         batch_size=16, hard_negatives=4, seed=7)
        return table, res

    t1, r1 = run()
    t2, r2 = run()
    assert torch.equal(t1.weight, t2.weight)
    before = recall_at_k(q[:80] @ reconstruct(index, x).T, pos[:80])
    after = recall_at_k(q[:80] @ t1.vectors(codes).T, pos[:80])
    assert r1.best_val_mrr >= r1.initial_val_mrr
    assert after > before


def test_mrr_at_k():
    from retable.adapters.tune import mrr_at_k

    scores = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    assert mrr_at_k(scores, np.array([0, 1, 2]), k=2) == pytest.approx((1 + 0.5 + 0) / 3)
