#!/usr/bin/env bash
# Run every test of trainchain that runs today. Installs what it needs first (scripts/setup.sh).
#
#   1. pallet and primitives tests (no WASM runtime: SKIP_WASM_BUILD=1), including the
#      property test of random call sequences against the accounting invariant;
#   2. the pallet's benchmark test suite (feature runtime-benchmarks);
#   3. the trainer's tests: models, data, determinism, checkpoints, learning, and the
#      multi-process libp2p tests on 127.0.0.1.
#
# The real-node tests (`trainchain-node --dev` over JSON-RPC, one on-chain round, the end-to-end
# job with three trainers) are in scripts/test-node.sh; they join this script once they have
# run green (see README, "Status").
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

log "1/3 pallet and primitives (SKIP_WASM_BUILD=1)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-primitives -p pallet-training-rewards

log "2/3 pallet benchmark test suite"
SKIP_WASM_BUILD=1 cargo test -p pallet-training-rewards --features runtime-benchmarks benchmarking

log "3/3 trainer (ML core and libp2p peers)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-trainer -- --test-threads=1

log "all tests passed"
