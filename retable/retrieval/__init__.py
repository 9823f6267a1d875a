"""Retrieval over a run's items, shared by every stage and by serving: BM25 (lexical.py), exact and IVF-PQ
inner-product search (dense.py), and the rule that fuses the two rankings (fusion.py)."""
