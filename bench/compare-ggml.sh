#!/usr/bin/env bash
# Side by side with ggml (issue 12): lmpress's matvec/matmul kernels against ggml's own CPU mul_mat, on the
# same machine, one after the other, same shapes, 2 threads. ggml is built once from ../shared/peers/ggml into
# build/ggml-bench (never into ../shared). Prints a markdown table: µs of each, the ratio lmpress ÷ ggml
# (< 1 = lmpress faster), and each time as a fraction of the memory-bandwidth floor (weight bytes ÷ STREAM
# triad bandwidth measured in the same run). Exits non-zero if any number is missing.
#   bench/compare-ggml.sh [--quick]     (--quick: one shape, n = 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d ../shared/peers/ggml ] || { echo "compare-ggml: ../shared/peers/ggml is absent" >&2; exit 2; }
[ -x build/lmpress ] || scripts/build.sh >/dev/null
if [ ! -x build/ggml-bench/ggml_matvec_timer ]; then
  cmake -S bench/ggml -B build/ggml-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/ggml-bench -j2 --target ggml_matvec_timer >/dev/null
fi
export OMP_NUM_THREADS=2
shapes="4096x4096 11008x4096 4096x11008 14336x4096 4096x14336"; ns="1 128"
[ "${1:-}" = "--quick" ] && { shapes="4096x14336"; ns="1"; }
# lmpress format : ggml type pairs (nearest equivalents)
pairs="f32:f32 f16:f16 int8_g128_sym:q8_0 int4_g128_asym:q4_0 int4_g128_asym:q4_K int4_g32_asym:iq4_xs int3_g128_asym:q3_K int2_g128_asym:q2_K"
bw=$(./build/bench_stream 256 5 | sed -n 's/.*best \([0-9.]*\) GB\/s.*/\1/p')
[ -n "$bw" ] || { echo "compare-ggml: no STREAM bandwidth" >&2; exit 1; }
json() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p" | head -1; }
echo "Date: $(date -u +%F), CPU: $(lscpu | sed -n 's/Model name: *//p'), $(nproc) cores, STREAM triad ${bw} GB/s"
echo
echo "| shape (rows×cols) | n | lmpress format | lmpress µs | floor | ggml type | ggml µs | floor | lmpress ÷ ggml |"
echo "|---|---|---|---|---|---|---|---|---|"
missing=0
for s in $shapes; do
  r=${s%x*}; c=${s#*x}
  for n in $ns; do
    reps=20; [ "$n" -gt 1 ] && reps=5
    for p in $pairs; do
      lf=${p%:*}; gt=${p#*:}
      lo=$(./build/lmpress bench matvec --rows "$r" --cols "$c" --n "$n" --format "$lf" --reps $reps --json 2>/dev/null || true)
      go=$(./build/ggml-bench/ggml_matvec_timer "$gt" "$r" "$c" "$n" 2 $reps 2>/dev/null || true)
      lus=$(echo "$lo" | json us); lb=$(echo "$lo" | json bytes)
      gus=$(echo "$go" | json us); gb=$(echo "$go" | json bytes)
      if [ -z "$lus" ] || [ -z "$gus" ]; then
        echo "| $s | $n | $lf | ${lus:-MISSING} | | $gt | ${gus:-MISSING} | | |"; missing=1; continue
      fi
      awk -v s="$s" -v n="$n" -v lf="$lf" -v lus="$lus" -v lb="$lb" -v gt="$gt" -v gus="$gus" -v gb="$gb" -v bw="$bw" \
        'BEGIN { lf_floor = lb / (bw * 1e3) / lus; gf_floor = gb / (bw * 1e3) / gus;
                 printf "| %s | %d | %s | %.0f | %.2f | %s | %.0f | %.2f | %.2f |\n", s, n, lf, lus, lf_floor, gt, gus, gf_floor, lus / gus }'
    done
  done
done
echo
echo "floor = (weight bytes ÷ STREAM bandwidth) ÷ measured time: 1.00 means running at the memory-bandwidth limit."
exit $missing
