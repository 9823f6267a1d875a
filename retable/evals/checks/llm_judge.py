"""The `judge` check: how often the LLM judge (the judge stage, evals/faithfulness.py) finds the kept queries
answerable by their items — trusted only when it tells matching controls from mismatched ones."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding, band


def judge(a, t) -> list[Finding]:
    f, out = a.faithfulness, []
    j = f.judge
    thr = (f"yes on kept < {t.judge_yes_amber:.2f} amber, < {t.judge_yes_red:.2f} red; trusted when yes on matching controls − yes on "
           f"mismatched ones ≥ {t.judge_informative:.2f} with Fisher p < 0.05 (audit.judge_*)")
    if j is None or j.n_kept < t.min_pairs:
        out.append(Finding(level="amber", check="judge", title="the LLM judge read too few pairs to say anything",
                           evidence="judge off (judge_pairs = 0)" if j is None else f"{j.n_kept} kept pairs judged", threshold=thr))
    else:
        ev = (f"yes on {100 * j.yes_kept:.0f}% of {j.n_kept} kept pairs; controls: {100 * (j.yes_control_match or 0):.0f}% on matching, "
              f"{100 * (j.yes_control or 0):.0f}% on mismatched"
              + (f", {100 * j.yes_dropped:.0f}% of pairs the filter dropped" if j.yes_dropped is not None else "")
              + (f"; kappa with the filter {j.kappa_with_filter:.2f}" if j.kappa_with_filter is not None else "")
              + (f"; controls p = {j.control_p:.3f}" if j.control_p is not None else ""))
        if j.informative:
            level = band(j.yes_kept, t.judge_yes_red, t.judge_yes_amber, low_is_bad=True)
            out.append(Finding(level=level, check="judge", title="the LLM judge finds the kept queries answerable by their items" if level == "green"
                               else "the LLM judge finds many kept queries unanswerable by their items", evidence=ev, threshold=thr))
        else:
            out.append(Finding(level="amber", check="judge", title="the LLM judge cannot tell matching controls from "
                                                                   "mismatched ones: its verdicts are not evidence",
                               evidence=ev, threshold=thr))
    return out


CHECK = Check("judge", judge)
