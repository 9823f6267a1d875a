"""The `format_coverage` check: every kept query format not held out by design should have training pairs.
Its planted fault tunes without one format while nothing in the config says so."""

from __future__ import annotations

from retable.evals.checks.base import Check, Fault, Finding


def judge(a, t) -> list[Finding]:
    out = []
    for fmt, n in a.kept_by_format.items():
        if a.train_by_format.get(fmt, 0) == 0:
            s = a.held_out.by_format.get(fmt)
            measured = f"; held-out MRR@10 {s.mrr_at_10[a.held_out.before]:.3f} → {s.mrr_at_10['adapted']:.3f} on {s.n_pairs} pairs" if s else ""
            if fmt in a.holdout_formats:
                out.append(Finding(level="green", check="format_coverage", title=f"format '{fmt}' held out of tuning by design",
                                   evidence=f"{n} kept pairs, none tuned on{measured}", threshold="holdout_formats in the run config"))
            else:
                out.append(Finding(level="amber", check="format_coverage", title=f"format '{fmt}' was never tuned on",
                                   evidence=f"{n} kept pairs, 0 of them in the training split{measured}",
                                   threshold="every kept format not in holdout_formats should have training pairs"))
    return out


def _nothing(run, rng, foreign) -> None:
    """The data stay; only the tuning leaves a format out."""


def _without_last_format(run) -> dict:
    return {"holdout_formats": [sorted({p.format for p in run.kept()})[-1]]}


CHECK = Check("format_coverage", judge, fault=Fault("format_removed", _nothing, tune_with=_without_last_format))
