"""The teacher and what it trains: pseudo-queries, BM25, fusion, the default table, distillation."""

import numpy as np
import pytest
import torch

from retable.adapters.distill import STRENGTHS, DistillSettings, Labelled, _val_loss, choose_strength, distill, own_item_mrr, scaled_state
from retable.adapters.quantizer import Quantizer
from retable.adapters.table import PQResidualTable, load_table, new_table
from retable.agent.filter import filter_pairs
from retable.agent.pseudo import pseudo_queries
from retable.records import Item, Query
from retable.metrics import reciprocal_ranks
from retable.retrieval.fusion import Candidates, Fusion, minmax
from retable.retrieval.lexical import Lexical


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


ITEMS = [
    Item(id="a", title="Statins and breast cancer", text="Statin users had lower breast cancer mortality. "
                                                         "The cohort came from Finland and ran ten years."),
    Item(id="b", title="", text="Vitamin D supplements in winter. Older adults took cholecalciferol daily and bone density was measured twice."),
    Item(id="c", title="Gut bacteria", text="Probiotic strains changed the colon microbiome. Fiber "
                                            "intake mattered more than the strain itself in this trial."),
]


def test_pseudo_queries_label_their_source_and_repeat_per_seed():
    qs = pseudo_queries(ITEMS, seed=3)
    assert {q.format for q in qs} == {"title", "lead", "last", "keyphrase", "span"}
    assert not [q for q in qs if q.item_id == "b" and q.format == "title"]  # no title, no title query
    assert all(q.id == f"p-{q.format}-{q.item_id}" for q in qs)
    lead = {q.item_id: q.text for q in qs if q.format == "lead"}
    assert lead["a"] == "Statin users had lower breast cancer mortality."
    last = {q.item_id: q.text for q in qs if q.format == "last"}
    assert last["c"] == "Fiber intake mattered more than the strain itself in this trial."
    assert [q.text for q in qs] == [q.text for q in pseudo_queries(ITEMS, seed=3)]
    spans = {q.item_id: q.text for q in qs if q.format == "span"}
    assert all(spans[i] in it.text for i, it in zip("abc", ITEMS))
    assert [q.format for q in pseudo_queries(ITEMS, seed=3, formats=("keyphrase",))] == ["keyphrase"] * 3


def test_last_takes_the_last_words_of_a_text_without_sentence_ends():
    words = [f"term{i}" for i in range(30)]
    items = [Item(id="long", text=" ".join(words)), Item(id="short", text=" ".join(words[:12]))]
    last = {q.item_id: q.text for q in pseudo_queries(items, seed=0, formats=("last",))}
    assert last == {"long": " ".join(words[10:])}  # a text of 20 words or fewer is all `lead` already


def test_keyphrases_prefer_words_only_their_item_has():
    items = [Item(id=str(i), text=f"patients study results trial number{i} cohort analysis outcome measure") for i in range(5)]
    items.append(Item(id="x", text="patients study results trial cholecalciferol supplementation cohort analysis"))
    key = {q.item_id: q.text for q in pseudo_queries(items, seed=0, formats=("keyphrase",))}
    assert "cholecalciferol" in key["x"] and "supplementation" in key["x"]


def test_bm25_stems_saves_and_extends(tmp_path):
    lexical = Lexical.build([it.encode_text() for it in ITEMS])
    scores, rows = lexical.top(["statin mortality", "probiotics", "nothing matches zzz"], 2)
    assert rows[0, 0] == 0 and rows[1, 0] == 2 and scores[0, 0] > 0 and scores[2].max() == 0
    lexical.save(tmp_path / "bm25")
    again = Lexical.load(tmp_path / "bm25")
    assert again.texts == lexical.texts and np.array_equal(again.top(["statin"], 3)[1], lexical.top(["statin"], 3)[1])
    bigger = again.extended(["Aspirin and colorectal polyps in a randomized trial."])
    assert bigger.n_items == 4 and bigger.top(["aspirin polyps"], 1)[1][0, 0] == 3


