"""Retrieval metrics, evaluation on BEIR collections, the audit and the report."""
