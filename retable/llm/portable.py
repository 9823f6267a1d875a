"""Can the embedded model run on this CPU? Two checks for one failure: llama.cpp built with
`-march=native` on a CPU that advertises AMX uses tile instructions, and a machine that advertises AMX
without enabling it kills the process with "Illegal instruction".

- `amx_instructions(lib)` counts AMX tile instructions in a built library (objdump): the install and
  `make test` refuse a library that holds any (`python -m retable.llm.portable`).
- `probe(model_path)` loads the model and decodes a few tokens in a child process, once per process and
  model, before the first embedded call: a crash there becomes a one-line UserError instead of a core dump.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from retable.errors import UserError

# tileloadd(t1), tilestored, ldtilecfg, sttilecfg, tilezero, tilerelease, tdpb{s,u}{s,u}d, tdpbf16ps, tdpfp16ps
AMX_MNEMONIC = re.compile(r"\s(tileloaddt?1?|tilestored|ldtilecfg|sttilecfg|tilezero|tilerelease|tdpb[su][su]d|tdpbf16ps|tdpfp16ps)\s")
FIX = "rebuild it portable: rm -rf .venv && make test (scripts/llama_wheel.sh), or use --llm openai"
PROBE_FAULT = "llm_probe:sigill"  # RETABLE_FAULT value: the probe child dies as on an AMX-less machine (tests)


def llama_libraries() -> list[Path]:
    """The shared libraries llama-cpp-python installed (without importing it, which loads them)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    pkg = Path(list(spec.submodule_search_locations)[0])
    return sorted({p.resolve() for p in (pkg / "lib").glob("*.so*") if p.is_file()})  # each file once, not its symlinks


def amx_instructions(lib: Path) -> int:
    """How many AMX tile instructions `lib` holds, from objdump's disassembly."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise UserError("objdump is not installed — install binutils (apt-get install binutils) to check the llama.cpp build")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UserError(f"objdump could not read {lib}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'unknown error'}")
    return sum(1 for line in out.stdout.splitlines() if AMX_MNEMONIC.search(line + " "))


def check_libraries(libs: list[Path]) -> list[str]:
    """One line per library; raises UserError naming the ones that hold AMX instructions."""
    if not libs:
        raise UserError("llama-cpp-python is not installed — run scripts/llama_wheel.sh (make does it)")
    lines, bad = [], []
    for lib in libs:
        n = amx_instructions(lib)
        lines.append(f"{lib.name}: {n} AMX tile instructions")
        if n:
            bad.append(f"{lib} ({n})")
    if bad:
        raise UserError(f"llama.cpp library holds AMX tile instructions: {', '.join(bad)} — it dies with 'Illegal instruction' "
                        f"on machines that advertise AMX without enabling it; {FIX}")
    return lines


_probed: dict[str, None] = {}
_lock = threading.Lock()

PROBE_CODE = """
import os, signal, sys
if os.environ.get("RETABLE_FAULT") == %r:
    os.kill(os.getpid(), signal.SIGILL)
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
llm.create_completion("Hello", max_tokens=4, temperature=0.0)
""" % PROBE_FAULT


def probe(model_path: Path, timeout: float = 300.0) -> None:
    """Load the model and decode 4 tokens in a child process, once per process and model file.
    A signal (Illegal instruction above all) or an error there is a UserError naming the fix."""
    key = str(model_path)
    with _lock:
        if key in _probed:
            return
        try:
            out = subprocess.run([sys.executable, "-c", PROBE_CODE, key], capture_output=True, text=True, timeout=timeout,
                                 env={**os.environ, "PYTHONFAULTHANDLER": ""})
        except subprocess.TimeoutExpired:
            raise UserError(f"the embedded model {model_path.name} did not answer a 4-token test within {timeout:.0f} s — use --llm openai") from None
        if out.returncode < 0:
            sig = signal.Signals(-out.returncode)
            what = "Illegal instruction: llama.cpp was built for another CPU" if sig == signal.SIGILL else f"killed by {sig.name}"
            raise UserError(f"the embedded model cannot run on this CPU ({what}) — {FIX}; finished stages and LLM replies are kept")
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"the embedded model {model_path} does not load ({last[:300]}) — give a valid .gguf file, reinstall, or use --llm openai")
        _probed[key] = None


def main(argv: list[str] | None = None) -> int:
    """`python -m retable.llm.portable [LIB ...]`: check llama-cpp-python's libraries (or the
    given ones) for AMX tile instructions; exit 1 with one line when any holds them."""
    args = sys.argv[1:] if argv is None else argv
    try:
        for line in check_libraries([Path(a) for a in args] if args else llama_libraries()):
            print(line)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("llama.cpp build is portable: no AMX tile instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