def test_fusion_scores_the_lexical_only_candidates_exactly():
    items = _unit(6, 8, 0)
    q = items[[1]] + 0.05 * _unit(1, 8, 1)
    dense = (np.array([[0.9, 0.5]], dtype=np.float32), np.array([[1, 2]]))
    lexical = (np.array([[7.0, 1.0]], dtype=np.float32), np.array([[4, 1]]))
    c = Candidates.build(dense, lexical, items, q)
    assert list(c.rows[0][c.rows[0] >= 0]) == [1, 2, 4]
    lex = dict(zip(c.rows[0], c.lexical[0]))
    assert lex[4] == 1.0 and lex[1] == 0.0 and lex[2] == 0.0
    assert np.allclose(minmax(np.array([[2.0, 4.0, 3.0]])), [[0.0, 1.0, 0.5]])
    assert c.ranked(0.0, 1)[1][0, 0] == 1 and c.ranked(1.0, 1)[1][0, 0] == 4
    assert list(reciprocal_ranks(np.array([[3, 4], [5, 6]]), np.array([4, 9]))) == [0.5, 0.0]
    short = (np.array([[0.9, 0.5, -3e38]], dtype=np.float32), np.array([[1, 2, -1]]))  # an IVF search that found 2 of 3
    s = Candidates.build(short, lexical, items, q)
    assert dict(zip(s.rows[0][s.rows[0] >= 0], s.dense[0])) == pytest.approx(dict(zip(c.rows[0][c.rows[0] >= 0], c.dense[0])))


def _two_lists(lex_scores, dense_scores):
    """Candidates for one query over 4 items: BM25 lists rows 0..3, the dense model rows 3..0 (opposite orders)."""
    items = np.eye(4, dtype=np.float32)
    q = np.array([dense_scores[::-1]], dtype=np.float32)  # row r's dense score is q[r]
    dense = (np.array([dense_scores], dtype=np.float32), np.array([[3, 2, 1, 0]]))
    return Candidates.build(dense, (np.array([lex_scores], dtype=np.float32), np.array([[0, 1, 2, 3]])), items, q)


def test_the_peak_rule_gives_more_say_to_the_retriever_surer_of_its_top_item():
    # BM25's best item stands far above its others; the dense model's scores are flat: BM25's top item wins
    sure_lexical = _two_lists([10.0, 1.0, 0.9, 0.8], [0.52, 0.51, 0.50, 0.49])
    assert Fusion("peak").ranked(sure_lexical, 1)[1][0, 0] == 0
    # the same lists with the sureness swapped: the dense model's top item (row 3) wins
    sure_dense = _two_lists([1.1, 1.0, 0.9, 0.8], [0.95, 0.30, 0.29, 0.28])
    assert Fusion("peak").ranked(sure_dense, 1)[1][0, 0] == 3
    # a fixed share ignores sureness: at 0.5 both lists' tops tie on min-max scores and the order is the union's
    assert Fusion("minmax", 0.9).ranked(sure_dense, 1)[1][0, 0] == 0
    for rule in ("zscore", "rrf"):
        assert set(Fusion(rule).ranked(sure_dense, 4)[1][0]) == {0, 1, 2, 3}


def test_a_fusion_round_trips_through_an_adapters_manifest_and_old_manifests_read_as_minmax():
    assert Fusion.from_meta(Fusion().meta()) == Fusion("peak") and Fusion.of(None) == Fusion("peak")
    assert Fusion.from_meta({"hybrid_weight": 0.4}) == Fusion("minmax", 0.4) == Fusion.of(0.4)
    assert Fusion.from_meta({}) is None
    for bad in (("minmax", None), ("minmax", 1.5), ("minmax", float("nan")), ("best", None), ("peak", 0.3)):
        with pytest.raises(ValueError):
            Fusion(*bad)


