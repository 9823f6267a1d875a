"""The audit's checks, a registry. Each file here is one check: its findings (red, amber or green), and where
it has them, evidence of its own (a field of audit.json, named after it) and its planted fault. Its thresholds
are fields of RunConfig's `audit` (retable/thresholds.py), which must import without the audit. A new check is
one file here, its line in CHECKS, and its thresholds."""

from __future__ import annotations

from retable.evals.checks import (agreement, choices, collapse, collisions, coverage, drift, encoder, held_out, llm_judge, loss, off_domain,
                                  probe, unsupported)
from retable.evals.checks.base import Check, Finding

# the order findings of one level are listed in
CHECKS: list[Check] = [
    loss.CHECK,
    held_out.CHECK,
    coverage.CHECK,
    agreement.CHECK,
    llm_judge.CHECK,
    unsupported.CHECK,
    off_domain.CHECK,
    drift.CHECK,
    collapse.CHECK,
    encoder.CHECK,
    probe.CHECK,
    collisions.CHECK,
    choices.CHECK,
]
ORDER = {"red": 0, "amber": 1, "green": 2}


def judge_audit(audit, thresholds) -> tuple[str, list[Finding]]:
    """All findings, worst first, and the verdict (the worst level)."""
    found = [f for check in CHECKS for f in check.judge(audit, thresholds)]
    found.sort(key=lambda f: ORDER[f.level])
    return (found[0].level if found else "green"), found
