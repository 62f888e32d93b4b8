#!/usr/bin/env bash
# Beyond GPTQ table (issue 8, bench/README.md "Beyond GPTQ"): quantizes stories260K with GPTQ and AWQ at
# W4/W3/W2 (g32 and g128), OWQ at 3 and 2 bits, SqueezeLLM and BCQ at 4/3/2 bits, all calibrated on 64 × 512
# tokens of tinystories/calib.txt, and prints the markdown table: stored format, projection bits/weight (stored
# bytes of the 35 projections × 8 / their weights), ppl on tinystories eval and wikitext-2 test, decode tokens/s
# (median of 3 `lmpress bench` runs, with the load average). Exits non-zero if any number is missing.
#   bench/beyond-gptq-table.sh        (OUT=out/beyond-gptq-table; REUSE=1 resumes; see bench/table-lib.sh)
source "$(dirname "$0")/table-lib.sh"
OUT=${OUT:-out/beyond-gptq-table}
mkdir -p "$OUT"
Q="$LMP quantize --model $M"

# name | label | command (without -o/--json)
rows=("f32|f32|")
for b in 4 3 2; do
  for g in 32 128; do
    rows+=("gptq${b}g$g|GPTQ W$b g$g|$Q --method gptq --bits $b --group $g ${CAL[*]}")
    rows+=("awq${b}g$g|AWQ W$b g$g|$Q --method awq --bits $b --group $g ${CAL[*]}")
  done
done
for b in 3 2; do
  rows+=("owq${b}|OWQ W$b g32 + 1% weak columns f16|$Q --method owq --bits $b --group 32 --weak-frac 0.01 ${CAL[*]}")
done
for b in 4 3 2; do
  rows+=("squeezellm${b}|SqueezeLLM $b-bit (per-row $((1 << b))-entry f16 LUT)|$Q --method squeezellm --bits $b ${CAL[*]}")
done
rows+=("bcq4|BCQ q=4, group 64|$Q --method bcq --bits 4 --group 64")
rows+=("bcq3|BCQ q=3, group 64|$Q --method bcq --bits 3 --group 64")
rows+=("bcq2|BCQ q=2, group 32|$Q --method bcq --bits 2 --group 32")

header
echo "| method | stored as | projection bits/weight | ppl tinystories | ppl wikitext-2 (text, ctx 512) | decode tok/s |"
echo "|---|---|---|---|---|---|"
one_row() {  # NAME LABEL CMD
  build_and_measure "$1" "$3"
  local stored bpw=$LBPW
  stored=$(jq -r '[.tensors[].format] | unique | join(", ")' "$OUT/$1.inspect.json" 2>/dev/null || echo MISSING)
  [ "$bpw" = MISSING ] || bpw=$(printf '%.3f' "$bpw")
  echo "| $2 | $stored | $bpw | $(fmt_ppl "$PPL_TINY") | $(fmt_ppl "$PPL_WIKI") | $(fmt_tps "$TPS" "$LOAD") |"
}
run_rows one_row
echo
echo "Load at end $(cut -d' ' -f1-3 /proc/loadavg)."
exit $missing
