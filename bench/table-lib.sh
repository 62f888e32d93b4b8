# Shared by the bench/*-table.sh scripts (sourced, not run): build one compressed stories260K per table row,
# then measure it the same way for every row — ppl on tinystories/eval.txt (docs, ctx 512, all 896 windows)
# and on wikitext-2/test.txt (text, ctx 512, all 1,548 windows), bytes/params/bits from `lmpress inspect`,
# and decode tokens/s as the median of 3 `lmpress bench --model X --json` runs (each is itself the best of
# its 3 reps), with the 1-minute load average read just before those runs.
# Environment: LMP (binary, default build/lmpress), OUT (work folder), REUSE=1 keeps models and results
# already in OUT (to resume an interrupted run), SKIP_WIKI=1 leaves the wikitext column out (prints MISSING),
# JOBS=N builds and measures N rows at once (default 1: on a quiet machine keep 1, or decode speeds interfere).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LMP=${LMP:-build/lmpress}
M=${M:-../shared/models/stories260K}
D=${D:-../shared/data}
CAL=(--calib "$D/tinystories/calib.txt" --calib-format docs --nsamples 64 --seqlen 512)
[ -x "$LMP" ] || scripts/build.sh >/dev/null
[ -d "$M" ] || { echo "${0##*/}: $M is absent" >&2; exit 2; }
missing=0

# jget FILE KEY: a number from one JSON object, empty when absent.
jget() { jq -r "$2 // empty" "$1" 2>/dev/null || true; }

# make_model NAME CMD...: runs CMD (an lmpress command line without -o) into $OUT/NAME unless REUSE=1 finds it.
make_model() {
  local name=$1; shift
  if [ "${REUSE:-0}" = 1 ] && [ -f "$OUT/$name/config.json" ]; then return 0; fi
  rm -rf "$OUT/$name"
  "$@" -o "$OUT/$name" --json >"$OUT/$name.make.json" 2>"$OUT/$name.make.log" ||
    { echo "${0##*/}: building $name failed: $(tail -1 "$OUT/$name.make.log")" >&2; missing=1; }
}

# cached NAME KIND CMD...: runs CMD (JSON on stdout) into $OUT/NAME.KIND.json unless REUSE=1 finds it.
cached() {
  local f="$OUT/$1.$2.json"; shift 2
  if [ "${REUSE:-0}" = 1 ] && [ -s "$f" ]; then return 0; fi
  "$@" >"$f" 2>/dev/null || rm -f "$f"
}

# measure NAME DIR: fills PPL_TINY PPL_WIKI PARAMS BYTES LBPW TPS LOAD (MISSING where a run failed).
measure() {
  local name=$1 dir=$2 runs=() i
  cached "$name" tiny "$LMP" eval ppl --model "$dir" --data "$D/tinystories/eval.txt" --format docs --ctx 512 --json --quiet
  [ "${SKIP_WIKI:-0}" = 1 ] ||
    cached "$name" wiki "$LMP" eval ppl --model "$dir" --data "$D/wikitext-2/test.txt" --format text --ctx 512 --json --quiet
  cached "$name" inspect "$LMP" inspect "$dir" --json
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$OUT/$name.bench" ]; then
    : >"$OUT/$name.bench"
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/$name.bench"
    for i in 1 2 3; do
      "$LMP" bench --model "$dir" --json 2>/dev/null | jq -r '.decode_tokens_per_s // empty' >>"$OUT/$name.bench" || true
    done
  fi
  PPL_TINY=$(jget "$OUT/$name.tiny.json" .ppl); PPL_WIKI=$(jget "$OUT/$name.wiki.json" .ppl)
  PARAMS=$(jget "$OUT/$name.inspect.json" .params); BYTES=$(jget "$OUT/$name.inspect.json" .bytes)
  LBPW=$(jget "$OUT/$name.inspect.json" .linear_bits_per_weight)
  LOAD=$(sed -n 's/^load //p' "$OUT/$name.bench")
  runs=($(grep -v '^load' "$OUT/$name.bench" | sort -g || true))
  TPS=""; [ "${#runs[@]}" = 3 ] && TPS=${runs[1]}
  local v
  for v in PPL_TINY PPL_WIKI PARAMS BYTES LBPW TPS; do
    if [ -z "${!v}" ]; then printf -v "$v" MISSING; missing=1; fi
  done
}

# fmt_ppl X / fmt_tps X LOAD: table cells.
fmt_ppl() { [ "$1" = MISSING ] && echo MISSING || LC_ALL=C awk -v x="$1" 'BEGIN { printf(x < 100 ? "%.4f" : "%.2f", x) }'; }
fmt_tps() { [ "$1" = MISSING ] && echo MISSING || printf '%.0f (load %s)' "$1" "$2"; }

# header: the machine line every table starts with.
header() {
  echo "Date: $(date -u '+%F %H:%M') UTC, $(nproc) cores, load at start $(cut -d' ' -f1-3 /proc/loadavg), binary $LMP"
  echo
}

# build_and_measure NAME CMD: builds $OUT/NAME with CMD (the source model itself when CMD is empty), then measure.
build_and_measure() {
  local name=$1 cmd=$2 dir=$M
  if [ -n "$cmd" ]; then
    # shellcheck disable=SC2086  # the command line is split on purpose
    make_model "$name" $cmd
    dir=$OUT/$name
  fi
  measure "$name" "$dir"
}

# run_rows ROW_FN: for each entry "name|label|command" of the array rows, ROW_FN NAME LABEL CMD prints one table
# row; JOBS of them run at once; the rows are printed in order and missing=1 is set when one holds MISSING.
run_rows() {
  local fn=$1 r name label cmd
  for r in "${rows[@]}"; do
    IFS='|' read -r name label cmd <<<"$r"
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-1}" ]; do wait -n || true; done
    ( "$fn" "$name" "$label" "$cmd" >"$OUT/$name.row" ) &
  done
  wait
  for r in "${rows[@]}"; do
    name=${r%%|*}
    if [ -s "$OUT/$name.row" ]; then cat "$OUT/$name.row"; else echo "| $name | MISSING |"; fi
    if grep -q MISSING "$OUT/$name.row" 2>/dev/null; then missing=1; fi
  done
  return 0
}
