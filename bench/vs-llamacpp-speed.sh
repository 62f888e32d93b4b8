#!/usr/bin/env bash
# Head to head with llama.cpp, speed on the same weights (issue 14). For each shape, a random-weight model with
# the real shapes, deterministic from a seed (`lmpress synth --seed`, f16; a rerun writes the same bytes, and the
# table prints a sha256 of each GGUF file), written as GGUF by lmpress's exporter; then, one after the other in
# this script, `llama-bench -p P -n N -t 2 -r REPS` and `lmpress bench` (prefill P from an empty cache, decode N
# tokens after 1, REPS timed runs after one warm-up, as llama-bench does) on the very same files, and
# `lmpress bench` on lmpress's own formats of the same bits (RTN int8 g128 sym / int4 g128 asym, LM head too).
# Medians of the REPS runs; ratio = lmpress / llama.cpp (> 1: lmpress faster). Each decode figure is also given
# as a fraction of the bandwidth limit: tokens/s x weight bytes read per token / STREAM triad bandwidth.
# Exits 1 when any number is missing. Writes bench/vs-llamacpp/speed.md.
# Env (defaults = the issue's full protocol):
#   LMP_S_SHAPES  "tinyllama-1.1b llama2-7b"   shapes of `lmpress synth`
#   LMP_S_LAYERS  0                            0 = the shape's layers; N = first N (quick end-to-end checks)
#   LMP_S_REPS 3, LMP_S_SEED 1, LMP_S_THREADS 2
#   LMP_S_P 512, LMP_S_N 128, LMP_S_TYPES "f16 q8_0 q4_0 q4_k", LMP_S_OWN "int8 int4"   (TinyLlama and others)
#   LMP_S_P7 64, LMP_S_N7 32, LMP_S_TYPES7 "q4_0", LMP_S_OWN7 "int4"                    (llama2-7b, 4 bits:
#     its f16 model is 13.5 GB (synth holds it in memory: ~14 GB RAM), so only the 4-bit files and shorter runs)
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${LMP_S_SHAPES:-"tinyllama-1.1b llama2-7b"}
LAYERS=${LMP_S_LAYERS:-0}
REPS=${LMP_S_REPS:-3}
SEED=${LMP_S_SEED:-1}
T=${LMP_S_THREADS:-2}
W=build/vs-llamacpp/speed
R=bench/vs-llamacpp
LQ=build/llama.cpp/bin
command -v jq >/dev/null || { echo "vs-llamacpp-speed: needs jq" >&2; exit 2; }
bench/build-llamacpp.sh
[ -x build/lmpress ] && [ -x build/bench_stream ] || scripts/build.sh >/dev/null
L=./build/lmpress
mkdir -p "$W" "$R"
export OMP_NUM_THREADS=$T
t_start=$(date +%s)
missing=0
bw=$(./build/bench_stream 512 5 | sed -n 's/.*best \([0-9.]*\) GB\/s.*/\1/p')
[ -n "$bw" ] || { echo "vs-llamacpp-speed: no STREAM bandwidth" >&2; exit 1; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)

median() { jq -s 'sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end'; }
# llama-bench JSON -> "pp_median tg_median"
lcpp_bench() {
  local out
  out=$("$LQ/llama-bench" -m "$1" -p "$2" -n "$3" -t "$T" -r "$REPS" -o json 2>/dev/null) || { echo " "; return; }
  local pp tg
  pp=$(echo "$out" | jq -r --argjson p "$2" '.[] | select(.n_prompt == $p and .n_gen == 0) | .samples_ts[]' | median)
  tg=$(echo "$out" | jq -r --argjson n "$3" '.[] | select(.n_prompt == 0 and .n_gen == $n) | .samples_ts[]' | median)
  echo "$pp $tg"
}
# lmpress bench JSON -> "pp_median tg_median decode_weight_bytes"
lmp_bench() {
  local out
  out=$($L bench --model "$1" --prefill "$2" --decode-ctx 1 --decode-tokens "$3" --reps "$REPS" --warmup 1 --json 2>/dev/null) ||
    { echo "  "; return; }
  echo "$out" | jq -r --arg p "$2" '"\(.prefill_median_tokens_per_s[$p]) \(.decode_median_tokens_per_s) \(.decode_weight_bytes)"'
}
bits_of() { case $1 in f16) echo 16 ;; q8_0|int8) echo 8 ;; *) echo 4 ;; esac; }