def test_the_default_table_starts_exactly_at_the_frozen_encoder_and_is_small(tmp_path):
    x = _unit(300, 384, 2)
    quantizer = Quantizer.train(x, m=48, nbits=4, seed=0)
    table = new_table("pq_residual", quantizer.centroids(), quantizer.dim)
    assert isinstance(table, PQResidualTable)
    np.testing.assert_allclose(table.item_vectors(quantizer.codes(x), x), x, atol=1e-6)
    q = _unit(4, 384, 3)
    np.testing.assert_allclose(table.query_vectors(q, quantizer.codes(q)), q, atol=1e-6)
    full = new_table("pq_residual", np.zeros((48, 256, 8), dtype=np.float32), 384)
    assert full.n_parameters() == 48 * 256 * 32 + 32 * 384 and full.n_parameters() <= 0.02 * 22_713_216
    with torch.no_grad():
        table.weight.normal_()
    table.save(tmp_path / "t.safetensors")
    again = load_table(tmp_path / "t.safetensors")
    np.testing.assert_allclose(again.item_vectors(quantizer.codes(x), x), table.item_vectors(quantizer.codes(x), x), atol=2e-3)  # fp16 on disk
    full.save(tmp_path / "full.safetensors")
    assert (tmp_path / "full.safetensors").stat().st_size < 900_000  # the artifact's table: 2 bytes a weight


def _labelled(items, quantizer, n, seed, noise=0.3):
    """Queries near their item; the teacher gives that item all its weight among 8 candidates."""
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, len(items), n)
    q = items[pos] + noise * _unit(n, items.shape[1], seed + 1)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    rows = np.stack([np.concatenate([[p], rng.choice(np.delete(np.arange(len(items)), p), 7, replace=False)]) for p in pos])
    return Labelled(q, quantizer.codes(q), rows, np.tile(np.eye(8, dtype=np.float32)[0], (n, 1)), pos)


@pytest.mark.parametrize("lr", [5e-3, 5.0])
def test_distillation_keeps_the_untuned_table_unless_validation_improves(lr):
    items = _unit(200, 32, 4)
    quantizer = Quantizer.train(items, m=4, nbits=4, seed=0)
    codes = quantizer.codes(items)
    train, val = _labelled(items, quantizer, 300, 10), _labelled(items, quantizer, 300, 20)
    table = new_table("pq_residual", quantizer.centroids(), quantizer.dim)
    settings = DistillSettings(epochs=4, patience=4, lr=lr, seed=0)
    result = distill(table, codes, items, train, val, settings)
    shipped = _val_loss(table, val, torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(items), settings)
    assert shipped == pytest.approx(result.best_val_loss, abs=1e-5)  # the table that ships is the one the record calls best
    if lr > 1:  # a reckless step size wrecks every tuned epoch on validation: epoch 0, the frozen encoder, ships
        assert max(h["val_loss"] for h in result.history[1:]) > result.initial_val_loss
        assert result.best_epoch == 0 and float(table.weight.abs().max()) == 0.0
    else:
        assert result.best_epoch > 0 and result.best_val_loss < result.initial_val_loss
        assert own_item_mrr(table, codes, items, val) >= result.initial_val_mrr


@pytest.mark.parametrize("noise,ships", [(0.0, True), (1.0, False)])
def test_a_tuned_epoch_ships_only_when_a_paired_interval_excludes_0(monkeypatch, noise, ships):
    """The tuned epoch lowers the mean validation loss in both cases; with per-query noise around that gain the
    untuned table, the prior, ships."""
    import retable.adapters.distill as distill_mod

    items = _unit(200, 32, 4)
    quantizer = Quantizer.train(items, m=4, nbits=4, seed=0)
    codes = quantizer.codes(items)
    train, val = _labelled(items, quantizer, 300, 10), _labelled(items, quantizer, 300, 20)
    rng = np.random.default_rng(0)
    base, jitter = rng.uniform(1.0, 2.0, 300), noise * rng.normal(size=300)
    per_query = iter([base - 0.02 + jitter - jitter.mean(), base])  # the tuned epoch's, then the untuned table's; later calls: all equal
    monkeypatch.setattr(distill_mod, "_query_losses", lambda *a: next(per_query, base))
    table = new_table("pq_residual", quantizer.centroids(), quantizer.dim)
    result = distill(table, codes, items, train, val, DistillSettings(epochs=2, patience=2, lr=5e-3, seed=0))
    assert result.lowest_epoch > 0 and result.epoch_interval[0] == pytest.approx(-0.02)
    assert (result.epoch_interval[2] < 0) == ships
    if ships:
        assert result.best_epoch == result.lowest_epoch and float(table.weight.detach().abs().max()) > 0
    else:
        assert result.best_epoch == 0 and float(table.weight.detach().abs().max()) == 0.0 and result.val_loss_by_strength == {}
        assert result.best_val_loss == result.initial_val_loss and result.best_val_mrr == result.initial_val_mrr


