"""The `loss` check: is the adapter that ships worse than the frozen encoder used flat, the system a user
runs without retable? Read on the pseudo-queries (title, lead, last, keyphrase, span) of the items `tune`
never trained on (teaching.CHECK_FRACTION of them, plus the LLM test split's items), each labelled with the
item it was cut from. Over the real items once `retable index` ran (or in corpus mode); over the synthetic
items otherwise, which cannot show the loss on the user's corpus. Red when the adapter loses more than
audit.loss_red with its 95% interval below 0."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from retable.evals.checks.base import Check, Finding
from retable.metrics import K, dense_reciprocal_ranks, paired_interval, reciprocal_ranks

MAX_QUERIES = 2000  # a sample of the held-out pseudo-queries: enough for a tight interval, cheap on a large corpus


class LossEvidence(BaseModel):
    items: Literal["real", "synthetic"] = Field(description="whose pseudo-queries: the user's items (indexed "
                                                            "or corpus mode) or the run's synthetic ones")
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


INDEX_HINT = "`retable index RUN --corpus FILE` fits the adapter to them and measures it there"


def judge(a, t) -> list[Finding]:
    """The shipped adapter against the frozen encoder on held-out pseudo-queries; says what it could not see."""
    thr = (f"adapted below frozen_flat by > {t.loss_red:.3f} MRR@10 with its 95% interval below 0: red; by more within the noise: amber "
           "(audit.loss_red); over synthetic items only: amber, the loss on the user's corpus is unknown")
    e = a.loss
    if e is None:
        return [Finding(level="amber", check="loss", title="no held-out pseudo-queries: the loss against the frozen encoder is unmeasured",
                        evidence="the run has no pseudo-queries (pseudo_formats is empty) or no item held out of tuning", threshold=thr)]
    loss = e.delta < -t.loss_red
    level = "red" if loss and e.ci_high < 0 else "amber" if loss or e.items == "synthetic" else "green"
    m = e.mrr_at_10
    bm25 = f"; bm25 {m['bm25']:.3f} (these queries are cut from the items' words: shown, not judged)" if "bm25" in m else ""
    seen = (f"{e.n_queries} pseudo-queries of {e.n_items:,} {e.items} items never tuned on, each labelled with the item it was cut from"
            + (f" (indexed from {e.indexed['corpus']}, codes {e.indexed['codes']})" if e.indexed else ""))
    unseen = ("no real items yet: the loss on your corpus is unknown — " + INDEX_HINT if e.items == "synthetic"
              else "not seen: real users' queries — `retable audit RUN --probe BEIR_DIR` measures them")
    title = ("the adapter is measurably worse than the frozen encoder" if level == "red"
             else "the adapter may be worse than the frozen encoder" if loss
             else "no loss against the frozen encoder on the synthetic items; the real items are unseen" if e.items == "synthetic"
             else "no loss against the frozen encoder on the real items")
    return [Finding(level=level, check="loss", title=title,
                    evidence=(f"MRR@10 frozen_flat {m['frozen_flat']:.3f} → adapted {m['adapted']:.3f} ({e.delta:+.3f}, 95% interval "
                              f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]) on {seen}{bm25}. {unseen}"),
                    threshold=thr)]


def measure(ctx, data) -> LossEvidence | None:
    return loss_evidence(ctx.run, ctx.config, data.shipped)


CHECK = Check("loss", judge, evidence=LossEvidence, measure=measure)
