#!/usr/bin/env bash
# Run every test of trainchain. Installs what it needs first (scripts/setup.sh).
#
#   0. formatting: `cargo fmt --check` with the polkadot-sdk-style rustfmt.toml;
#   1. pallet and primitives tests (no WASM runtime: SKIP_WASM_BUILD=1), including the
#      property test of random call sequences against the accounting invariant;
#   2. the pallet's benchmark test suite (feature runtime-benchmarks);
#   3. the node, the chain client and the trainer, built together (one feature set, so one
#      build): the trainer's ML and libp2p tests on 127.0.0.1, then the real-node tests
#      (`trainchain-node --dev --tmp` over JSON-RPC with @polkadot/api, one on-chain round with
#      the chain client, the end-to-end job with three `trainchain-trainer run` processes and
#      the same job with one trainer killed, and with one that never commits);
#   4. lints: `cargo clippy --all-targets -- -D warnings` on every crate.
#
# Tests run on cargo's default parallel test threads. The node tests that start a dev node
# take turns (one node per test binary at a time, see node/tests/common), since a multi-process
# job would otherwise share this machine's two cores with another. The 3-validator zombienet
# test is separate: scripts/zombienet.sh.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

log "0/4 formatting (cargo fmt --check)"
cargo fmt --all --check

log "1/4 pallet and primitives (SKIP_WASM_BUILD=1)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-primitives -p pallet-training-rewards

log "2/4 pallet benchmark test suite"
SKIP_WASM_BUILD=1 cargo test -p pallet-training-rewards --features runtime-benchmarks benchmarking

log "3/4 node, chain client and trainer (real node, real RPC, real sockets)"
cargo test "${CHAIN_PACKAGES[@]}"

log "4/4 lints (cargo clippy --all-targets -D warnings, the tests' feature set)"
SKIP_WASM_BUILD=1 cargo clippy "${CHAIN_PACKAGES[@]}" -p trainchain-primitives \
	-p pallet-training-rewards --all-targets -- -D warnings

log "all tests passed"
