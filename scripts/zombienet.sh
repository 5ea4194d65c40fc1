#!/usr/bin/env bash
# Run the 3-validator zombienet test (native provider) against this repo's node binary.
# Not part of scripts/test.sh: it needs ~3 minutes of block production on top of CI.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/setup.sh"
log "building trainchain-node"
build_bins
if [ ! -x zombienet/node_modules/.bin/zombienet ]; then
	log "npm install @zombienet/cli"
	(cd zombienet && npm install --no-audit --no-fund --loglevel=error)
fi
export TRAINCHAIN_NODE="$BIN_DIR/trainchain-node"
log "zombienet test zombienet/local-3-validators.zndsl"
cd zombienet
exec ./node_modules/.bin/zombienet test --provider native local-3-validators.zndsl
