#!/usr/bin/env bash
# The "Instruction-following and in-context distillation" rows of bench/README.md: each recipe distills the arithmetic
# teacher (bench/kd-teacher.sh) into stories260K without blocks 3,4 on the same 200 problems, the same training
# (100 steps x 4 x 256 tokens, seed 0; Lion trains 100 steps per round), then zero-shot accuracy on 200 held-out
# problems (+ 2-shot accuracy by kind for responses and the in-context rows) and tinystories ppl (100 windows).
#   bench/kd-inst.sh TEACHER [OUTDIR] [RECIPE...]     (default recipes: all rows; ~5-10 min each on 2 busy cores)
# EXTRA="--task-eval-after-only" skips the teacher / student-before accuracies (the same for every row).
set -euo pipefail
cd "$(dirname "$0")/.."
LMP=${LMP:-build/lmpress}
T=${1:?teacher dir}
OUT=${2:-out/kd/inst}
shift $(( $# >= 2 ? 2 : $# ))
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(gold responses self_instruct lamini lion meta_ict multitask_ict aicd)
mkdir -p "$OUT"
COMMON=(--teacher "$T" --student models/stories260K --drop-layers 3,4 --task arith --task-n 200 --max-new-tokens 48
        --steps 100 --batch 4 --seqlen 256 --seed 0 --task-eval 200
        --eval ../shared/data/tinystories/eval.txt --eval-windows 100 --json ${EXTRA:-})
for r in "${ROWS[@]}"; do
  case $r in
    gold) "$LMP" task-data --task arith --n 200 --seed 0 --what jsonl -o "$OUT/gold.jsonl"
          args=(--kd-data "$OUT/gold.jsonl") ;;
    self_instruct) args=(--kd-recipe self_instruct --kd-set new=100) ;;
    lamini) args=(--kd-recipe lamini --kd-set new=200) ;;
    lion) args=(--kd-recipe lion --kd-set rounds=2,new=100) ;;
    *) args=(--kd-recipe "$r") ;;
  esac
  case $r in responses|meta_ict|multitask_ict|aicd) args+=(--task-eval-shots 2) ;; esac
  /usr/bin/time -f "%e" -o "$OUT/$r.wall" "$LMP" train distill "${COMMON[@]}" "${args[@]}" --kd-out "$OUT/$r.data.jsonl" \
    -o "$OUT/$r.model" > "$OUT/$r.json" 2> "$OUT/$r.log" || echo "$r failed (see $OUT/$r.log)"
done
