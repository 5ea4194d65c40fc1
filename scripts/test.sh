#!/usr/bin/env bash
# Run every test of trainchain. Installs what it needs first (scripts/setup.sh).
#
#   0. formatting: `cargo fmt --check` with the polkadot-sdk-style rustfmt.toml;
#   1. pallet and primitives tests (no WASM runtime: SKIP_WASM_BUILD=1), including the
#      property test of random call sequences against the accounting invariant, and the
#      pallet's benchmark test suite (one build, feature runtime-benchmarks);
#   2. the node, the chain client and the trainer, built together (one feature set, so one
#      build), their test binaries run side by side (scripts/lib/test-lanes.sh: the silent-member
#      job alone, then up to three binaries at once):
#      the trainer's ML and libp2p tests on 127.0.0.1, then the real-node tests
#      (`trainchain-node --dev --tmp` over JSON-RPC with @polkadot/api, one on-chain round with
#      the chain client, the end-to-end job with three `trainchain-trainer run` processes and
#      the same job with one trainer killed, and with one that never commits);
#   3. lints: `cargo clippy --all-targets -- -D warnings` on every crate.
#
# Within a binary, tests run on cargo's default parallel test threads, and the node tests that
# start a dev node take turns (one node per test binary at a time, see node/tests/common). Up
# to three binaries run at once (LANES=1 restores cargo's one-at-a-time order): the node tests
# mostly wait for blocks; phase 1 runs the silent-member job with the fault test (four validators
# and four trainers in network namespaces, one of each killed) beside it. The zombienet test is
# separate: scripts/zombienet.sh.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

log "0/3 formatting (cargo fmt --check)"
cargo fmt --all --check

log "1/3 pallet and primitives, with the pallet's benchmark tests (SKIP_WASM_BUILD=1)"
SKIP_WASM_BUILD=1 cargo test -p trainchain-primitives -p pallet-training-rewards \
	--features pallet-training-rewards/runtime-benchmarks

log "2/3 node, chain client and trainer (real node, real RPC, real sockets)"
source "$REPO_ROOT/scripts/lib/test-lanes.sh"
run_test_lanes "${CHAIN_PACKAGES[@]}"

log "3/3 lints (cargo clippy --all-targets -D warnings, the tests' feature set)"
SKIP_WASM_BUILD=1 cargo clippy "${CHAIN_PACKAGES[@]}" -p trainchain-primitives \
	-p pallet-training-rewards --all-targets -- -D warnings

log "all tests passed"
