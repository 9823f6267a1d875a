import numpy as np

from retable.agent.filter import filter_pairs
from retable.records import Item, Query


def _unit(*rows):
    a = np.array(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_filter_keeps_round_trips_and_drops_with_reasons():
    items = [Item(id=str(i), text=f"item number {i} about many different things") for i in range(4)]
    item_emb = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0])
    queries = [
        Query(id="a", item_id="0", text="first thing", format="keyword"),
        Query(id="b", item_id="1", text="second thing", format="keyword"),  # its item ranks last (4th)
        Query(id="c", item_id="2", text="first thing", format="question"),  # same text as a
        Query(id="d", item_id="3", text="x", format="keyword"),
        Query(id="e", item_id="3", text="item number 3 about many different", format="claim"),
        Query(id="f", item_id="0", text="garlic shrimp quick dinner", format="keyword", copies_prompt=True),
    ]
    query_emb = _unit([1, 0, 0], [1, 0, 0.1], [0, 0, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0])
    kept, dropped = filter_pairs(queries, items, item_emb, query_emb, top_k=2)
    assert [p.query_id for p in kept] == ["a"]
    assert kept[0].rank == 1
    reasons = {d.query_id: (d.reason, d.rank) for d in dropped}
    assert reasons["b"] == ("round_trip_rank", 4)
    assert reasons["c"][0] == "duplicate"
    assert reasons["d"][0] == "malformed"
    assert reasons["e"][0] == "copied_from_item"
    assert reasons["f"] == ("copied_from_prompt", 1)  # dropped although its item ranks first
