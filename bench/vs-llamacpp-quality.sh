#!/usr/bin/env bash
# Head to head with llama.cpp, quality at equal file size (issue 14). On the shared model stories260K:
#   - llama.cpp's quantizations, made by its own llama-quantize from the f32 GGUF (every type it accepts; those it
#     refuses, e.g. the IQ1/IQ2 types that need an importance matrix, are listed as refused);
#   - lmpress's own models (RTN, GPTQ, AWQ, OWQ at 2-8 bits, group sizes, the budgeted mixed-precision search),
#     with the tied embedding/head table stored int8 (g32, sym) or int4 ("_e8" / "_e4") or f32;
#   - lmpress models whose formats GGUF holds exactly (sym g32 int4/int8 -> Q4_0/Q8_0), exported as GGUF.
# All are evaluated with ONE protocol in ONE binary: `lmpress eval ppl` (tinystories eval.txt, docs, ctx 512,
# the first LMP_Q_WINDOWS windows) -- the GGUF files through lmpress's importer. llama.cpp's llama-perplexity
# (its own protocol, first 40,000 bytes of eval.txt, ctx 512) cross-checks the GGUF files of both.
# File bytes = everything needed to run the model (the GGUF file; the lmpress directory's files: weights,
# config, tokenizer); bits/weight = file bytes x 8 / the model's 260,032 weights.
# Writes bench/vs-llamacpp/quality/{table.md,runs/*.json,ppl_vs_bits.png}; `lmpress report
# bench/vs-llamacpp/quality/runs/*.json -o q.html` shows the table and both Pareto fronts.
# Checks (exit 1 when one fails or any number is missing): lmpress's f32 GGUF export gives the same ppl as the
# original within 0.5% in lmpress's protocol, and in llama.cpp's protocol as llama.cpp's own f32 GGUF.
# `bench/vs-llamacpp-quality.sh --table-only` re-renders the table and plot from the runs already measured.
# Env: LMP_Q_WINDOWS (default 128 of 896), LMP_Q_NSAMPLES (calibration windows of 512 tokens, default 32),
#      LMP_Q_RESUME=1 (keep the runs already measured and skip those models: resumes an interrupted run),
#      LMP_Q_LCPP_BYTES (text for llama-perplexity, default 40000), LMP_Q_THREADS (default 2; 1 is faster on a
#      machine loaded by other jobs), LMP_Q_QUICK=1 (a handful of models, to check the script end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
M=../shared/models/stories260K
GG=../shared/peers/gguf/models/stories260K.gguf
D=../shared/data/tinystories
WIN=${LMP_Q_WINDOWS:-128}
NS=${LMP_Q_NSAMPLES:-32}
QUICK=${LMP_Q_QUICK:-0}
LCB=${LMP_Q_LCPP_BYTES:-40000}
TH=${LMP_Q_THREADS:-2}
W=build/vs-llamacpp/quality
R=bench/vs-llamacpp/quality
LQ=build/llama.cpp/bin
for f in "$M/config.json" "$GG" "$D/eval.txt" "$D/calib.txt"; do
  [ -e "$f" ] || { echo "vs-llamacpp-quality: $f is absent" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "vs-llamacpp-quality: needs jq" >&2; exit 2; }
bench/build-llamacpp.sh
[ -x build/lmpress ] || scripts/build.sh >/dev/null
L=./build/lmpress
TABLE_ONLY=0; [ "${1:-}" = --table-only ] && TABLE_ONLY=1   # re-render table/plot from build/.../runs
KEEP=${LMP_Q_RESUME:-0}
[ "$TABLE_ONLY" = 1 ] || [ "$KEEP" = 1 ] || rm -rf "$W/runs"
rm -rf "$R"
mkdir -p "$W/lcpp" "$W/lmp" "$W/runs" "$R/runs"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$TH
t_start=$(date +%s)
WEIGHTS=$($L inspect "$M" --json | jq '.params')
head -c "$LCB" "$D/eval.txt" >"$W/eval40k.txt"
missing=0

