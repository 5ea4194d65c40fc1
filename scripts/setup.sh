#!/usr/bin/env bash
# Install what building and testing trainchain needs on a fresh Debian machine with rustup:
# Debian packages, the WASM targets and rust-src, and the npm packages of the sponsor client.
# Safe to run again: every step checks first.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v clang >/dev/null || need_apt+=(clang)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
# The system OpenSSL (see OPENSSL_NO_VENDOR in lib/env.sh) and pkg-config to find it.
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
	log "apt-get install ${need_apt[*]}"
	SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

installed_targets="$(rustup target list --installed)"
for t in wasm32v1-none wasm32-unknown-unknown; do
	grep -qx "$t" <<<"$installed_targets" || { log "rustup target add $t"; rustup target add "$t"; }
done
rustup component list --installed | grep -q '^rust-src' || { log "rustup component add rust-src"; rustup component add rust-src; }

if [ ! -d "$REPO_ROOT/scripts/sponsor/node_modules/@polkadot/api" ]; then
	log "npm install (scripts/sponsor)"
	(cd "$REPO_ROOT/scripts/sponsor" && npm install --no-audit --no-fund --loglevel=error)
fi
log "setup done"
