#!/usr/bin/env bash
# The "Chain-of-thought distillation (1)" rows of bench/README.md: every recipe's data written by the arithmetic
# teacher (bench/kd-teacher.sh) for the same 300 training problems (seed 0), the same student (stories260K with
# blocks 3 and 4 dropped), the same training (STEPS × 8 × 128, lr 2e-3, seed 0; SSLM: 3 stages of STEPS/3), then
# task accuracy on 200 held-out problems and ppl on tinystories eval (100 windows).
#   bench/kd-cot1.sh TEACHER_DIR [OUTDIR] [ROW...]    (rows default to all; STEPS=120 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
LMP=${LMP:-build/lmpress}
T=${1:?teacher dir (bench/kd-teacher.sh output)}
OUT=${2:-out/kd-cot1}
shift $(( $# >= 2 ? 2 : 1 ))
ROWS=${*:-"reference responses cot_magister finetune_cot step_by_step mt_cot sslm scott"}
STEPS=${STEPS:-120}
EVAL=${EVAL:-../shared/data/tinystories/eval.txt}
mkdir -p "$OUT"
"$LMP" task-data --task arith --what jsonl --n 300 --seed 0 -o "$OUT/reference.jsonl"
common=(train distill --teacher "$T" --student models/stories260K --drop-layers 3,4 --task arith --task-n 300
        --max-new-tokens 64 --batch 8 --seqlen 128 --lr 2e-3 --seed 0 --task-eval 200 --eval "$EVAL"
        --eval-windows 100 --quiet --json)
for r in $ROWS; do
  case $r in
    reference) args=(--kd-data "$OUT/reference.jsonl" --steps "$STEPS") ;;
    sslm) args=(--kd-recipe sslm --kd-set "stages=3,generic=$EVAL" --steps $((STEPS / 3)) --kd-out "$OUT/$r.jsonl") ;;
    *) args=(--kd-recipe "$r" --steps "$STEPS" --kd-out "$OUT/$r.jsonl") ;;
  esac
  /usr/bin/time -f "%e" -o "$OUT/$r.time" "$LMP" "${common[@]}" "${args[@]}" -o "$OUT/$r.model" > "$OUT/$r.json"
  echo "$r: $(tr -d '\n' < "$OUT/$r.json" | head -c 400) seconds $(cat "$OUT/$r.time")"
done