size_of() {
  if [ -d "$1" ]; then find "$1" -maxdepth 1 -type f -printf '%s\n' | awk '{ s += $1 } END { print s }'
  else stat -c %s "$1"; fi
}
lmp_ppl() {
  $L eval ppl --model "$1" --data "$D/eval.txt" --format docs --ctx 512 --max-windows "$WIN" --json --quiet 2>/dev/null |
    jq -r '.ppl // empty' || true
}
lcpp_ppl() {
  "$LQ/llama-perplexity" -m "$1" -f "$W/eval40k.txt" -c 512 -t "$TH" 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' || true
}
done_already() { [ "$KEEP" = 1 ] && [ -f "$W/runs/$1.json" ]; }
# run NAME GROUP PATH [llama-perplexity too: 1] -> runs/NAME.json
run() {
  local name=$1 group=$2 path=$3 with_lcpp=${4:-0} ppl lp="" bytes
  ppl=$(lmp_ppl "$path")
  [ "$with_lcpp" = 1 ] && lp=$(lcpp_ppl "$path")
  bytes=$(size_of "$path")
  if [ -z "$ppl" ] || { [ "$with_lcpp" = 1 ] && [ -z "$lp" ]; }; then
    echo "vs-llamacpp-quality: MISSING ppl for $name ($path)" >&2; missing=1
  fi
  jq -n --arg n "$name" --arg g "$group" --arg p "$path" --arg ppl "$ppl" --arg lp "$lp" --argjson b "$bytes" \
    --argjson w "$WEIGHTS" --argjson win "$WIN" \
    '{model: $n, group: $g, path: $p, bytes: $b, params: $w, file_bits_per_weight: ($b * 8 / $w),
      ppl: (if $ppl == "" then null else ($ppl | tonumber) end), windows: $win,
      llama_perplexity: (if $lp == "" then null else ($lp | tonumber) end)}' >"$W/runs/$name.json"
  echo "  $name: $bytes bytes, ppl ${ppl:-MISSING}${lp:+, llama-perplexity $lp}" >&2
}

refused=""; [ "$TABLE_ONLY" = 1 ] && refused=" (not re-measured by --table-only)"
if [ "$TABLE_ONLY" = 0 ]; then
# ---- references and the lossless-export check
$L export --model "$M" --format gguf --type f32 -o "$W/lmp/f32.gguf" >/dev/null 2>&1
done_already f32 || run f32 reference "$M"
done_already f32_export_gguf || run f32_export_gguf reference "$W/lmp/f32.gguf" 1
done_already llamacpp_own_f32_gguf || run llamacpp_own_f32_gguf reference "$GG" 1

# ---- llama.cpp: every type llama-quantize offers, from the (tied) f32 GGUF
types=$({ "$LQ/llama-quantize" --help 2>&1 || true; } | sed -n 's/^ *[0-9]* *or *\([A-Z0-9_]*\) *:.*/\1/p' |
  grep -v -x -e COPY -e F32 || true)
[ "$QUICK" = 1 ] && types="Q8_0 Q4_K_M Q2_K"
[ -n "$types" ] || { echo "vs-llamacpp-quality: no types from llama-quantize --help" >&2; exit 1; }
for t in $types; do
  done_already "llamacpp_$t" && continue
  if "$LQ/llama-quantize" "$W/lmp/f32.gguf" "$W/lcpp/$t.gguf" "$t" "$TH" >"$W/lcpp/$t.log" 2>&1; then
    run "llamacpp_$t" llama.cpp "$W/lcpp/$t.gguf" 1
  else
    refused="$refused $t"; rm -f "$W/lcpp/$t.gguf"
  fi
done

# ---- lmpress
CAL=$(jq -n --arg p "$D/calib.txt" --argjson n "$NS" '{path: $p, format: "docs", nsamples: $n, seqlen: 512, seed: -1}')
# lmp NAME "STAGE_JSON" EMB (f32 | 8 | 4): projections by the stage, the tied table by RTN g32 (sym for 8 bits)
lmp() {
  local name=$1 stage=$2 emb=$3 head="[]"
  done_already "$name" && return
  [ "$emb" = 8 ] && head='[{"modifier": "rtn", "bits": 8, "group": 32, "sym": true, "lm_head": true, "targets": "^lm_head$"}]'
  [ "$emb" = 4 ] && head='[{"modifier": "rtn", "bits": 4, "group": 32, "sym": false, "lm_head": true, "targets": "^lm_head$"}]'
  jq -n --argjson s "$stage" --argjson h "$head" --argjson c "$CAL" '{stages: ([$s] + $h), calibration: $c}' \
    >"$W/lmp/$name.recipe.json"
  if ! $L compress --model "$M" --recipe "$W/lmp/$name.recipe.json" -o "$W/lmp/$name" >"$W/lmp/$name.log" 2>&1; then
    echo "vs-llamacpp-quality: lmpress failed on $name (see $W/lmp/$name.log)" >&2; missing=1; return
  fi
  run "$name" lmpress "$W/lmp/$name"
}
st() { jq -nc --arg m "$1" --argjson b "$2" --argjson g "$3" --argjson s "${4:-false}" \
  '{modifier: $m, bits: $b, group: $g, sym: $s, targets: "self_attn|mlp"}'; }

