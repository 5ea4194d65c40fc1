# Shared environment for the scripts: sourced, not run.
# The target dir is shared with CI on this machine so compiled dependencies are reused.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/trainchain-target}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT
export PATH="$HOME/.cargo/bin:$PATH"
BIN_DIR="$CARGO_TARGET_DIR/debug"
# libp2p's WebRTC (litep2p -> str0m) asks for a vendored OpenSSL, which compiles OpenSSL from
# source (~4.5 min of one core in a cold build). Link the system's instead (setup.sh installs
# libssl-dev); `OPENSSL_NO_VENDOR=0` restores the vendored build.
export OPENSSL_NO_VENDOR="${OPENSSL_NO_VENDOR:-1}"
export BIN_DIR
log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }

# The node, the chain client and the trainer (with its `chain` feature) as the tests build them.
# `cargo test --no-run` resolves features with the dev-dependencies, exactly as scripts/test.sh
# does, so the demo, the benchmarks and the tests share one build instead of three.
CHAIN_PACKAGES=(-p trainchain-node -p trainchain-chain-client -p trainchain-trainer
	--features trainchain-trainer/chain)
# TIMINGS=1: also write cargo's build timings report (target dir's cargo-timings/).
build_bins() {
	cargo test "${CHAIN_PACKAGES[@]}" --no-run ${TIMINGS:+--timings}
}
