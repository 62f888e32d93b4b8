#!/usr/bin/env bash
# The main job on the built-in default model: install dependencies, build, compress stories260K with the
# default recipe (GPTQ 4-bit g32) and print the before/after table (bytes, bits/weight, ppl, tokens/s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
./build/lmpress run --model models/stories260K --recipe recipes/default.json -o out/stories260K-gptq-w4g32 \
  --eval data/tinystories-demo-eval.txt --eval-format docs --ctx 512 "$@"
