"""The llama.cpp build must run on every machine of this kind: no AMX tile instructions in the installed
library (a planted AMX library proves the guard can fail), and a crash of the embedded model on this CPU
is one line and exit 2, not a core dump."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retable.llm import portable
from retable.llm.portable import PROBE_FAULT, amx_instructions, check_libraries, llama_libraries
from retable.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
AMX_SOURCE = "#include <immintrin.h>\nvoid tile_touch(void *p) { _tile_loadd(0, p, 64); _tile_release(); }\n"


def test_installed_llama_cpp_has_no_amx_instructions():
    libs = llama_libraries()
    assert any(p.name.startswith("libggml-cpu") for p in libs), f"no libggml-cpu among {libs}"
    lines = check_libraries(libs)
    assert all(line.endswith(": 0 AMX tile instructions") for line in lines)


@pytest.fixture(scope="module")
def planted_amx_library(tmp_path_factory) -> Path:
    """A shared library that does hold AMX tile instructions, as a -march=native build on an AMX CPU does."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler: the llama.cpp build needs one too")
    folder = tmp_path_factory.mktemp("amx")
    (folder / "amx.c").write_text(AMX_SOURCE)
    subprocess.run([cc, "-O1", "-mamx-tile", "-shared", "-fPIC", str(folder / "amx.c"), "-o", str(folder / "libggml-cpu.so")], check=True)
    return folder / "libggml-cpu.so"


def test_the_guard_finds_amx_in_a_planted_library(planted_amx_library):
    assert amx_instructions(planted_amx_library) == 2  # tileloadd and tilerelease
    with pytest.raises(UserError, match="AMX tile instructions.*Illegal instruction"):
        check_libraries([planted_amx_library])
    out = subprocess.run([sys.executable, "-m", "retable.llm.portable", str(planted_amx_library)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "libggml-cpu.so (2)" in out.stderr


def test_the_build_script_keys_the_wheel_by_version_and_flags():
    key = subprocess.run([str(ROOT / "scripts" / "llama_wheel.sh"), "--key"], capture_output=True, text=True, check=True).stdout.strip()
    other = subprocess.run([str(ROOT / "scripts" / "llama_wheel.sh"), "--key"], capture_output=True, text=True, check=True,
                           env={**os.environ, "LLAMA_FLAGS": "-DGGML_NATIVE=ON"}).stdout.strip()
    import llama_cpp

    assert key.startswith(llama_cpp.__version__ + "-") and other.startswith(llama_cpp.__version__ + "-")
    assert key != other
    script = (ROOT / "scripts" / "llama_wheel.sh").read_text()
    assert "--no-cache-dir" in script and "-DGGML_NATIVE=OFF" in script and "-DGGML_AMX_TILE=OFF" in script


def test_a_model_that_crashes_the_cpu_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RETABLE_FAULT", PROBE_FAULT)
    monkeypatch.setattr(portable, "_probed", {})
    with pytest.raises(UserError, match=r"cannot run on this CPU \(Illegal instruction.*--llm openai"):
        portable.probe(tmp_path / "model.gguf")


def test_a_file_llama_cpp_cannot_load_is_a_one_line_error(monkeypatch, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(portable, "_probed", {})
    with pytest.raises(UserError, match="does not load"):
        portable.probe(junk)


@pytest.mark.integration
def test_adapt_on_a_cpu_the_build_does_not_fit_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "RETABLE_FAULT": PROBE_FAULT}
    out = subprocess.run([sys.executable, "-m", "retable.cli", "adapt", str(ROOT / "examples" / "scifact-like.txt"), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the embedded model cannot run on this CPU (Illegal instruction")
    assert "Traceback" not in out.stderr
