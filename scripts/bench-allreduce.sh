#!/usr/bin/env bash
# Benchmark trainchain's p2p averaging against PyTorch gloo all_reduce, loopback only.
#
# For N = 2, 3, 4 peers and update sizes ~0.3 MB and ~40 MB (f32, no compression) it runs
# the chunked scheme (reduce-scatter to chunk owners + all-gather) and all-to-all in one
# process per configuration (N real libp2p swarms on 127.0.0.1), then
# torch.distributed.all_reduce on gloo with N processes, and prints one line per
# configuration:
#   bench-allreduce n=N bytes=S scheme=X bytes_ratio=R ms=T gloo_ms=G time_ratio=T/G
# bytes_ratio = mean application bytes sent per peer per round / (2·S·(N−1)/N).
#
# Env: BENCH_SIZES="75000 10000000" (floats), BENCH_NS="2 3 4", BENCH_ROUNDS=3,
#      BENCH_SCHEMES="chunked all-to-all", VENV=/var/tmp/trainchain-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/trainchain-target-p2p}
export SKIP_WASM_BUILD=1
VENV=${VENV:-/var/tmp/trainchain-venv}
SIZES=${BENCH_SIZES:-"75000 10000000"}
NS=${BENCH_NS:-"2 3 4"}
SCHEMES=${BENCH_SCHEMES:-"chunked all-to-all"}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "installing torch into $VENV (PyPI)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch
fi

out=$(mktemp)
BENCH_SIZES="$SIZES" BENCH_NS="$NS" BENCH_SCHEMES="$SCHEMES" BENCH_ROUNDS=${BENCH_ROUNDS:-3} \
  nice -n 5 cargo bench -p trainchain-trainer --bench p2p_bench \
  2>/dev/null | grep '^p2p-bench ' > "$out"

declare -A GLOO
for n in $NS; do
  for f in $SIZES; do
    GLOO[$n,$f]=$("$VENV/bin/python" scripts/bench_allreduce_gloo.py "$n" "$f" 5 | "$VENV/bin/python" -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["ms"])')
  done
done

while read -r _ n floats bytes scheme ratio ms; do
  g=${GLOO[$n,$floats]}
  tr=$(python3 -c "print('%.2f' % ($ms / $g))")
  echo "bench-allreduce n=$n bytes=$bytes scheme=$scheme bytes_ratio=$ratio ms=$ms gloo_ms=$g time_ratio=$tr"
done < "$out"
rm -f "$out"
