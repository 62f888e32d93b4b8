#!/usr/bin/env bash
# The teacher of the black-box distillation rows (bench/README.md "Black-box distillation"): stories260K
# fine-tuned (all weights, cross-entropy) on 3,000 worked arithmetic word problems (src/distill/kd_tasks.h).
#   bench/kd-teacher.sh [OUT]     (default out/kd/teacher-arith; ~10 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
LMP=${LMP:-build/lmpress}
M=${M:-models/stories260K}
OUT=${1:-out/kd/teacher-arith}
mkdir -p "$(dirname "$OUT")"
[ -x "$LMP" ] || scripts/build.sh >/dev/null
"$LMP" task-data --task arith --n 3000 --seed 1 -o "$OUT.train.txt"
"$LMP" train distill --teacher "$M" --student "$M" --loss ce --data "$OUT.train.txt" --format docs \
  --steps 400 --seqlen 128 --batch 16 --lr 2e-3 --task-eval 200 --json -o "$OUT"
