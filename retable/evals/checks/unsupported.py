"""The `unsupported_facts` check: kept queries naming numbers or names their item does not contain."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding


def judge(a, t) -> list[Finding]:
    f, out = a.faithfulness, []
    u = f.unsupported
    if u.n_queries >= t.min_pairs:
        out.append(Finding(level="amber" if u.share > t.unsupported_facts_amber else "green", check="unsupported_facts",
                           title="kept queries naming numbers or names their item does not contain",
                           evidence=f"{100 * u.share:.0f}% of {u.n_queries} kept queries",
                           threshold=f"> {t.unsupported_facts_amber:.2f} amber (audit.unsupported_facts_amber)"))
    return out


CHECK = Check("unsupported_facts", judge)
