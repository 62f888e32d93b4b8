#!/usr/bin/env bash
# Builds llama.cpp's llama-quantize, llama-perplexity and llama-bench from ../shared/peers/llama.cpp into the
# ignored build/llama.cpp (never into ../shared). Idempotent: does nothing when the three binaries exist.
# GGML_NATIVE is OFF on purpose: on this Sapphire-Rapids-class CPU a native build enables ggml's AMX backend,
# which gave wrong results here; the ISA extensions are named explicitly instead (AVX2, FMA, F16C, AVX-512 with
# VNNI/VBMI/BF16), so llama.cpp gets every vector path the CPU has except AMX.
#   bench/build-llamacpp.sh            (LLAMACPP_SRC / LLAMACPP_BUILD override the two folders)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${LLAMACPP_SRC:-../shared/peers/llama.cpp}
out=${LLAMACPP_BUILD:-build/llama.cpp}
bins="llama-quantize llama-perplexity llama-bench"
have=1; for b in $bins; do [ -x "$out/bin/$b" ] || have=0; done
[ $have = 1 ] && exit 0
[ -d "$src" ] || { echo "build-llamacpp: $src is absent" >&2; exit 2; }
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_CURL=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$out" -j"$(nproc)" --target $bins >/dev/null
for b in $bins; do [ -x "$out/bin/$b" ] || { echo "build-llamacpp: $out/bin/$b was not built" >&2; exit 1; }; done
