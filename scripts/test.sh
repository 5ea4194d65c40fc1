#!/usr/bin/env bash
# Run every test of trainchain. Installs what it needs first (scripts/setup.sh).
#
#   1. pallet and primitives tests (no WASM runtime: SKIP_WASM_BUILD=1);
#   2. the pallet's benchmark test suite (feature runtime-benchmarks);
#   3. the trainer's tests (models, data, determinism, the multi-process libp2p tests on
#      127.0.0.1) and the real-node tests: `trainchain-node --dev --tmp` on free ports, driven
#      over real JSON-RPC by polkadot.js (sponsor client), the trainer's chain client and
#      trainer processes. (The trainer's tests do not need the WASM runtime either; they run
#      here, in one cargo invocation with the node, so the runtime is built once.)
#
# The zombienet 3-validator test is separate (scripts/zombienet.sh): see README.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

log "1/3 pallet and primitives (SKIP_WASM_BUILD=1)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-primitives -p pallet-training-rewards

log "2/3 pallet benchmark test suite"
SKIP_WASM_BUILD=1 cargo test -p pallet-training-rewards --features runtime-benchmarks benchmarking

log "3/3 trainer, chain client and real node"
cargo test -p trainchain-trainer -p trainchain-chain-client -p trainchain-node -- --test-threads=1

log "all tests passed"
