#!/usr/bin/env bash
# The "Chain-of-thought distillation (2)" rows of bench/README.md: every recipe's data written by the arithmetic
# teacher (bench/kd-teacher.sh) for the same 300 training problems (seed 0), the same student (stories260K with
# blocks 3 and 4 dropped), the same training (STEPS × 8 × 128, lr 2e-3, seed 0; DRA: 2 finetunes of STEPS/2, so
# the same total), then task accuracy on 200 held-out problems (plus PaD's executed-program accuracy and Socratic
# CoT's generator → answerer pipeline accuracy) and ppl on tinystories eval (100 windows). Same protocol as
# bench/kd-cot1.sh, so its `responses` row is the shared baseline.
#   bench/kd-cot2.sh TEACHER_DIR [OUTDIR] [ROW...]    (rows default to all; STEPS=120, SEED=0 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
LMP=${LMP:-build/lmpress}
T=${1:?teacher dir (bench/kd-teacher.sh output)}
OUT=${2:-out/kd-cot2}
shift $(( $# >= 2 ? 2 : 1 ))
ROWS=${*:-"reference responses pad socratic socratic_unified lmtwa dra tdig tdig_pos_only selective_reflection"}
STEPS=${STEPS:-120}
SEED=${SEED:-0}
EVAL=${EVAL:-../shared/data/tinystories/eval.txt}
mkdir -p "$OUT"
"$LMP" task-data --task arith --what jsonl --n 300 --seed "$SEED" -o "$OUT/reference.jsonl"
common=(train distill --teacher "$T" --student models/stories260K --drop-layers 3,4 --task arith --task-n 300
        --max-new-tokens 64 --batch 8 --seqlen 128 --lr 2e-3 --seed "$SEED" --task-eval 200 --eval "$EVAL"
        --eval-windows 100 --quiet --json)
for r in $ROWS; do
  case $r in
    reference) args=(--kd-data "$OUT/reference.jsonl" --steps "$STEPS") ;;
    tdig_pos_only) args=(--kd-recipe tdig --kd-set neg_weight=0 --steps "$STEPS") ;;
    socratic_unified) args=(--kd-recipe socratic --kd-set mode=unified --steps "$STEPS") ;;
    dra) args=(--kd-recipe dra --kd-set rounds=1 --steps $((STEPS / 2))) ;;
    *) args=(--kd-recipe "$r" --steps "$STEPS") ;;
  esac
  [ "$r" = reference ] || args+=(--kd-out "$OUT/$r.jsonl")
  /usr/bin/time -f "%e" -o "$OUT/$r.time" "$LMP" "${common[@]}" "${args[@]}" -o "$OUT/$r.model" > "$OUT/$r.json"
  echo "$r: $(tr -d '\n' < "$OUT/$r.json" | head -c 600) seconds $(cat "$OUT/$r.time")"
done
