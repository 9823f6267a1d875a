"""The frozen, shared text encoder: sentence-transformers on torch (frozen.py) or the same weights exported
to int8 ONNX (onnx.py), and the item embeddings a corpus file is encoded into once (cache.py)."""
