#!/usr/bin/env bash
# Issue 13, efficient training: mixed precision (f32 / bf16 / f16), Lion vs AdamW, initialisation schemes and
# growth (depth stacking, Net2Net width) at equal compute. Writes one JSON per run into $OUT and prints tables.
# Usage: [SEED=0] [GROWTH_ONLY=1] bench/train-eff-table.sh [OUT_DIR]   (from the repository root, after building
# build/lmpress; GROWTH_ONLY=1 runs only the from-scratch init and growth rows, e.g. for a second seed)
set -euo pipefail
OUT=${1:-/tmp/lmp-train-eff}
L=./build/lmpress
M=../shared/models/stories260K
D=../shared/data/tinystories
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
SEED=${SEED:-0}
COMMON="--data $D/calib.txt --format docs --batch 8 --seqlen 128 --seed $SEED --eval $D/eval.txt --eval-format docs \
  --ctx 512 --eval-windows 200 --ckpt-every 100000 --log-every 50 --json"
run() {  # name, args...
  local name=$1; shift
  [ -s "$OUT/$name.json" ] || $L train "$@" $COMMON -o "$OUT/$name" > "$OUT/$name.json" 2> "$OUT/$name.log"
}
if [ "${GROWTH_ONLY:-0}" = 0 ]; then
# (1) mixed precision: full fine-tuning of stories260K, 100 steps
for p in f32 bf16 f16; do run mp_$p full --model $M --steps 100 --lr 3e-4 --precision $p; done
# (2) Lion vs AdamW: the same full fine-tuning run, 150 steps
run opt_adamw full --model $M --steps 150 --optim adamw --lr 5e-4 --wd 0.01
run opt_lion full --model $M --steps 150 --optim lion --lr 1e-4 --wd 0.1
fi
# (3) from scratch: target hidden 64, 4 layers, 8 heads (4 KV), head 8, FFN 172 (stories260K-like), 300 steps
TGT="--config-from $M --hidden 64 --layers 4 --heads 8 --kv-heads 4 --ffn 172"
for i in scaled small normal; do run init_$i pretrain $TGT --lr 3e-3 --init $i --steps 300; done
# depth: 2 layers for 150 steps (0.577× the target's matmul work per token) → stack ×2 → 213 steps
run depth_small pretrain --config-from $M --hidden 64 --layers 2 --heads 8 --kv-heads 4 --ffn 172 --lr 3e-3 --steps 150
run depth_grown pretrain --grow-from "$OUT/depth_small" --grow depth:2x --lr 3e-3 --steps 213
# width: hidden 32 (8 heads of 8, FFN 86) for 150 steps (0.346×) → Net2Net width:64 → 248 steps
run width_small pretrain --config-from $M --hidden 32 --layers 4 --heads 8 --kv-heads 4 --head-dim 8 --ffn 86 \
  --lr 3e-3 --steps 150
run width_grown pretrain --grow-from "$OUT/width_small" --grow width:64 --lr 3e-3 --steps 248
if [ "${GROWTH_ONLY:-0}" = 0 ]; then
# (4) Lion vs AdamW from scratch too (the target above, scaled init, 300 steps; Lion 10x smaller lr, 10x larger wd)
run scratch_adamw pretrain $TGT --init scaled --steps 300 --optim adamw --lr 3e-3 --wd 0.01
run scratch_lion pretrain $TGT --init scaled --steps 300 --optim lion --lr 3e-4 --wd 0.1
run scratch_lion3 pretrain $TGT --init scaled --steps 300 --optim lion --lr 1e-3 --wd 0.1
fi
echo "| run | optim | precision | params | steps | first loss | last loss | ppl before | ppl after | optimizer state bytes | skipped | tok/s | s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in "$OUT"/*.json; do
  jq -r --arg n "$(basename "$f" .json)" '"| \($n) | \(.optim) | \(.precision) | \(.params) | \(.steps) | \(.first_loss*10000|round/10000) | \(.last_loss*10000|round/10000) | \(.ppl_before*10000|round/10000) | \(.ppl_after*10000|round/10000) | \(.optimizer_state_bytes) | \(.skipped_steps // "-") | \(.tokens_per_s|round) | \(.seconds|round) |"' "$f"
done
