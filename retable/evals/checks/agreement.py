"""The `retriever_agreement` check: the share of kept pairs whose item the frozen encoder ranks in its top k.
Its planted fault pairs every kept query with another pair's item."""

from __future__ import annotations

from retable.evals.checks.base import Check, Fault, Finding, band


def judge(a, t) -> list[Finding]:
    f, out = a.faithfulness, []
    agree = f.retriever_agreement
    out.append(Finding(level=band(agree, t.retriever_agreement_red, t.retriever_agreement_amber, low_is_bad=True), check="retriever_agreement",
                       title="kept pairs whose item the frozen encoder ranks in its top k",
                       evidence=f"{100 * agree:.1f}% of {a.kept} kept pairs (top {a.filter_top_k})",
                       threshold=f"< {t.retriever_agreement_amber:.2f} amber, < {t.retriever_agreement_red:.2f} red (audit.retriever_agreement_*)"))
    return out


def shuffle_pairs(run, rng, foreign=None) -> None:
    """Every kept query is paired with another kept pair's item (a derangement of the item ids)."""
    kept = run.kept()
    ids = [p.item_id for p in kept]
    order = list(range(len(ids)))
    rng.shuffle(order)
    moved = [ids[order[(i + 1) % len(order)]] for i in range(len(order))]
    back = {o: m for o, m in zip(order, moved)}
    run.write_kept([p.model_copy(update={"item_id": back[i]}) for i, p in enumerate(kept)])


CHECK = Check("retriever_agreement", judge, fault=Fault("shuffled_pairs", shuffle_pairs))
