"""retable: adapt a retriever to a new domain by tuning only a small code-indexed table.

The text encoder stays frozen; items are quantized into product-quantization codes and the
codes index a learned table. See README.md for the quick start.
"""

__version__ = "0.1.0"


def load_adapter(path, encoder=None, encoder_backend=None):
    """Open an adapter (or a run folder holding adapter/) with the encoder path that made it: see retable.adapters.artifact."""
    from retable.adapters.artifact import load_adapter as _load

    return _load(path, encoder, encoder_backend=encoder_backend)
