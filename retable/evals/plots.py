"""The report's plots, drawn with matplotlib (Agg) and embedded as base64 PNG data URIs so the HTML
needs no external file."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from retable.evals.audit import Audit  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def format_plot(audit: Audit) -> str | None:
    h = audit.held_out
    if h.all is None:
        return None
    names = ["all", *h.by_format]
    slices = [h.all, *h.by_format.values()]
    fig, ax = plt.subplots(figsize=(6, 3))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [s.mrr_at_10[h.before] for s in slices], width=0.4, label=f"without retable ({h.before})")
    ax.bar([i + 0.2 for i in x], [s.mrr_at_10["adapted"] for s in slices], width=0.4, label="adapted")
    ax.set_xticks(list(x), [f"{n}\n({s.n_pairs})" for n, s in zip(names, slices)])
    ax.set_ylabel("MRR@10, held-out")
    ax.set_title("Per query format (pairs)")
    ax.legend(fontsize=8)
    return _png(fig)


def collision_plot(audit: Audit) -> str | None:
    bins = audit.codebook.by_popularity
    if not bins:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    x = range(len(bins))
    ax.plot(x, [100 * b.collision_rate for b in bins], marker="o", label="share all codes")
    ax.plot(x, [100 * b.indistinct_rate for b in bins], marker="s", label="indistinct after tuning")
    ax.set_xticks(list(x), [f"{b.ranks}\n({b.items})" for b in bins], fontsize=8)
    ax.set_ylim(0, max(1.0, *(100 * b.collision_rate for b in bins)) * 1.15)
    ax.set_xlabel("item popularity rank (items)")
    ax.set_ylabel("% of items")
    ax.set_title("Collisions by popularity")
    ax.legend(fontsize=8)
    return _png(fig)


def domain_plot(audit: Audit) -> str:
    d = audit.faithfulness.domain
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(d.similarity_to_seeds, bins=40)
    ax.axvline(d.threshold, color="tab:red", linestyle="--", label=f"off-domain below {d.threshold:.2f}")
    ax.set_xlabel("similarity to the domain seeds")
    ax.set_ylabel("items")
    ax.set_title("Items against the described domain")
    ax.legend(fontsize=8)
    return _png(fig)


def tuning_plot(audit: Audit) -> str | None:
    hist = audit.tuned.history
    if not hist:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([h["epoch"] for h in hist], [h["val_mrr@10"] for h in hist], marker="o")
    ax.axhline(audit.tuned.initial_val_mrr, color="tab:gray", linestyle=":", label="untuned")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MRR@10")
    ax.set_title("Tuning")
    ax.legend(fontsize=8)
    return _png(fig)


def all_plots(audit: Audit) -> dict[str, str | None]:
    """Every plot the report knows, None where the run has nothing to draw (no held-out pairs, say)."""
    return {"formats": format_plot(audit), "collisions": collision_plot(audit), "domain": domain_plot(audit), "tuning": tuning_plot(audit)}
