#!/usr/bin/env bash
# Benchmark trainchain's p2p averaging against PyTorch gloo all_reduce, loopback only, one
# process per peer on both sides.
#
# For N = 2, 3, 4 peers and update sizes ~0.3 MB and ~40 MB (f32, no compression) it runs N
# `trainchain-trainer peer` processes (release build) training an MLP of that size on the
# digits, and torch.distributed.all_reduce on gloo with N processes, and prints one line per
# configuration:
#   bench-allreduce n=N bytes=S scheme=X bytes_ratio=R ms=E round_ms=T gloo_ms=G time_ratio=E/G
# E is the exchange itself (reduce-scatter, screening, all-gather, cross-check; the slowest
# peer), T the whole round (training, agreement, evaluation, certificate included), both the
# median over the rounds after the first; bytes_ratio = mean bytes sent per peer per round /
# (2·S·(N−1)/N).
#
# The line gains transport=X: `direct` (the trainer's default: large messages on the
# AES-256-GCM direct path) and `tcp` (libp2p alone: TCP + noise + yamux, `--no-direct`).
#
# Env: BENCH_SIZES="75000 10000000" (floats), BENCH_NS="2 3 4", BENCH_ROUNDS=4,
#      BENCH_SCHEMES="chunked", BENCH_TRANSPORTS="direct tcp", VENV=/var/tmp/trainchain-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-env.sh
SIZES=${BENCH_SIZES:-"75000 10000000"}
NS=${BENCH_NS:-"2 3 4"}
SCHEMES=${BENCH_SCHEMES:-"chunked"}
TRANSPORTS=${BENCH_TRANSPORTS:-"direct tcp"}
need_torch
NET_BENCH=$(bench_binary net_bench)

for n in $NS; do
  for f in $SIZES; do
    g=$("$VENV/bin/python" scripts/bench_allreduce_gloo.py "$n" "$f" 5 \
      | "$VENV/bin/python" -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["ms"])')
    for scheme in $SCHEMES; do
      for t in $TRANSPORTS; do
        line=$(nice -n 5 "$NET_BENCH" allreduce "$n" "$f" "$scheme" "$t" | grep '^net-allreduce ')
        declare -A v=()
        for kv in ${line#net-allreduce }; do v[${kv%%=*}]=${kv#*=}; done
        tr=$(python3 -c "print('%.2f' % (${v[exchange_ms]} / $g))")
        echo "bench-allreduce n=$n bytes=${v[bytes]} scheme=$scheme transport=$t bytes_ratio=${v[bytes_ratio]} ms=${v[exchange_ms]} round_ms=${v[round_ms]} gloo_ms=$g time_ratio=$tr"
      done
    done
  done
done
