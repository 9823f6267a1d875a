"""Measurement: every system on a BEIR collection (evaluate.py), and the audit of a finished run — the
evidence its checks read (audit_build.py and the modules it calls), the checks themselves, one file each
with a registry (checks/), and the report. Rank metrics are retable.metrics."""
