"""The `off_domain` check: items far from the domain the description names (retable/domain.py measures it).
Its planted fault replaces a quarter of the items without kept pairs by another collection's."""

from __future__ import annotations


from retable.evals.checks.base import Check, Fault, Finding, band


def judge(a, t) -> list[Finding]:
    f, out = a.faithfulness, []
    d = f.domain
    out.append(Finding(level=band(d.share, t.off_domain_red, t.off_domain_amber, low_is_bad=False), check="off_domain",
                       title="items far from the domain the description names",
                       evidence=f"{len(d.off_domain)} of {a.n_items} items ({100 * d.share:.1f}%) "
                                f"below similarity {d.threshold:.3f} to the domain seeds",
                       threshold=f"> {t.off_domain_amber:.2f} amber, > {t.off_domain_red:.2f} red (audit.off_domain_*)"))
    return out


def replace_items(run, rng, foreign, share: float = 0.25) -> None:
    """A `share` of the first round's items, among those without kept pairs, become items of another domain."""
    if foreign is None:
        raise ValueError("off_domain_items needs foreign items and their embeddings")
    foreign, foreign_emb = foreign
    items = run.first_items()
    emb = run.first_item_emb()
    with_pairs = {p.item_id for p in run.kept()}
    rows = [i for i, it in enumerate(items) if it.id not in with_pairs]
    rng.shuffle(rows)
    n = min(int(round(share * len(items))), len(rows), len(foreign))
    picks = rng.sample(range(len(foreign)), n)
    for row, f in zip(rows[:n], picks):
        items[row] = foreign[f].model_copy(update={"id": items[row].id})
        emb[row] = foreign_emb[f]
    run.write_items(items)
    run.write_item_emb(emb)


CHECK = Check("off_domain", judge, fault=Fault("off_domain_items", replace_items, redo=("codes", "pseudo")))
