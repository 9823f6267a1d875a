"""The `collapse` check: the spread of the adapted item vectors against the untuned table's (evals/drift.py
measures it). Its planted fault pulls the table's vectors together."""

from __future__ import annotations

import numpy as np

from retable.evals.checks.base import Check, Fault, Finding, band


def judge(a, t) -> list[Finding]:
    d, out = a.drift, []
    out.append(Finding(level=band(d.spread_ratio, t.spread_red, t.spread_amber, low_is_bad=True), check="collapse",
                       title="spread of the adapted item vectors against the untuned table's",
                       evidence=f"spread {d.spread_untuned:.3f} → {d.spread_adapted:.3f} (ratio {d.spread_ratio:.2f})",
                       threshold=f"ratio < {t.spread_amber:.2f} amber, < {t.spread_red:.2f} red (audit.spread_*)"))
    return out


def collapse_table(run, seed: int) -> None:
    """Pull every code vector to its sub-space's mean and add noise as large as what is left (pq, vq),
    or make every code's correction one large shared vector (pq_residual): the item vectors crowd
    together and their order is mostly noise."""
    import torch

    from retable.adapters.table import PQResidualTable, load_table
    from retable.runfiles import ADAPTER_TABLE

    rng = np.random.default_rng(seed)
    path = run.adapter_file(ADAPTER_TABLE)
    table = load_table(path)
    with torch.no_grad():
        w = table.weight
        if isinstance(table, PQResidualTable):  # every code adds one large shared correction: all items point its way
            shared = torch.as_tensor(rng.standard_normal(w.shape[-1]), dtype=w.dtype)
            shared *= 10.0 / float((shared @ table.proj).norm())
            w.copy_(shared + 0.05 * shared.std() * torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype))
        elif table.compressed:
            mean = w.mean(dim=-2, keepdim=True)
            kept = 0.05 * (w - mean)
            noise = torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype) * kept.std()
            w.copy_(mean + kept + noise)
        else:
            raise ValueError(f"collapse is planted into pq, vq or pq_residual tables, not {table.kind}")
    table.save(path)


CHECK = Check("collapse", judge, fault=Fault("collapsed_table", collapse_table, into="adapter"))
