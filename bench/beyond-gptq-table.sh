#!/usr/bin/env bash
# Beyond GPTQ table (issue 8, bench/README.md "Beyond GPTQ"): quantizes stories260K with GPTQ and AWQ at
# W4/W3/W2 g32, and OWQ, SpQR, SqueezeLLM, QuIP, BCQ, OmniQuant, OneBit and SignRound at the bit widths the
# papers report, all calibrated on 64 × 512 tokens of tinystories/calib.txt, and prints the markdown table: stored format, projection bits/weight (stored
# bytes of the 35 projections × 8 / their weights), ppl on tinystories eval and wikitext-2 test, decode tokens/s
# (median of 3 `lmpress bench` runs, with the load average). Exits non-zero if any number is missing.
#   bench/beyond-gptq-table.sh        (OUT=out/beyond-gptq-table; REUSE=1 resumes; see bench/table-lib.sh)
source "$(dirname "$0")/table-lib.sh"
OUT=${OUT:-out/beyond-gptq-table}
mkdir -p "$OUT"
Q="$LMP quantize --model $M"

# name | label | command (without -o/--json). Every issue-8 method at 4/3/2 bits next to GPTQ/AWQ (g32; the g128
# rows are kept for GPTQ W4/W3 as the common llama.cpp-like setting), then SignRound (issue 13) on the same footing.
rows=("f32|f32|")
for b in 3 2 4; do  # 3 and 2 bits first: the widths the issue asks for everywhere
  rows+=("gptq${b}g32|GPTQ W$b g32|$Q --method gptq --bits $b --group 32 ${CAL[*]}")
  rows+=("awq${b}g32|AWQ W$b g32|$Q --method awq --bits $b --group 32 ${CAL[*]}")
  [ $b = 4 ] || rows+=("owq${b}|OWQ W$b g32 + 1% weak columns f16|$Q --method owq --bits $b --group 32 --weak-frac 0.01 ${CAL[*]}")
  case $b in
    4) rows+=("spqr4|SpQR W4 β1 16, τ 0.2|$Q --method spqr --bits 4 --group 16 --outlier-threshold 0.2 ${CAL[*]}") ;;
    3) rows+=("spqr3|SpQR W3 β1 16, no outliers|$Q --method spqr --bits 3 --group 16 --outlier-threshold 0 ${CAL[*]}")
       rows+=("spqr3o|SpQR W3 β1 16, τ 0.2|$Q --method spqr --bits 3 --group 16 --outlier-threshold 0.2 ${CAL[*]}") ;;
    2) rows+=("spqr2|SpQR W2 β1 16, τ 1.5|$Q --method spqr --bits 2 --group 16 --outlier-threshold 1.5 ${CAL[*]}") ;;
  esac
  rows+=("squeezellm${b}|SqueezeLLM $b-bit (per-row $((1 << b))-entry f16 LUT)|$Q --method squeezellm --bits $b ${CAL[*]}")
  rows+=("quip${b}|QuIP W$b g32, input-side Hadamard|$Q --method quip --bits $b --group 32 --input-only ${CAL[*]}")
  [ $b = 4 ] || rows+=("quip${b}two|QuIP W$b g32, two-sided (paper form)|$Q --method quip --bits $b --group 32 ${CAL[*]}")
  g=64; [ $b = 2 ] && g=32
  rows+=("bcq${b}|BCQ q=$b, group $g|$Q --method bcq --bits $b --group $g")
  rows+=("omniquant${b}|OmniQuant W$b g32 (LWC, ${OMNI_EPOCHS:-10} epochs)|$Q --method omniquant --bits $b --group 32 --epochs ${OMNI_EPOCHS:-10} ${CAL[*]}")
  rows+=("signround${b}|SignRound W$b g32 (${SR_ITERS:-100} iters)|$Q --method signround --bits $b --group 32 --iters ${SR_ITERS:-100} ${CAL[*]}")
  [ $b = 2 ] && rows+=("onebit|OneBit (SVID + 10 Hessian refinements of g, h)|$Q --method onebit --hessian-iters 10 ${CAL[*]}")
done
rows+=("gptq4g128|GPTQ W4 g128|$Q --method gptq --bits 4 --group 128 ${CAL[*]}")
rows+=("gptq3g128|GPTQ W3 g128|$Q --method gptq --bits 3 --group 128 ${CAL[*]}")

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