lmp f16 '{"modifier": "f16", "lm_head": true}' f32   # the tied table f16 too, as llama.cpp's F16
if [ "$QUICK" = 1 ]; then
  lmp rtn_w4_g32 "$(st rtn 4 32)" f32
  lmp gptq_w4_g32_e8 "$(st gptq 4 32)" 8
  lmp gptq_w3_g32_e4 "$(st gptq 3 32)" 4
else
  for g in 32 128; do
    for b in 2 3 4 8; do lmp "rtn_w${b}_g$g" "$(st rtn $b $g)" f32; done
    for b in 2 3 4 8; do lmp "gptq_w${b}_g${g}_e8" "$(st gptq $b $g)" 8; done
  done
  for b in 2 3 4; do lmp "gptq_w${b}_g32_e4" "$(st gptq $b 32)" 4; done
  lmp gptq_w4_g64_e4 "$(st gptq 4 64)" 4
  lmp gptq_w3_g64_e4 "$(st gptq 3 64)" 4
  lmp awq_w4_g32_e8 "$(st awq 4 32)" 8
  lmp awq_w3_g32_e4 "$(st awq 3 32)" 4
  lmp owq_w3_g32_e4 "$(jq -nc '{modifier: "owq", bits: 3, group: 32, weak_frac: 0.01, targets: "self_attn|mlp"}')" 4
  # budgeted mixed precision (lmpress search, GPTQ), then the tied table int8 (int4 tables cost +0.09 ppl here)
  for bpw in ${LMP_Q_BUDGETS-5 6.5 7.3 7.75}; do
    n="search_gptq_${bpw}bpw_e8"
    done_already "$n" && continue
    if [ "$KEEP" = 1 ] && [ -f "$W/lmp/$n/config.json" ]; then run "$n" lmpress "$W/lmp/$n"; continue; fi  # built, not scored
    if $L search --model "$M" --budget "${bpw}bpw" --method gptq --candidates 2,3,4,8 --groups 32,128 \
        --calib "$D/calib.txt" --calib-format docs --nsamples 4 --seqlen 256 -o "$W/lmp/$n.proj" >"$W/lmp/$n.log" 2>&1 &&
       $L quantize --model "$W/lmp/$n.proj" --method rtn --bits 8 --group 32 --sym --lm-head --targets '^lm_head$' \
        -o "$W/lmp/$n" >>"$W/lmp/$n.log" 2>&1; then
      run "$n" lmpress "$W/lmp/$n"
    else
      echo "vs-llamacpp-quality: lmpress search failed ($n, see $W/lmp/$n.log)" >&2; missing=1
    fi
  done
fi
# lmpress in llama.cpp's own file format: sym g32 GPTQ (-> Q4_0 / Q8_0 codes kept; 172-wide ffn_down -> F16 as
# llama.cpp does), tied table int8 sym g32 (-> Q8_0); read back by both engines.
for b in 4 8; do
  lmp "gptq_w${b}_g32_sym_e8" "$(st gptq $b 32 true)" 8
  done_already "gptq_w${b}_g32_sym_e8_gguf" && continue
  if $L export --model "$W/lmp/gptq_w${b}_g32_sym_e8" --format gguf --type auto -o "$W/lmp/gptq_w${b}_g32_sym_e8.gguf" \
      >"$W/lmp/gptq_w${b}_g32_sym_e8.gguf.log" 2>&1; then
    run "gptq_w${b}_g32_sym_e8_gguf" "lmpress GGUF" "$W/lmp/gptq_w${b}_g32_sym_e8.gguf" 1
  else
    echo "vs-llamacpp-quality: export failed (gptq_w${b}_g32_sym_e8)" >&2; missing=1
  fi
done

fi  # TABLE_ONLY

# ---- checks: lossless export
j() { jq -r ".$2 // empty" "$W/runs/$1.json"; }
within() { awk -v a="$1" -v b="$2" 'BEGIN { d = a / b - 1; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 0.005) }'; }
checks_ok=1
if within "$(j f32_export_gguf ppl)" "$(j f32 ppl)"; then c1=pass; else c1=FAIL; checks_ok=0; fi
if within "$(j f32_export_gguf llama_perplexity)" "$(j llamacpp_own_f32_gguf llama_perplexity)"; then c2=pass; else c2=FAIL; checks_ok=0; fi

