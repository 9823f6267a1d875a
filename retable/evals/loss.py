"""The `loss` check's evidence: is the adapter that ships worse than the frozen encoder used flat, the
system a user runs without retable? Read on the pseudo-queries (title, lead, last, keyphrase, span) of the
items `tune` never trained on (teaching.CHECK_FRACTION of them, plus the LLM test split's items),
each labelled with the item it was cut from. Over the real items once `retable index` ran (or in corpus
mode); over the synthetic items otherwise, which cannot show the loss on the user's corpus."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from retable.metrics import K, dense_reciprocal_ranks, paired_interval, reciprocal_ranks

MAX_QUERIES = 2000  # a sample of the held-out pseudo-queries: enough for a tight interval, cheap on a large corpus


class LossEvidence(BaseModel):
    items: Literal["real", "synthetic"] = Field(description="whose pseudo-queries: the user's items (indexed or corpus mode) or the run's synthetic "
                                                            "ones")
    n_items: int = Field(description="items searched")
    n_queries: int = Field(description="held-out pseudo-queries read")
    mrr_at_10: dict[str, float] = Field(description="frozen_flat, adapted (the shipped table, dense) and bm25 (shown, not judged: the queries are "
                                                    "cut from the items' words)")
    delta: float = Field(description="adapted − frozen_flat, MRR@10")
    ci_low: float = Field(description="paired bootstrap 95% interval of delta over the queries")
    ci_high: float
    indexed: dict | None = Field(None, description="index.json of `retable index`: the corpus, refit or kept codes, the tuning's best epoch")


def loss_evidence(run, config, adapter) -> LossEvidence | None:
    """`run`: the parent RunFolder; `adapter`: the shipped Adapter (the indexed one when there is one)."""
    from retable.adapters.teaching import run_item_splits
    from retable.runfiles import ADAPTER_LEXICAL

    src = run.indexed() or run
    items, pseudo = src.items(), src.pseudo_queries()
    if not pseudo:
        return None
    _, where = run_item_splits(items, src.kept(), config)
    row = {it.id: i for i, it in enumerate(items)}
    pos_all = np.array([row[q.item_id] for q in pseudo], dtype=np.int64)
    held = np.flatnonzero(where[pos_all] == "test")
    if not len(held):
        return None
    if len(held) > MAX_QUERIES:
        held = np.sort(np.random.default_rng(config.seed).choice(held, MAX_QUERIES, replace=False))
    q, pos = np.asarray(src.pseudo_emb()[held], dtype=np.float32), pos_all[held]
    item_emb = np.asarray(src.item_emb(), dtype=np.float32)
    rr = {"frozen_flat": dense_reciprocal_ranks(q, item_emb, pos),
          "adapted": dense_reciprocal_ranks(adapter.query_vectors(q), adapter.item_vectors(item_emb, [it.id for it in items]), pos)}
    lexical_dir = adapter.folder / ADAPTER_LEXICAL
    if lexical_dir.is_dir():
        from retable.retrieval.lexical import Lexical

        rr["bm25"] = reciprocal_ranks(Lexical.load(lexical_dir).top([pseudo[i].text for i in held], K)[1], pos)
    low, high = paired_interval(rr["adapted"], rr["frozen_flat"])
    return LossEvidence(items="real" if all(it.source == "corpus" for it in items) else "synthetic", n_items=len(items), n_queries=len(held),
                        mrr_at_10={k: float(v.mean()) for k, v in rr.items()}, delta=float(rr["adapted"].mean() - rr["frozen_flat"].mean()),
                        ci_low=low, ci_high=high, indexed=run.index_record())
