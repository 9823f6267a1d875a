"""The `encoder` check: the frozen encoder's weights are the same before tuning, after it, and when the audit ran."""

from __future__ import annotations

from retable.evals.checks.base import Check, Finding


def judge(a, t) -> list[Finding]:
    out = []
    if not a.encoder.unchanged:
        out.append(Finding(level="red", check="encoder", title="the encoder's weights changed",
                           evidence=f"sha256 {a.encoder.checksum_before[:12]}… → {a.encoder.checksum_now[:12]}…", threshold="must be identical"))
    else:
        out.append(Finding(level="green", check="encoder", title="the encoder's weights are unchanged",
                           evidence=f"sha256 {a.encoder.checksum_now[:16]}… before tuning, after it, and now", threshold="must be identical"))
    return out


CHECK = Check("encoder", judge)
