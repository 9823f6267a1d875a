"""Measurement: every system on a BEIR collection (evaluate.py), and the audit of a finished run — its
evidence (audit_build.py and the modules it calls), its findings and verdict (findings.py), and the report.
Rank metrics are retable.metrics."""
