#!/usr/bin/env bash
# The real-node tests: `trainchain-node --dev --tmp` on free ports, driven over real JSON-RPC by
# the sponsor client (@polkadot/api), the trainer's chain client, and `trainchain-trainer run`
# processes (node/tests/dev_node.rs, round.rs, e2e.rs).
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/setup.sh"
log "building trainchain-trainer with the chain client"
cargo build -p trainchain-trainer --features chain --bins
log "node tests"
cargo test -p trainchain-chain-client -p trainchain-node -- --test-threads=1
