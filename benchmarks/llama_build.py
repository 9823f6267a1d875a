"""Decode speed of the embedded model (SmolLM2-135M) under different llama.cpp builds, side by side in one run.

Each build is a Python interpreter whose venv holds a llama-cpp-python wheel: the project's portable one
(.venv, from scripts/llama_wheel.sh) and, for comparison, a -march=native one made with
    python3 -m venv /tmp/native && /tmp/native/bin/pip install numpy diskcache jinja2 typing-extensions
    LLAMA_FLAGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" PIP=/tmp/native/bin/pip scripts/llama_wheel.sh
Then:
    .venv/bin/python benchmarks/llama_build.py portable=.venv/bin/python native=/tmp/native/bin/python
Builds are measured in turns (ABAB...) so machine noise falls on both; the table gives the median tokens/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retable.llm.embedded import embedded_model_path  # noqa: E402

CHILD = r"""
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=1024, n_threads=int(sys.argv[2]), verbose=False, seed=1)
prompt = "Write a short paragraph about protein folding and the methods used to study it."
llm.create_completion(prompt, max_tokens=8, temperature=0.0)  # warm-up
t = time.perf_counter()
out = llm.create_completion(prompt, max_tokens=int(sys.argv[3]), temperature=0.0, stop=[], logit_bias={llm.token_eos(): -1e9})  # decode them all
dt = time.perf_counter() - t
n = out["usage"]["completion_tokens"]
t = time.perf_counter()
llm.create_completion(prompt * 8, max_tokens=1, temperature=0.0)
pp = time.perf_counter() - t
print(json.dumps({"tokens": n, "decode_tokens_per_s": n / dt, "prompt_tokens": len(llm.tokenize((prompt * 8).encode())), "prompt_s": pp}))
"""


def measure(python: str, model: Path, threads: int, tokens: int) -> dict:
    out = subprocess.run([python, "-c", CHILD, str(model), str(threads), str(tokens)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: {(out.stderr.strip().splitlines() or [''])[-1][:200]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="NAME=PYTHON, e.g. portable=.venv/bin/python")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "llama_build.json")
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.builds)
    model = embedded_model_path("smollm2-135m")
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    for _ in range(args.repeats):
        for name, python in builds.items():
            runs[name].append(measure(python, model, args.threads, args.tokens))
    rows = {}
    print(f"{'build':<12} {'decode tok/s (median)':>22} {'prompt tok/s (median)':>22}  runs")
    for name, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows[name] = {"error": rs[0]["error"]}
            print(f"{name:<12} {'failed: ' + rs[0]['error']}")
            continue
        dec = statistics.median(r["decode_tokens_per_s"] for r in ok)
        pp = statistics.median(r["prompt_tokens"] / r["prompt_s"] for r in ok)
        rows[name] = {"decode_tokens_per_s": round(dec, 1), "prompt_tokens_per_s": round(pp, 1), "runs": ok}
        print(f"{name:<12} {dec:>22.1f} {pp:>22.1f}  {len(ok)}/{len(rs)}")
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "tokens": args.tokens, "builds": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
