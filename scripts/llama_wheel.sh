#!/usr/bin/env bash
# Build llama-cpp-python once, portable, into a project-local wheelhouse keyed by version and flags,
# and install it into the venv whose pip is $PIP. pip's cache is never used for this package: a wheel
# cached from a -march=native build (AMX on a CPU that advertises it) dies with "Illegal instruction"
# on the next machine.
#
#   scripts/llama_wheel.sh          build if needed, then install into $PIP's venv
#   scripts/llama_wheel.sh --key    print the wheelhouse key (version + flags), build nothing
#
# The floor is AVX2/FMA/F16C (x86-64-v3): no -march=native, no AVX-512, no AMX.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)  # the pin in pyproject.toml
[ -n "$VERSION" ] || { echo "error: pyproject.toml pins no llama-cpp-python==X.Y.Z" >&2; exit 2; }
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
# LLAMA_FLAGS overrides the flags (benchmarks/llama_native.sh builds the native wheel for comparison only).
FLAGS="${LLAMA_FLAGS:-$FLAGS}"
KEY="$VERSION-$(printf '%s' "$FLAGS" | sha256sum | cut -c1-12)"

if [ "${1:-}" = "--key" ]; then echo "$KEY"; exit 0; fi

PIP="${PIP:-pip}"
house=".wheelhouse/llama-cpp-python-$KEY"
if ! compgen -G "$house/llama_cpp_python-$VERSION-*.whl" >/dev/null; then
  echo "llama-cpp-python $VERSION: compiling from source ($KEY: $FLAGS); 5-12 minutes on 2 cores"
  rm -rf "$house.tmp"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PIP" wheel --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$house.tmp" "llama-cpp-python==$VERSION"
  mv "$house.tmp" "$house"
fi
"$PIP" install --no-cache-dir --no-index --no-deps --force-reinstall --find-links "$house" "llama-cpp-python==$VERSION"
