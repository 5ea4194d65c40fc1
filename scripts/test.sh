#!/usr/bin/env bash
# Run every test of trainchain. Installs what it needs first (scripts/setup.sh).
#
#   1. pallet, primitives and trainer tests (no WASM runtime needed: SKIP_WASM_BUILD=1),
#      including the multi-process libp2p tests on 127.0.0.1;
#   2. the pallet's benchmark test suite (feature runtime-benchmarks);
#   3. the real-node tests: `trainchain-node --dev --tmp` on free ports, driven over real
#      JSON-RPC by polkadot.js (sponsor client) and by the trainer's chain client.
#
# The zombienet 3-validator test is separate (scripts/zombienet.sh): see README.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

log "1/3 pallet, primitives, trainer (SKIP_WASM_BUILD=1)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-primitives -p pallet-training-rewards -p trainchain-trainer

log "2/3 pallet benchmark test suite"
SKIP_WASM_BUILD=1 cargo test -p pallet-training-rewards --features runtime-benchmarks benchmarking

log "3/3 real node: trainchain-node --dev over JSON-RPC"
cargo test -p trainchain-chain-client -p trainchain-node -- --test-threads=1

log "all tests passed"