# ---- table, dominance, plot
cp "$W"/runs/*.json "$R/runs/"
f32ppl=$(j f32 ppl); f32lp=$(j llamacpp_own_f32_gguf llama_perplexity)
{
  echo "stories260K, $(date -u +%F), ppl: lmpress eval ppl, tinystories eval.txt, docs, ctx 512, first $WIN windows;"
  echo "llama-perplexity: first $LCB bytes of eval.txt, ctx 512 (its protocol). Calibration: $NS x 512 tokens of calib.txt."
  echo
  echo "| model | made by | file bytes | bits/weight (file) | ppl | Δppl vs f32 | llama-perplexity | Δ vs its f32 |"
  echo "|---|---|---|---|---|---|---|---|"
  jq -rs --argjson f "$f32ppl" --argjson lf "$f32lp" '
    sort_by(.group != "reference", .group, .bytes)[] |
    "| \(.model) | \(.group) | \(.bytes) | \(.file_bits_per_weight * 1000 | round / 1000) | " +
    (if .ppl then "\(.ppl * 10000 | round / 10000) | \((.ppl / $f - 1) * 1000 | round / 10)% | " else "MISSING | | " end) +
    (if .llama_perplexity then "\(.llama_perplexity) | \((.llama_perplexity / $lf - 1) * 1000 | round / 10)% |" else "| |" end)' \
    "$W"/runs/*.json
  echo
  echo "llama-quantize refused (needs an importance matrix or not offered for this model):${refused:- none}"
  echo
  echo "Cross-check: lmpress's f32 GGUF export, lmpress ppl $(j f32_export_gguf ppl) vs original $(j f32 ppl): $c1;"
  echo "llama-perplexity $(j f32_export_gguf llama_perplexity) vs llama.cpp's own f32 GGUF $(j llamacpp_own_f32_gguf llama_perplexity): $c2 (within 0.5%)."
  echo
  # Dominance: for every llama.cpp file, the best lmpress model (own format or GGUF) of no larger size.
  jq -rs '
    [.[] | select(.group == "lmpress" or .group == "lmpress GGUF") | select(.ppl)] as $lm |
    [.[] | select(.group == "llama.cpp") | select(.ppl)] as $lc |
    ($lc | map(. as $c | ($lm | map(select(.bytes <= $c.bytes)) | min_by(.ppl)) as $b |
      {c: $c.model, cb: $c.bytes, cp: $c.ppl, b: $b.model, bb: $b.bytes, bp: $b.ppl,
       win: ($b != null and $b.ppl < $c.ppl)})) as $rows |
    "Dominance: lmpress has a model of no larger file with lower ppl at \($rows | map(select(.win)) | length) of \($rows | length) llama.cpp files.",
    "",
    "| llama.cpp file | bytes | ppl | best lmpress of ≤ bytes | bytes | ppl | lmpress lower? |",
    "|---|---|---|---|---|---|---|",
    ($rows | sort_by(.cb)[] | "| \(.c) | \(.cb) | \(.cp * 10000 | round / 10000) | \(.b // "none") | \(.bb // "") | " +
      (if .bp then "\(.bp * 10000 | round / 10000)" else "" end) + " | \(if .win then "yes" else "**no**" end) |")' \
    "$W"/runs/*.json
} >"$R/table.md"
# The plot and report: the compressed models within 1.5x the f32 ppl (the f32 references would stretch the axis to
# 36 bits, the collapsed 2-bit models to ppl 400; the table above lists them all).
mapfile -t compressed < <(for f in "$W"/runs/*.json; do
  jq -e --argjson f "$f32ppl" '.group != "reference" and (.ppl // 1e9) < 1.5 * $f' "$f" >/dev/null && echo "$f"; done)
$L report "${compressed[@]}" -o "$W/report.html" --png-dir "$W/plots" --title "lmpress vs llama.cpp: stories260K" >/dev/null
cp "$W/plots/ppl_vs_bits_by_group.png" "$R/ppl_vs_bits.png"
cat "$R/table.md"
echo
echo "elapsed $(( $(date +%s) - t_start )) s; report: $W/report.html; plot: $R/ppl_vs_bits.png"
[ "$checks_ok" = 1 ] || { echo "vs-llamacpp-quality: cross-check FAILED" >&2; exit 1; }
exit $missing