def test_the_strength_scales_the_correction_up_only_when_validation_stopped_the_tuning():
    items = _unit(200, 32, 4)
    quantizer = Quantizer.train(items, m=4, nbits=4, seed=0)
    codes = quantizer.codes(items)
    train, val = _labelled(items, quantizer, 300, 10), _labelled(items, quantizer, 300, 20)
    table = new_table("pq_residual", quantizer.centroids(), quantizer.dim)
    settings = DistillSettings(epochs=1, patience=1, lr=2e-4, seed=0)
    result = distill(table, codes, items, train, val, settings)  # one small step, stopped by the epoch cap, not by validation
    assert result.best_epoch == 1 and result.strength == 1.0
    assert set(result.val_loss_by_strength) == {str(a) for a in STRENGTHS if a <= 1.0}
    assert result.best_val_loss == pytest.approx(result.history[1]["val_loss"], abs=1e-6)
    start, tuned = new_table("pq_residual", quantizer.centroids(), quantizer.dim).state_dict(), table.state_dict()
    half = scaled_state(table, start, tuned, 0.5)
    torch.testing.assert_close(half["weight"], table.weight.detach() * 0.5)
    torch.testing.assert_close(half["proj"], table.proj.detach())  # the projection the corrections live in is not scaled
    # had validation stopped it, the scales above 1 compete: this short step is too short, so one of them wins
    tuned = {k: v.clone() for k, v in tuned.items()}
    strength, loss, losses, interval = choose_strength(table, start, tuned, val, torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(items),
                                                       settings, STRENGTHS)
    assert strength > 1.0 and set(losses) == {str(a) for a in STRENGTHS} and interval[2] < 0  # below strength 1 on every resample
    assert loss == pytest.approx(min(losses.values()), abs=1e-6) and loss < result.history[1]["val_loss"]
    torch.testing.assert_close(table.weight.detach(), tuned["weight"] * strength)  # the chosen scale is what the table now holds


def test_the_filter_keeps_pairs_bm25_finds_and_says_who_found_them():
    items = [Item(id=f"i{n}", text=f"common filler words about topic {n} and more filler words") for n in range(30)]
    items.append(Item(id="rare", text="zygomycosis treated with amphotericin in diabetic patients"))
    emb = _unit(len(items), 16, 5)
    queries = [Query(id="q1", item_id="rare", text="amphotericin zygomycosis", format="keyword"),
               Query(id="q2", item_id="i3", text="filler topic words", format="keyword")]
    q_emb = np.stack([-emb[-1], emb[3]])  # the dense model ranks "rare" last for q1, i3 first for q2
    kept, dropped = filter_pairs(queries, items, emb, q_emb, top_k=1)
    found = {p.query_id: p.found_by for p in kept}
    assert found["q1"] == "bm25" and found["q2"] in ("dense", "both") and not dropped


@pytest.mark.parametrize("noise,want", [(0.0, 1.5), (1.0, 1.0)])
def test_a_strength_other_than_1_ships_only_when_a_paired_interval_excludes_0(monkeypatch, noise, want):
    """Strength 1.5 is lower on average in both cases; with per-query noise around that gain, 1 stays."""
    import retable.adapters.distill as distill_mod

    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 2.0, 40)
    jitter = noise * rng.normal(size=40)
    per_query = iter([base + 0.2, base, base - 0.02 + jitter - jitter.mean()])  # strengths 0.5, 1, 1.5, in the order they are tried
    monkeypatch.setattr(distill_mod, "_query_losses", lambda *a: next(per_query))
    monkeypatch.setattr(distill_mod, "_val_loss", lambda *a: 0.0)
    table = type("T", (), {"load_state_dict": lambda self, s: None, "BASIS": ()})()
    strength, _, losses, interval = choose_strength(table, {}, {}, list(range(40)), None, None, DistillSettings(), (0.5, 1.0, 1.5))
    assert min(losses, key=losses.get) == "1.5" and strength == want
    assert (interval[2] < 0) == (want == 1.5)