rows="$W/rows.tsv"
: >"$rows"
for shape in $SHAPES; do
  if [ "$shape" = llama2-7b ]; then
    P=${LMP_S_P7:-64}; N=${LMP_S_N7:-32}; TYPES=${LMP_S_TYPES7:-"q4_0"}; OWN=${LMP_S_OWN7:-"int4"}
  else
    P=${LMP_S_P:-512}; N=${LMP_S_N:-128}; TYPES=${LMP_S_TYPES:-"f16 q8_0 q4_0 q4_k"}; OWN=${LMP_S_OWN:-"int8 int4"}
  fi
  d="$W/$shape-L$LAYERS-s$SEED"
  lay=(); [ "$LAYERS" != 0 ] && lay=(--layers "$LAYERS")
  if [ ! -f "$d/f16/config.json" ]; then
    echo "speed: synth $shape (seed $SEED, layers $LAYERS) ..." >&2
    $L synth --shape "$shape" --seed "$SEED" --dtype f16 "${lay[@]}" -o "$d/f16" >/dev/null
  fi
  for t in $TYPES; do
    [ -f "$d/$t.gguf" ] || $L export --model "$d/f16" --format gguf --type "$t" -o "$d/$t.gguf" >/dev/null 2>&1 ||
      { echo "vs-llamacpp-speed: export $shape $t failed" >&2; missing=1; continue; }
  done
  for o in $OWN; do
    b=$(bits_of "$o"); sym=(); [ "$b" = 8 ] && sym=(--sym)
    [ -f "$d/$o/config.json" ] || $L quantize --model "$d/f16" --method rtn --bits "$b" --group 128 "${sym[@]}" --lm-head \
      -o "$d/$o" >/dev/null 2>&1 || { echo "vs-llamacpp-speed: quantize $shape $o failed" >&2; missing=1; }
  done
  for t in $TYPES; do
    f="$d/$t.gguf"; [ -f "$f" ] || continue
    echo "speed: $shape $t: llama-bench, then lmpress bench ..." >&2
    read -r lpp ltg <<<"$(lcpp_bench "$f" "$P" "$N")"
    read -r mpp mtg wbytes <<<"$(lmp_bench "$f" "$P" "$N")"
    sha=$(sha256sum "$f" | cut -c1-12)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$t" "GGUF $t" "$(bits_of "$t")" "$P" "$N" \
      "${lpp:-}" "${ltg:-}" "${mpp:-}" "${mtg:-}" "${wbytes:-}" "$sha" >>"$rows"
  done
  for o in $OWN; do
    [ -f "$d/$o/config.json" ] || continue
    echo "speed: $shape lmpress $o: lmpress bench ..." >&2
    read -r mpp mtg wbytes <<<"$(lmp_bench "$d/$o" "$P" "$N")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t\t\t%s\t%s\t%s\t\n' "$shape" "$o" "lmpress $(jq -r '.quantization_config.layers | to_entries[0].value.format // "?"' "$d/$o/config.json")" \
      "$(bits_of "$o")" "$P" "$N" "${mpp:-}" "${mtg:-}" "${wbytes:-}" >>"$rows"
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- table
{
  echo "Date: $(date -u +%F), CPU: $(lscpu | sed -n 's/Model name: *//p'), $(nproc) cores, STREAM triad ${bw} GB/s,"
  echo "threads $T, $REPS timed runs each (median), load average $load0 at the start, $load1 at the end; layers: ${LAYERS/#0/all}."
  echo
  echo "| shape | weights | bits | pp | llama.cpp pp tok/s | lmpress pp tok/s | ratio | tg | llama.cpp tg tok/s | lmpress tg tok/s | ratio | llama.cpp tg / BW limit | lmpress tg / BW limit | GGUF sha256 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  # lmpress-own rows compare with the fastest llama.cpp file of the same bits and shape.
  awk -F'\t' -v bw="$bw" '
    function r(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "" }
    function f(x) { return x == "" ? "MISSING" : sprintf("%.2f", x) }
    function lim(tg, wb) { return (tg != "" && wb != "") ? sprintf("%.2f", tg * wb / (bw * 1e9)) : "" }
    { n++; S[n] = $1; K[n] = $2; NM[n] = $3; B[n] = $4; P[n] = $5; N[n] = $6; LPP[n] = $7; LTG[n] = $8; MPP[n] = $9
      MTG[n] = $10; WB[n] = $11; SHA[n] = $12
      if ($7 != "") { k = $1 SUBSEP $4; if ($7 > bpp[k]) bpp[k] = $7; if ($8 > btg[k]) btg[k] = $8; wbk[k] = $11 } }
    END {
      for (i = 1; i <= n; i++) {
        own = (LPP[i] == "" && SHA[i] == ""); k = S[i] SUBSEP B[i]
        lpp = own ? bpp[k] : LPP[i]; ltg = own ? btg[k] : LTG[i]
        tag = own ? " (vs the fastest llama.cpp file of these bits)" : ""
        printf "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", S[i], NM[i], tag, B[i], P[i],
          (own && lpp == "") ? "–" : f(lpp), f(MPP[i]), r(MPP[i], lpp), N[i], (own && ltg == "") ? "–" : f(ltg),
          f(MTG[i]), r(MTG[i], ltg), own ? "" : lim(LTG[i], WB[i]), lim(MTG[i], WB[i]), SHA[i]
      }
    }' "$rows"
  echo
  echo "pp = prefill tokens from an empty cache, tg = decoded tokens; ratio = lmpress ÷ llama.cpp (> 1: lmpress faster);"
  echo "BW limit = tokens/s × weight bytes read per token (lmpress bench's decode_weight_bytes of that file) ÷ STREAM bandwidth."
  echo
  echo "Commands: bench/vs-llamacpp-speed.sh with LMP_S_SHAPES=\"$SHAPES\" LMP_S_LAYERS=$LAYERS LMP_S_REPS=$REPS; per file"
  echo "\`llama-bench -m F -p P -n N -t $T -r $REPS -o json\` and \`lmpress bench --model F --prefill P --decode-ctx 1 --decode-tokens N --reps $REPS --warmup 1 --json\`."
  echo "elapsed $(( $(date +%s) - t_start )) s"
} >"$R/speed.md"
cat "$R/speed.md"
# Missing: any empty timing in a GGUF row (4 numbers + bytes) or an lmpress-own row (2 numbers + bytes).
if awk -F'\t' '($12 != "" && ($7 == "" || $8 == "" || $9 == "" || $10 == "" || $11 == "")) ||
               ($12 == "" && ($9 == "" || $10 == "" || $11 == "")) { bad = 1 } END { exit !bad }' "$rows"; then
  echo "vs-llamacpp-speed: a number is MISSING" >&2; missing=1
fi
exit $missing
