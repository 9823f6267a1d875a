"""The teacher: a retriever stronger in-domain than the frozen encoder it teaches. BM25 over the
items' words and the frozen encoder's scores, fused with a weight chosen on the run's own labels."""
