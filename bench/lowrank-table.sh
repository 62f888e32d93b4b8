#!/usr/bin/env bash
# Low-rank factorization table (issue 5, bench/README.md "Low-rank factorization"): builds every setting from
# stories260K (every q/k/v/o/gate/up/down projection targeted, embedding untouched unless the row says so) and
# prints the markdown table: ppl on tinystories eval and wikitext-2 test, params, bytes, decode tokens/s
# (median of 3 `lmpress bench` runs, with the load average). Exits non-zero if any number is missing.
#   bench/lowrank-table.sh            (OUT=out/lowrank-table; REUSE=1 resumes; see bench/table-lib.sh)
source "$(dirname "$0")/table-lib.sh"
OUT=${OUT:-out/lowrank-table}
mkdir -p "$OUT"

# name | label | command (without -o/--json)
rows=(
  "f32|f32 (no factorization)|"
  "svd09|SVD ratio 0.9|$LMP factorize --model $M --method svd --ratio 0.9"
  "asvd09|ASVD ratio 0.9 (α 0.5)|$LMP factorize --model $M --method asvd --ratio 0.9 ${CAL[*]}"
  "svd08|SVD ratio 0.8|$LMP factorize --model $M --method svd --ratio 0.8"
  "asvd08|ASVD ratio 0.8 (α 0.5) — reference 136.14|$LMP factorize --model $M --method asvd --ratio 0.8 ${CAL[*]}"
  "asvd08alloc|ASVD, sensitivity allocation, budget = params of uniform 0.8|$LMP factorize --model $M --method asvd --ratio 0.8 --allocate ${CAL[*]}"
  "laser|LASER best setting (search, --stack 3)|$LMP factorize --model $M --method laser --stack 3 ${CAL[*]}"
  "lplr4|LPLR ratio 0.8, 4-bit g32 factors, Gaussian sketch|$LMP factorize --model $M --method lplr --ratio 0.8 --bits 4 --group 32"
  "lplr8|LPLR ratio 0.8, 8-bit g32 factors, Gaussian sketch|$LMP factorize --model $M --method lplr --ratio 0.8 --bits 8 --group 32"
  "lplr4svd|LPLR ratio 0.8, 4-bit g32 factors, svd sketch|$LMP factorize --model $M --method lplr --ratio 0.8 --bits 4 --group 32 --sketch svd"
  "tensorgpt2|TensorGPT tt-rank 2, tokens as 4×4×4 (embedding 65,536 B of 131,072; tied head from the cores)|$LMP factorize --model $M --method tensorgpt --tt-rank 2"
  "tensorgpt1|TensorGPT tt-rank 1, tokens as 4×4×4 (embedding 24,576 B of 131,072; tied head from the cores)|$LMP factorize --model $M --method tensorgpt --tt-rank 1"
  "tensorgpt3|TensorGPT tt-rank 3, tokens as 8×8 (embedding 98,304 B of 131,072; tied head from the cores)|$LMP factorize --model $M --method tensorgpt --tt-rank 3 --tt-shape 8,8"
)

header
echo "| setting | ppl tinystories eval (docs, ctx 512) | ppl wikitext-2 test (text, ctx 512) | params | bytes | decode tok/s (median of 3) |"
echo "|---|---|---|---|---|---|"
one_row() {  # NAME LABEL CMD
  build_and_measure "$1" "$3"
  echo "| $2 | $(fmt_ppl "$PPL_TINY") | $(fmt_ppl "$PPL_WIKI") | $PARAMS | $BYTES | $(fmt_tps "$TPS" "$LOAD") |"
}
run_rows one_row
echo
echo "Load at end $(cut -d' ' -f1-3 /proc/loadavg)."
exit $missing
