"""The embedded model's weights re-encoded once for llama.cpp's faster CPU kernels (--llm-weights fast)."""

import pytest

from retable.errors import UserError
from retable.llm import LLMClient
from retable.llm.embedded import EmbeddedLLM, _cache_dir, embedded_model_path
from retable.llm.requantize import requantized


def test_a_model_without_a_target_format_runs_as_shipped(tmp_path):
    source = tmp_path / "own.gguf"
    source.write_bytes(b"GGUF" + b"\0" * 16)
    assert requantized("own.gguf", source, tmp_path / "cache") == source
    assert not (tmp_path / "cache").exists()  # nothing is written for it


def _file_type(path) -> int:
    """The llama.cpp file type a GGUF declares (general.file_type)."""
    from llama_cpp import Llama

    return int(Llama(model_path=str(path), vocab_only=True, verbose=False).metadata["general.file_type"])


@pytest.mark.integration
def test_smollm2_is_re_encoded_once_as_q8_0_and_answers_with_valid_json(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = embedded_model_path("smollm2-135m")
    fast = requantized("smollm2-135m", shipped, _cache_dir())
    assert fast != shipped and fast.parent == tmp_path / "retable" / "models" and fast.name.startswith("smollm2-135m.q8_0-")
    import llama_cpp

    assert (_file_type(shipped), _file_type(fast)) == (llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1, llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
    made = fast.stat().st_mtime_ns
    assert requantized("smollm2-135m", shipped, _cache_dir()) == fast and fast.stat().st_mtime_ns == made  # reused, not made again
    assert [p.name for p in fast.parent.iterdir()] == [fast.name]  # written atomically: no partial file left

    from tests.test_backends import MESSAGES, Colours

    llm = EmbeddedLLM()  # weights="fast" is the default; the file above is the one it loads from the cache
    client = LLMClient(llm, None, temperature=0.2, max_tokens=64, max_retries=2)
    assert 1 <= len(client.structured(MESSAGES, Colours, seed=1).colours) <= 3
    assert llm._llama.model_path == str(fast)


def test_an_unwritable_cache_is_one_line_naming_the_way_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="--llm-weights shipped") as err:
        requantized("smollm2-135m", embedded_model_path("smollm2-135m"), blocker / "models")
    assert "\n" not in str(err.value)
