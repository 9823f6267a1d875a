"""The teacher: a retriever stronger in-domain than the frozen encoder it teaches — BM25 over the items'
words fused with the frozen encoder's scores (retrieval/fusion.py) — and the stage that labels every
training query's candidates with it."""
