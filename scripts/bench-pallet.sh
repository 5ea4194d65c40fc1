#!/usr/bin/env bash
# Run the runtime benchmarks of pallet-training-rewards (and pallet_balances, for comparison)
# on this machine and regenerate pallets/training-rewards/src/weights.rs from them.
#
# The node binary runs the benchmarks of a runtime WASM built with `runtime-benchmarks`, so
# only the runtime's WASM is built with that feature, not the node. It is built in its own
# target dir (BENCH_TARGET_DIR) so the dev node's embedded runtime never picks it up, and with
# `cargo check`: the WASM comes from the build script, the native crates need no codegen.
#   STEPS=50 REPEAT=20 scripts/bench-pallet.sh      (defaults)
#   NO_WRITE=1 scripts/bench-pallet.sh               (print figures, keep weights.rs)
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"
STEPS="${STEPS:-50}"
REPEAT="${REPEAT:-20}"
"$REPO_ROOT/scripts/setup.sh"

BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR}-bench}"
RELEASE_TARGET_DIR="${RELEASE_TARGET_DIR:-${CARGO_TARGET_DIR}-release}"

# Weights must come from an optimised node: the host functions (storage, trie, crypto) run as
# native code, and a debug node measured transfer_keep_alive at ~2 ms instead of tens of µs.
# The node needs no embedded runtime here (SKIP_WASM_BUILD=1): it runs the WASM given below.
log "building a release trainchain-node in $RELEASE_TARGET_DIR (first time: long on 2 cores)"
# The `benchmark` subcommand is in a node built with the `runtime-benchmarks` feature.
CARGO_TARGET_DIR="$RELEASE_TARGET_DIR" SKIP_WASM_BUILD=1 cargo build --release -p trainchain-node \
	--features runtime-benchmarks
log "building the runtime WASM with runtime-benchmarks (in $BENCH_TARGET_DIR)"
CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo check -p trainchain-runtime --features runtime-benchmarks
WASM="$BENCH_TARGET_DIR/debug/wbuild/trainchain-runtime/trainchain_runtime.wasm"
NODE="$RELEASE_TARGET_DIR/release/trainchain-node"
OUT=out/bench; mkdir -p "$OUT"

weights_arg=(--output pallets/training-rewards/src/weights.rs --template scripts/pallet-weight-template.hbs)
[ "${NO_WRITE:-0}" = 1 ] && weights_arg=()
log "benchmark pallet_training_rewards (steps $STEPS, repeat $REPEAT)"
"$NODE" benchmark pallet --runtime "$WASM" --genesis-builder=runtime --genesis-builder-preset=development \
	--pallet pallet_training_rewards --extrinsic '*' --steps "$STEPS" --repeat "$REPEAT" \
	--heap-pages 4096 "${weights_arg[@]}" | tee "$OUT/pallet_training_rewards.txt"

log "benchmark pallet_balances transfer_keep_alive (for comparison)"
"$NODE" benchmark pallet --runtime "$WASM" --genesis-builder=runtime --genesis-builder-preset=development \
	--pallet pallet_balances --extrinsic transfer_keep_alive --steps "$STEPS" --repeat "$REPEAT" \
	| tee "$OUT/pallet_balances.txt"

[ "${NO_WRITE:-0}" = 1 ] || cargo fmt -p pallet-training-rewards 2>/dev/null || true
log "raw output in $OUT/"

if [ "${NO_WRITE:-0}" != 1 ]; then
	# What the new weights mean for a block: commit_update per block, a 64-signer aggregate's
	# share, the deadline hook at its bound (node/tests/block_fit.rs checks the targets of #4).
	log "block fit from the new weights.rs"
	cargo test "${CHAIN_PACKAGES[@]}" --test block_fit -- --nocapture --test-threads=1 2>&1 \
		| grep -E 'µs|test result' | tee "$OUT/block_fit.txt"
fi
