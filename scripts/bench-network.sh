#!/usr/bin/env bash
# The network benchmarks of issue #13, one `trainchain-trainer peer` process per peer (release
# build), one machine-readable line per configuration:
#   bench-allreduce n=N bytes=S scheme=X transport=T bytes_ratio=R ms=E round_ms=T gloo_ms=G time_ratio=E/G
#       loopback, against PyTorch gloo (scripts/bench-allreduce.sh);
#   bench-bandwidth n=N bytes=S link_mbit=M transport=T goodput_ratio=G exchange_ms=E bytes_ratio=R
#       each peer in its own network namespace, every link shaped to M Mbit/s each way with
#       `tc tbf` (BANDWIDTH_SETTINGS="direct,tcp,quic"; "tcp no-idle-restart" runs TCP on hosts
#       with `net.ipv4.tcp_slow_start_after_idle=0`, `host=no-idle-restart`);
#       G = 2·S·(N−1)/N / exchange time / link rate (needs root; skipped otherwise);
#   bench-peers n=N round_ms=T bytes_per_peer=B messages_per_peer=M
#       N peers on loopback training the digits MLP;
#   bench-floor n=N bytes=S transport=T ms=E
#       the transport alone (the trainer's network stack, one process per peer, loopback)
#       moving the exchange's bytes: S/N to every other peer, twice; no hashing, signing,
#       decoding or reduction (FLOOR_TRANSPORTS="direct,tcp,quic").
# Transports: direct = the trainer's default (TCP; large messages on the AES-256-GCM direct
# path), tcp = libp2p alone (TCP + noise + yamux, --no-direct), quic = libp2p QUIC (--no-direct).
# Figures are medians over the rounds after the first (BENCH_ROUNDS, default 4).
#
# Env: BENCH_PARTS="allreduce floor bandwidth peers", BANDWIDTH_SETTINGS, FLOOR_TRANSPORTS, BANDWIDTH_N=4, BANDWIDTH_FLOATS=10000000,
#      LINK_MBIT=100, PEERS_N=16; bench-allreduce.sh's BENCH_NS, BENCH_SIZES (default here:
#      n=4, 40 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-env.sh
PARTS=${BENCH_PARTS:-"allreduce floor bandwidth peers"}
NET_BENCH=$(bench_binary net_bench)

for part in $PARTS; do
  case $part in
    allreduce)
      BENCH_NS=${BENCH_NS:-4} BENCH_SIZES=${BENCH_SIZES:-10000000} scripts/bench-allreduce.sh ;;
    bandwidth)
      IFS=, read -ra settings <<<"${BANDWIDTH_SETTINGS:-direct,tcp,quic}"
      for setting in "${settings[@]}"; do
        # shellcheck disable=SC2086 # a transport, then maybe a host setting
        "$NET_BENCH" bandwidth "${BANDWIDTH_N:-4}" "${BANDWIDTH_FLOATS:-10000000}" "${LINK_MBIT:-100}" \
          $setting | grep '^bench-bandwidth ' || echo "bench-bandwidth skipped (no network namespaces)"
      done ;;
    floor)
      IFS=, read -ra transports <<<"${FLOOR_TRANSPORTS:-direct,tcp,quic}"
      for transport in "${transports[@]}"; do
        "$NET_BENCH" floor "${BANDWIDTH_N:-4}" "${BANDWIDTH_FLOATS:-10000000}" "$transport" | grep '^bench-floor '
      done ;;
    peers)
      "$NET_BENCH" peers "${PEERS_N:-16}" | grep '^bench-peers ' ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
