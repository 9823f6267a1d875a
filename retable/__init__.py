"""retable: adapt a retriever to a new domain by tuning only a small code-indexed table.

The text encoder stays frozen; items are quantized into product-quantization codes and the
codes index a learned table. See README.md for the quick start.
"""

__version__ = "0.1.0"


def load_adapter(path, encoder=None, encoder_backend=None, db=None):
    """Open an adapter (or a run folder holding adapter/) with the encoder path that made it, its item vectors in
    memory or, with `db`, in the LanceDB folder written for it: see retable.serving.load."""
    from retable.serving.load import load_adapter as _load

    return _load(path, encoder, encoder_backend=encoder_backend, db=db)


def export(path, to, out):
    """The adapter as a sentence-transformers model folder (`to="sentence-transformers"`) or its items in a
    LanceDB folder (`to="lancedb"`), as `retable export` writes them: see retable.serving.export."""
    from retable.serving.export import export as _export

    return _export(path, to, out)
