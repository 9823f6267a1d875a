"""The embedded model's weights re-encoded once, at first use, into a format llama.cpp's CPU kernels run
fast, with llama.cpp's own quantizer (no download). SmolLM2-135M ships as Q4_1, which has neither
llamafile's tiled matrix kernels nor a repacked layout on x86; its Q4_1 values re-encoded as Q8_0 (each
block's 16 levels rounded onto Q8_0's 255, an error about an eighth of Q4_1's own) decode prompts ~1.6x
faster on this project's 2-core machines (docs/speed.md). The file goes to the user cache, keyed by the
source file's sha256, llama-cpp-python's version and the target format; it is written atomically."""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from retable.errors import UserError
from retable.files import fingerprint, replacing, sha256_file

# embedded model -> the llama.cpp file type its weights are re-encoded to (models not named run as shipped)
TARGETS = {"smollm2-135m": "Q8_0"}


def requantized(name: str, source: Path, cache_dir: Path) -> Path:
    """`source` re-encoded to TARGETS[name] in `cache_dir` (made once, then reused); `source` itself when
    the model has no target."""
    target = TARGETS.get(name)
    if target is None:
        return source
    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's per-tensor lines, as Llama(verbose=False) does
    out = cache_dir / f"{name}.{target.lower()}-{fingerprint([sha256_file(source), llama_cpp.__version__, target])}.gguf"
    if out.is_file():
        return out
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{target}")
    params.allow_requantize = True  # the source is already quantized: its values are re-encoded, not the original floats
    params.nthread = os.cpu_count() or 1
    try:
        with replacing(out) as tmp:  # written beside `out` and renamed onto it when whole; removed on failure
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
            if rc != 0:
                raise RuntimeError(rc)
    except RuntimeError as exc:
        raise UserError(f"llama.cpp could not re-encode {name} as {target} (code {exc}) — run with --llm-weights shipped") from None
    except UserError as exc:  # the cache could not be written
        raise UserError(f"{exc}, set XDG_CACHE_HOME, or run with --llm-weights shipped") from None
    return out
